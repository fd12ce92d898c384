//! Established connections, judged when they are admitted and again
//! whenever the tables change; those the new tables no longer allow are
//! closed. An inbound connection is judged by its caller (see [`inbound`]):
//! its workload must still be served, its certificate trusted, and the
//! policy must allow it. An outbound connection is judged by its server
//! (see [`outbound`]): its route and endpoint must remain, and its
//! certificate must still be trusted and name the service's identity.
//!
//! Both hold the peer's certificate, and a new trust bundle is judged by
//! what it means for that certificate (see [`held`]): a CA rotation closes
//! nothing, a CA dropped while a certificate it signed is still valid
//! distrusts that certificate.
//!
//! Admission and re-evaluation hold the same lock, and tables are swapped
//! before re-evaluation takes it, so a connection is either judged at
//! admission by the newest tables or seen by the re-evaluation that follows
//! them: none slips between. Admission costs one lock and one map insert;
//! leaving, one lock and one map remove.

mod held;
mod inbound;
mod outbound;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::UnixTime;
use tokio::sync::Notify;

use super::counters::Counters;
use super::tables::{Current, Tables};

pub use held::PeerCertificate;
pub use inbound::{InboundConnection, InboundRefusal};
pub use outbound::{OutboundConnection, OutboundRefusal};

/// A kind of connection the registry keeps: how it is judged, and how its
/// closing is told.
pub trait Judged: Send + 'static {
    /// What an allowed connection learns from its judgement.
    type Grant;
    /// Why a connection is not (or no longer) allowed.
    type Refusal: std::error::Error;

    /// Judges the connection by `tables` at `now`.
    fn judge(&mut self, tables: &Tables, now: UnixTime) -> Result<Self::Grant, Self::Refusal>;

    /// Logs and counts that a change closed the connection for `refusal`.
    fn revoked(&self, refusal: &Self::Refusal, counters: &Counters);
}

/// An admitted connection: its place in the registry, and what its
/// judgement granted.
pub struct Admitted<C: Judged> {
    pub registration: Registration<C>,
    pub grant: C::Grant,
}

/// The established connections of one kind.
#[derive(Debug)]
pub struct Registry<C> {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry<C>>>,
}

#[derive(Debug)]
struct Entry<C> {
    connection: C,
    close: Arc<Notify>,
}

/// A connection's place in the registry; dropping it leaves.
#[derive(Debug)]
pub struct Registration<C> {
    id: u64,
    registry: Arc<Registry<C>>,
    close: Arc<Notify>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: Judged> Registry<C> {
    /// Judges `connection` by the tables in force and, when allowed, keeps
    /// it until its registration drops.
    pub fn admit(
        self: &Arc<Self>,
        mut connection: C,
        current: &Current,
    ) -> Result<Admitted<C>, C::Refusal> {
        let mut entries = self.lock();
        let tables = current.get();
        let grant = connection.judge(&tables, UnixTime::now())?;

        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let entry = Entry {
            connection,
            close: close.clone(),
        };
        entries.insert(id, entry);

        let registration = Registration {
            id,
            registry: self.clone(),
            close,
        };
        Ok(Admitted {
            registration,
            grant,
        })
    }

    /// Judges every connection by `tables` and closes those refused;
    /// returns how many.
    pub fn reevaluate(&self, tables: &Tables, counters: &Counters) -> usize {
        self.reevaluate_at(tables, counters, UnixTime::now())
    }

    /// [`reevaluate`](Self::reevaluate) as of `now`.
    fn reevaluate_at(&self, tables: &Tables, counters: &Counters, now: UnixTime) -> usize {
        let mut entries = self.lock();
        let before = entries.len();

        entries.retain(|_, entry| {
            let Err(refusal) = entry.connection.judge(tables, now) else {
                return true;
            };
            entry.connection.revoked(&refusal, counters);
            entry.close.notify_one();
            false
        });
        before - entries.len()
    }
}

impl<C> Registry<C> {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry<C>>> {
        self.entries.lock().expect("registry lock")
    }
}

impl<C> Registration<C> {
    /// Resolves when the registry closes the connection.
    pub async fn closed(&self) {
        self.close.notified().await;
    }
}

impl<C> Drop for Registration<C> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests;
