//! Established inbound connections, judged when they arrive and again
//! whenever the tables change: a connection whose workload is no longer
//! served, whose certificate serial the deny list now holds, or that the
//! new policy denies, is closed.
//!
//! A new trust bundle is judged by what it means for the caller's
//! certificate. Rotating CAs adds the next CA before it signs (prepare),
//! lets it sign (activate) and removes the old one once everything it
//! signed has expired (retire); none of these steps closes a connection.
//! A bundle that drops the CA of a caller whose certificate is still valid
//! distrusts that certificate (a CA retired early, or replaced after a
//! compromise), and the connection is closed as a revoked one would be.
//!
//! Admission and re-evaluation hold the same lock, and tables are swapped
//! before re-evaluation takes it, so a connection is either judged at
//! admission by the newest tables or seen by the re-evaluation that follows
//! them: none slips between.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::Notify;

use super::counters::Counters;
use super::tables::{Current, InboundRoute, Tables};
use super::trust::{Anchors, Trust};
use crate::authz::{Caller, Decision};

/// What the registry keeps of one connection.
#[derive(Debug)]
pub struct Established {
    pub caller: Caller,
    /// The caller's certificate serial, lowercase hex.
    pub serial: String,
    /// When the caller's certificate expires, in Unix seconds.
    pub not_after: u64,
    /// The caller's chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// When the chain was verified; a new bundle is checked as of then, so
    /// that a connection outliving its certificate is not cut by chance.
    pub verified_at: UnixTime,
    /// The bundle that last verified the chain.
    pub anchors: Arc<Anchors>,
    /// `<namespace>/<name>` of the workload called.
    pub workload: String,
    /// The listener the caller reached.
    pub listen: SocketAddr,
}

/// Why a connection is not (or no longer) allowed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the workload is not served on this listener")]
    Unserved,
    #[error("the certificate is not trusted: {0}")]
    Untrusted(rustls::Error),
    #[error("authorization denies it ({0})")]
    Denied(Decision),
}

/// An admitted connection: where it goes, and why it may.
#[derive(Debug)]
pub struct Admitted {
    pub registration: Registration,
    pub route: Arc<InboundRoute>,
    pub decision: Decision,
}

/// The established inbound connections.
#[derive(Debug, Default)]
pub struct Registry {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    connection: Established,
    close: Arc<Notify>,
}

/// A connection's place in the registry; dropping it leaves.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    registry: Arc<Registry>,
    close: Arc<Notify>,
}

impl Registry {
    /// Judges `connection` by the tables in force and, when allowed, keeps
    /// it until its registration drops.
    pub fn admit(
        self: &Arc<Self>,
        mut connection: Established,
        current: &Current,
    ) -> Result<Admitted, Refusal> {
        let mut entries = self.lock();
        let tables = current.get();
        let (route, decision) = judge(&mut connection, &tables, UnixTime::now())?;

        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let entry = Entry {
            connection,
            close: close.clone(),
        };
        entries.insert(id, entry);

        let registry = self.clone();
        let registration = Registration {
            id,
            registry,
            close,
        };
        Ok(Admitted {
            registration,
            route,
            decision,
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
            let Err(refusal) = judge(&mut entry.connection, tables, now) else {
                return true;
            };
            tracing::info!(
                target: "palisade_agent::access",
                caller = %entry.connection.caller.identity,
                workload = %entry.connection.workload,
                reason = %refusal,
                "connection closed: no longer allowed"
            );
            Counters::bump(&counters.inbound_revoked);
            entry.close.notify_one();
            false
        });
        before - entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().expect("registry lock")
    }
}

impl Registration {
    /// Resolves when the registry closes the connection.
    pub async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// The route and the deciding rule of an allowed connection, judged at
/// `now`.
fn judge(
    connection: &mut Established,
    tables: &Tables,
    now: UnixTime,
) -> Result<(Arc<InboundRoute>, Decision), Refusal> {
    let route = tables
        .inbound
        .get(&connection.workload)
        .filter(|route| route.listen == connection.listen)
        .ok_or(Refusal::Unserved)?;
    connection
        .recheck(&tables.trust, now)
        .map_err(Refusal::Untrusted)?;

    let decision = route.policy.decide(&connection.caller, route.port);
    match decision.allowed {
        true => Ok((route.clone(), decision)),
        false => Err(Refusal::Denied(decision)),
    }
}

impl Established {
    /// Checks the serial against the deny list, and the chain again when
    /// the bundle changed.
    fn recheck(&mut self, trust: &Trust, now: UnixTime) -> Result<(), rustls::Error> {
        if !Arc::ptr_eq(&self.anchors, &trust.anchors) {
            self.reanchor(&trust.anchors, now)?;
        }
        Ok(trust.check_serial(&self.serial)?)
    }

    /// Moves the connection to new anchors. The chain is checked as of when
    /// it was verified, so that a connection outliving its certificate is
    /// not cut by chance; a chain they no longer lead to is refused only
    /// while the certificate is still valid at `now`. Once it has expired,
    /// dropping its CA retires that CA rather than distrusting what it
    /// signed, and the connection stands on its handshake.
    fn reanchor(&mut self, anchors: &Arc<Anchors>, now: UnixTime) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = self.chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let verified = anchors.verify_client(leaf, intermediates, self.verified_at);
        if let Err(error) = verified
            && self.not_after >= now.as_secs()
        {
            return Err(error);
        }

        self.anchors = anchors.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
