//! Limits on inbound TLS handshakes in progress. A connection holds a
//! handshake slot from accept until its handshake ends, by success,
//! failure, timeout or eviction. Each listener has
//! [`Settings::max_handshakes`] slots, and one source may hold at most
//! [`Settings::max_handshakes_per_source`] of them; a connection beyond
//! its source's share is closed at once. A connection that finds every
//! slot of the listener taken gets the slot of the oldest handshake still
//! in progress, which is told to give up. A flood of half-open connections
//! from one address then takes a few slots for the handshake timeout; a
//! flood from many addresses keeps turning its own oldest connections
//! out; and a caller that completes its handshake promptly finds room
//! either way.
//!
//! An IPv6 source is counted by its /64 prefix, the smallest block a host
//! is usually given.
//!
//! [`Settings::max_handshakes`]: super::Settings::max_handshakes
//! [`Settings::max_handshakes_per_source`]: super::Settings::max_handshakes_per_source

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Why a connection found no handshake slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Crowded {
    #[error("too many handshakes in progress from this source")]
    Source,
}

/// The handshake slots of one listener.
#[derive(Debug)]
pub struct HandshakeLimit {
    per_listener: usize,
    per_source: usize,
    held: Arc<Mutex<Held>>,
}

/// The slots taken, oldest first, and how many each source holds. A
/// source with none has no entry, so the maps hold at most `per_listener`
/// entries each.
#[derive(Debug, Default)]
struct Held {
    next: u64,
    in_progress: BTreeMap<u64, Taken>,
    by_source: HashMap<IpAddr, usize>,
}

/// A slot as the listener sees it: whose, and how to tell it to give up.
#[derive(Debug)]
struct Taken {
    source: IpAddr,
    evict: oneshot::Sender<()>,
}

/// One handshake's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    evicted: oneshot::Receiver<()>,
    held: Arc<Mutex<Held>>,
}

impl HandshakeLimit {
    /// `per_listener` slots, at most `per_source` for one source.
    pub fn new(per_listener: usize, per_source: usize) -> Self {
        Self {
            per_listener,
            per_source,
            held: Arc::default(),
        }
    }

    /// Takes a slot for a handshake from `address`, evicting the oldest
    /// handshake in progress if the listener has no slot free.
    pub fn enter(&self, address: IpAddr) -> Result<Slot, Crowded> {
        let source = source_of(address);
        let mut held = lock(&self.held);
        let from_source = held.by_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.per_source {
            return Err(Crowded::Source);
        }
        while held.in_progress.len() >= self.per_listener.max(1) {
            held.evict_oldest();
        }

        let id = held.next;
        held.next += 1;
        let (evict, evicted) = oneshot::channel();
        held.in_progress.insert(id, Taken { source, evict });
        *held.by_source.entry(source).or_default() += 1;
        Ok(Slot {
            id,
            evicted,
            held: self.held.clone(),
        })
    }
}

impl Held {
    fn evict_oldest(&mut self) {
        if let Some((_, taken)) = self.in_progress.pop_first() {
            self.release(taken.source);
            let _ = taken.evict.send(());
        }
    }

    fn release(&mut self, source: IpAddr) {
        if let Some(count) = self.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

impl Slot {
    /// Resolves once a newer connection took this slot; never otherwise.
    pub async fn evicted(&mut self) {
        if (&mut self.evicted).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        if let Some(taken) = held.in_progress.remove(&self.id) {
            held.release(taken.source);
        }
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a source is counted as: an IPv4 address (also when written as
/// IPv4-mapped IPv6), or the /64 of an IPv6 one.
fn source_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_source_takes_at_most_its_share() {
        let limit = HandshakeLimit::new(10, 2);

        let first = limit.enter(ip("127.0.0.99")).unwrap();
        let _second = limit.enter(ip("127.0.0.99")).unwrap();

        assert_eq!(limit.enter(ip("127.0.0.99")).unwrap_err(), Crowded::Source);
        assert!(limit.enter(ip("127.0.0.1")).is_ok());
        drop(first);
        assert!(limit.enter(ip("127.0.0.99")).is_ok());
    }

    #[test]
    fn a_full_listener_gives_the_oldest_handshakes_slot_to_a_new_one() {
        let limit = HandshakeLimit::new(2, 2);

        let mut oldest = limit.enter(ip("10.0.0.1")).unwrap();
        let mut second = limit.enter(ip("10.0.0.2")).unwrap();
        let mut third = limit.enter(ip("10.0.0.3")).unwrap();

        assert!(oldest.evicted.try_recv().is_ok(), "the oldest gives way");
        assert!(second.evicted.try_recv().is_err());
        assert!(third.evicted.try_recv().is_err());
        let held = lock(&limit.held);
        assert_eq!(held.in_progress.len(), 2);
        assert!(!held.by_source.contains_key(&ip("10.0.0.1")));
    }

    #[test]
    fn an_evicted_slot_dropped_later_frees_nothing_twice() {
        let limit = HandshakeLimit::new(1, 1);

        let evicted = limit.enter(ip("10.0.0.1")).unwrap();
        let newer = limit.enter(ip("10.0.0.2")).unwrap();
        drop(evicted);

        let held = lock(&limit.held);
        assert_eq!(held.in_progress.len(), 1);
        assert_eq!(held.by_source.get(&ip("10.0.0.2")), Some(&1));
        drop(held);
        drop(newer);
        assert!(lock(&limit.held).in_progress.is_empty());
    }

    #[tokio::test]
    async fn a_slot_still_held_is_not_told_to_give_up() {
        let limit = HandshakeLimit::new(2, 2);
        let mut slot = limit.enter(ip("10.0.0.1")).unwrap();

        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), slot.evicted());

        assert!(waited.await.is_err());
    }

    #[test]
    fn freed_sources_are_forgotten() {
        let limit = HandshakeLimit::new(10, 2);

        drop(limit.enter(ip("10.0.0.1")).unwrap());

        let held = lock(&limit.held);
        assert!(held.in_progress.is_empty());
        assert!(held.by_source.is_empty());
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_prefix_and_mapped_ipv4_as_ipv4() {
        let limit = HandshakeLimit::new(10, 1);

        let _one = limit.enter(ip("2001:db8::1")).unwrap();
        let _mapped = limit.enter(ip("::ffff:10.0.0.1")).unwrap();

        assert_eq!(limit.enter(ip("2001:db8::2")).unwrap_err(), Crowded::Source);
        assert_eq!(limit.enter(ip("10.0.0.1")).unwrap_err(), Crowded::Source);
        assert!(limit.enter(ip("2001:db8:0:1::1")).is_ok());
    }
}
