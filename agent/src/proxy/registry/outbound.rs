//! How an outbound connection is judged: by the route that carries it, the
//! endpoint it reached, and the server's certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::UnixTime;

use super::{Judged, PeerCertificate};
use crate::proxy::counters::Counters;
use crate::proxy::tables::{OutboundRoute, Tables};

/// What the registry keeps of one outbound connection.
#[derive(Debug)]
pub struct OutboundConnection {
    /// The route it was carried by: its listener, local workload and
    /// service.
    pub route: Arc<OutboundRoute>,
    /// The endpoint it reached.
    pub endpoint: SocketAddr,
    pub server: PeerCertificate,
}

/// Why an outbound connection is not (or no longer) allowed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("the listener no longer leads the workload to the service")]
    Unrouted,
    #[error("the endpoint is no longer one of the service's")]
    Unlisted,
    #[error("the service's identity is now {0}")]
    Renamed(String),
    #[error("the certificate is not trusted: {0}")]
    Untrusted(rustls::Error),
}

impl Judged for OutboundConnection {
    type Grant = ();
    type Refusal = OutboundRefusal;

    fn judge(&mut self, tables: &Tables, now: UnixTime) -> Result<(), OutboundRefusal> {
        let carried = &self.route;
        let route = tables
            .outbound
            .get(&carried.listen)
            .filter(|route| route.workload == carried.workload && route.service == carried.service)
            .ok_or(OutboundRefusal::Unrouted)?;
        if !route.balancer.contains(self.endpoint) {
            return Err(OutboundRefusal::Unlisted);
        }
        if route.spiffe_id != self.server.spiffe_id {
            return Err(OutboundRefusal::Renamed(route.spiffe_id.clone()));
        }

        self.server
            .recheck(&tables.trust, now)
            .map_err(OutboundRefusal::Untrusted)
    }

    fn revoked(&self, refusal: &OutboundRefusal, counters: &Counters) {
        tracing::info!(
            target: "palisade_agent::access",
            workload = %self.route.workload,
            service = %self.route.service,
            endpoint = %self.endpoint,
            server = %self.server.spiffe_id,
            serial = %self.server.serial,
            reason = %refusal,
            "outbound connection closed: no longer allowed"
        );
        Counters::bump(&counters.outbound_revoked);
    }
}
