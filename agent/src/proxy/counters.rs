//! What the data path counts: accepted and refused connections, by reason.
//! The agent publishes them in its status file (see [`Counters::values`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Counters of the data path; each only grows.
#[derive(Debug, Default)]
pub struct Counters {
    /// Configurations applied: each snapshot or certificate change,
    /// compiled, swapped in and reconciled with the listeners.
    pub applied: AtomicU64,
    /// Inbound connections that passed authorization and were forwarded.
    pub inbound_allowed: AtomicU64,
    /// Inbound connections refused by authorization when they arrived.
    pub inbound_denied: AtomicU64,
    /// Inbound connections closed after a change no longer allowed them.
    pub inbound_revoked: AtomicU64,
    /// Inbound TLS handshakes that failed: no, foreign, expired, revoked or
    /// malformed certificates, and bytes that are not TLS.
    pub inbound_handshake_failed: AtomicU64,
    /// Inbound TLS handshakes that did not finish in time.
    pub inbound_handshake_timed_out: AtomicU64,
    /// Inbound connections the application refused.
    pub inbound_app_unreachable: AtomicU64,
    /// Inbound connections closed at once because their source address
    /// had too many handshakes in progress.
    pub inbound_source_handshakes_over_limit: AtomicU64,
    /// Inbound handshakes given up because their listener's slots were
    /// full and a newer connection took the oldest one's.
    pub inbound_handshakes_evicted: AtomicU64,
    /// Connections closed at once because their listener was full, inbound
    /// and outbound.
    pub over_limit: AtomicU64,
    /// Outbound connections carried to an endpoint.
    pub outbound_connected: AtomicU64,
    /// Outbound connections closed because no endpoint could be reached.
    pub outbound_unreachable: AtomicU64,
    /// Outbound attempts at one endpoint that failed to connect or to
    /// complete the handshake.
    pub outbound_endpoint_failed: AtomicU64,
    /// Outbound connections closed because a change no longer allowed
    /// their server: its serial denied, its CA distrusted while its
    /// certificate is valid, its endpoint or route removed.
    pub outbound_revoked: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The value of `counter` now.
    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Every counter by its name, as the status file shows them.
    pub fn values(&self) -> BTreeMap<String, u64> {
        let named = [
            ("applied", &self.applied),
            ("inbound_allowed", &self.inbound_allowed),
            ("inbound_denied", &self.inbound_denied),
            ("inbound_revoked", &self.inbound_revoked),
            ("inbound_handshake_failed", &self.inbound_handshake_failed),
            (
                "inbound_handshake_timed_out",
                &self.inbound_handshake_timed_out,
            ),
            ("inbound_app_unreachable", &self.inbound_app_unreachable),
            (
                "inbound_source_handshakes_over_limit",
                &self.inbound_source_handshakes_over_limit,
            ),
            (
                "inbound_handshakes_evicted",
                &self.inbound_handshakes_evicted,
            ),
            ("over_limit", &self.over_limit),
            ("outbound_connected", &self.outbound_connected),
            ("outbound_unreachable", &self.outbound_unreachable),
            ("outbound_endpoint_failed", &self.outbound_endpoint_failed),
            ("outbound_revoked", &self.outbound_revoked),
        ];
        named
            .into_iter()
            .map(|(name, counter)| (name.to_owned(), Self::read(counter)))
            .collect()
    }
}

/// The process's counters, which [`run`](super::run) counts into.
pub fn counters() -> Arc<Counters> {
    static COUNTERS: OnceLock<Arc<Counters>> = OnceLock::new();
    COUNTERS.get_or_init(Arc::default).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_every_counter() {
        let counters = Counters::default();
        Counters::bump(&counters.inbound_denied);
        Counters::bump(&counters.inbound_denied);

        let values = counters.values();

        assert_eq!(values["inbound_denied"], 2);
        assert_eq!(values["applied"], 0);
        let fields = format!("{counters:?}").matches(": ").count();
        assert_eq!(values.len(), fields, "{values:?}");
    }
}
