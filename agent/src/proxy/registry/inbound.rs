//! How an inbound connection is judged: by the route of the workload
//! called, its caller's certificate, and the policy.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::UnixTime;

use super::{Judged, PeerCertificate};
use crate::authz::{Caller, Decision};
use crate::proxy::counters::Counters;
use crate::proxy::tables::{InboundRoute, Tables};

/// What the registry keeps of one inbound connection.
#[derive(Debug)]
pub struct InboundConnection {
    pub caller: Caller,
    pub certificate: PeerCertificate,
    /// `<namespace>/<name>` of the workload called.
    pub workload: String,
    /// The listener the caller reached.
    pub listen: SocketAddr,
}

/// Where an allowed inbound connection goes, and the rule that allows it.
#[derive(Debug)]
pub struct InboundGrant {
    pub route: Arc<InboundRoute>,
    pub decision: Decision,
}

/// Why an inbound connection is not (or no longer) allowed.
#[derive(Debug, thiserror::Error)]
pub enum InboundRefusal {
    #[error("the workload is not served on this listener")]
    Unserved,
    #[error("the certificate is not trusted: {0}")]
    Untrusted(rustls::Error),
    #[error("authorization denies it ({0})")]
    Denied(Decision),
}

impl Judged for InboundConnection {
    type Grant = InboundGrant;
    type Refusal = InboundRefusal;

    fn judge(&mut self, tables: &Tables, now: UnixTime) -> Result<InboundGrant, InboundRefusal> {
        let route = tables
            .inbound
            .get(&self.workload)
            .filter(|route| route.listen == self.listen)
            .ok_or(InboundRefusal::Unserved)?;
        self.certificate
            .recheck(&tables.trust, now)
            .map_err(InboundRefusal::Untrusted)?;

        let decision = route.policy.decide(&self.caller, route.port);
        match decision.allowed() {
            true => Ok(InboundGrant {
                route: route.clone(),
                decision,
            }),
            false => Err(InboundRefusal::Denied(decision)),
        }
    }

    fn revoked(&self, refusal: &InboundRefusal, counters: &Counters) {
        tracing::info!(
            target: "palisade_agent::access",
            caller = %self.caller.identity,
            workload = %self.workload,
            serial = %self.certificate.serial,
            reason = %refusal,
            "connection closed: no longer allowed"
        );
        Counters::bump(&counters.inbound_revoked);
    }
}
