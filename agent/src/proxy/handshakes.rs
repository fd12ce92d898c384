//! Limits on inbound TLS handshakes in progress. A connection holds a
//! handshake slot from accept until its handshake ends, by success,
//! failure or timeout. Each listener has [`Settings::max_handshakes`]
//! slots, and one source may hold at most
//! [`Settings::max_handshakes_per_source`] of them; a connection beyond
//! either is closed at once. A flood of half-open connections from one
//! address then takes a few slots for the handshake timeout, and callers
//! from other addresses still find room.
//!
//! An IPv6 source is counted by its /64 prefix, the smallest block a host
//! is usually given.
//!
//! [`Settings::max_handshakes`]: super::Settings::max_handshakes
//! [`Settings::max_handshakes_per_source`]: super::Settings::max_handshakes_per_source

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a connection found no handshake slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Crowded {
    #[error("too many handshakes in progress from this source")]
    Source,
    #[error("too many handshakes in progress on this listener")]
    Listener,
}

/// The handshake slots of one listener.
#[derive(Debug)]
pub struct HandshakeLimit {
    per_listener: usize,
    per_source: usize,
    held: Arc<Mutex<Held>>,
}

/// The slots taken: in all, and by source. A source with none has no
/// entry, so the map holds at most `per_listener` entries.
#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One handshake's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    source: IpAddr,
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

    /// Takes a slot for a handshake from `address`.
    pub fn enter(&self, address: IpAddr) -> Result<Slot, Crowded> {
        let source = source_of(address);
        let mut held = lock(&self.held);
        let from_source = held.by_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.per_source {
            return Err(Crowded::Source);
        }
        if held.total >= self.per_listener {
            return Err(Crowded::Listener);
        }

        held.total += 1;
        held.by_source.insert(source, from_source + 1);
        Ok(Slot {
            source,
            held: self.held.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                held.by_source.remove(&self.source);
            }
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
    fn the_listener_takes_at_most_its_total() {
        let limit = HandshakeLimit::new(2, 2);

        let _a = limit.enter(ip("10.0.0.1")).unwrap();
        let b = limit.enter(ip("10.0.0.2")).unwrap();

        assert_eq!(limit.enter(ip("10.0.0.3")).unwrap_err(), Crowded::Listener);
        drop(b);
        assert!(limit.enter(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn freed_sources_are_forgotten() {
        let limit = HandshakeLimit::new(10, 2);

        drop(limit.enter(ip("10.0.0.1")).unwrap());

        let held = lock(&limit.held);
        assert_eq!(held.total, 0);
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
