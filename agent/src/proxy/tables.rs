//! The routes, policies and trust in force, compiled whole from one
//! snapshot and one set of certificates, and replaced whole on each change.
//!
//! Only workloads with a certificate get listeners. Listener addresses are
//! claimed in order, inbound first: each workload in name order takes its
//! inbound port, then each (workload, service, port) in name order its
//! outbound address. A claim that overlaps an earlier one is dropped and
//! logged.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use palisade_proto::xds as pb;
use rustls::ClientConfig;

use super::Context;
use super::balancer::Balancer;
use super::listeners::ListenerKey;
use super::tls;
use super::trust::Trust;
use crate::authz::Policy;
use crate::identity::svid::WorkloadCertificates;
use crate::state::Snapshot;

/// Where one local workload's inbound traffic goes, and who may send it.
#[derive(Debug)]
pub struct InboundRoute {
    /// `<namespace>/<name>`.
    pub workload: String,
    pub listen: SocketAddr,
    pub app_port: u16,
    /// The destination port that authorization judges.
    pub port: u16,
    pub policy: Policy,
}

/// Where one outbound listener's connections go.
#[derive(Debug)]
pub struct OutboundRoute {
    pub listen: SocketAddr,
    /// The local workload whose SVID the connections present.
    pub workload: String,
    /// `<namespace>/<service>`.
    pub service: String,
    /// The identity every endpoint must present.
    pub spiffe_id: String,
    pub balancer: Arc<Balancer>,
    pub client: Arc<ClientConfig>,
}

/// Everything the data path enforces at one moment.
#[derive(Debug, Default)]
pub struct Tables {
    pub trust: Arc<Trust>,
    /// By workload.
    pub inbound: BTreeMap<String, Arc<InboundRoute>>,
    /// By listener address.
    pub outbound: BTreeMap<SocketAddr, Arc<OutboundRoute>>,
    /// By service, kept from one snapshot to the next.
    balancers: BTreeMap<String, Arc<Balancer>>,
}

impl Tables {
    /// Compiles `snapshot` (nothing when `None`) for the workloads that
    /// have a certificate, carrying endpoint health over from `previous`.
    pub fn build(
        snapshot: Option<&Snapshot>,
        certificates: &WorkloadCertificates,
        previous: &Tables,
        context: &Context,
    ) -> Self {
        let empty = Snapshot::default();
        let snapshot = snapshot.unwrap_or(&empty);
        let mut claims = Claims::default();

        let trust = Arc::new(trust(snapshot, certificates, previous));
        let served: Vec<&pb::Workload> = snapshot
            .workloads
            .iter()
            .filter(|(key, _)| certificates.by_workload.contains_key(*key))
            .map(|(_, workload)| workload)
            .collect();
        let inbound = served
            .iter()
            .filter_map(|workload| inbound_route(workload, snapshot, context, &mut claims))
            .map(|route| (route.workload.clone(), Arc::new(route)))
            .collect();

        let balancers = balancers(snapshot, previous);
        let mut tables = Self {
            trust,
            inbound,
            outbound: BTreeMap::new(),
            balancers,
        };
        for workload in served {
            tables.add_outbound(workload, snapshot, context, &mut claims);
        }
        tables
    }

    /// The listeners these tables need.
    pub fn listeners(&self) -> BTreeSet<ListenerKey> {
        let inbound = self.inbound.values().map(|route| ListenerKey::Inbound {
            workload: route.workload.clone(),
            address: route.listen,
        });
        let outbound = self.outbound.values().map(|route| ListenerKey::Outbound {
            address: route.listen,
            workload: route.workload.clone(),
            service: route.service.clone(),
        });
        inbound.chain(outbound).collect()
    }

    /// The outbound routes of `workload`: one per port of each service it
    /// may call.
    fn add_outbound(
        &mut self,
        workload: &pb::Workload,
        snapshot: &Snapshot,
        context: &Context,
        claims: &mut Claims,
    ) {
        let key = workload_key(workload);
        let ip = own_or(workload, context.settings.outbound_address);

        for (service, endpoints) in &snapshot.endpoints {
            let Some(balancer) = self.balancers.get(service) else {
                continue;
            };
            for port in endpoints.ports.iter().filter_map(|p| port(p.port)) {
                let listen = SocketAddr::new(ip, port);
                if !claims.claim(listen, &format!("{key} -> {service}")) {
                    continue;
                }
                let route = outbound_route(&key, service, endpoints, listen, balancer, context);
                if let Some(route) = route {
                    self.outbound.insert(listen, Arc::new(route));
                }
            }
        }
    }
}

fn outbound_route(
    workload: &str,
    service: &str,
    endpoints: &pb::Endpoints,
    listen: SocketAddr,
    balancer: &Arc<Balancer>,
    context: &Context,
) -> Option<OutboundRoute> {
    let spiffe_id = endpoints.spiffe_id.clone();
    let client = tls::client_config(workload, &context.certificates, &context.trust, &spiffe_id);
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%workload, %service, %error, "no TLS client settings");
            return None;
        }
    };

    Some(OutboundRoute {
        listen,
        workload: workload.to_owned(),
        service: service.to_owned(),
        spiffe_id,
        balancer: balancer.clone(),
        client,
    })
}

/// The bundle (the snapshot's, else the certificates') and the deny list.
fn trust(snapshot: &Snapshot, certificates: &WorkloadCertificates, previous: &Tables) -> Trust {
    let bundle_pem = snapshot
        .bundle
        .as_ref()
        .map(|bundle| bundle.x509_pem.as_str())
        .filter(|pem| !pem.is_empty())
        .unwrap_or(&certificates.bundle_pem);
    Trust::new(bundle_pem, snapshot.denied_serials.clone(), &previous.trust)
}

fn inbound_route(
    workload: &pb::Workload,
    snapshot: &Snapshot,
    context: &Context,
    claims: &mut Claims,
) -> Option<InboundRoute> {
    let key = workload_key(workload);
    let (Some(inbound_port), Some(app_port)) =
        (port(workload.inbound_port), port(workload.app_port))
    else {
        tracing::warn!(workload = %key, "workload ports out of range; not served");
        return None;
    };
    let ip = own_or(workload, context.settings.bind_address);
    let listen = SocketAddr::new(ip, inbound_port);
    if !claims.claim(listen, &key) {
        return None;
    }

    let trust_domain = snapshot
        .bundle
        .as_ref()
        .map_or("", |b| b.trust_domain.as_str());
    let policy = snapshot
        .authorization_for(workload)
        .map_or_else(Policy::deny_all, |a| Policy::compile(a, trust_domain));
    Some(InboundRoute {
        workload: key,
        listen,
        app_port,
        port: destination_port(workload, app_port),
        policy,
    })
}

/// The port authorization judges: the Service port numbered like the
/// application port; else the Service's only port, as the control plane's
/// RBAC does; else the application port.
fn destination_port(workload: &pb::Workload, app_port: u16) -> u16 {
    let ports: Vec<u16> = workload.ports.iter().filter_map(|p| port(p.port)).collect();
    if ports.contains(&app_port) {
        return app_port;
    }
    match ports[..] {
        [only] => only,
        _ => app_port,
    }
}

/// One balancer per service with endpoints to verify, keeping the health
/// `previous` knew.
fn balancers(snapshot: &Snapshot, previous: &Tables) -> BTreeMap<String, Arc<Balancer>> {
    let with_identity = snapshot
        .endpoints
        .iter()
        .filter(|(_, endpoints)| !endpoints.spiffe_id.is_empty());

    with_identity
        .map(|(service, endpoints)| {
            let addresses: Vec<SocketAddr> = endpoints
                .endpoints
                .iter()
                .filter_map(endpoint_address)
                .collect();
            let balancer = Balancer::new(&addresses, previous.balancers.get(service).map(|b| &**b));
            (service.clone(), Arc::new(balancer))
        })
        .collect()
}

fn endpoint_address(endpoint: &pb::Endpoint) -> Option<SocketAddr> {
    let ip = endpoint.address.parse::<IpAddr>().ok();
    let address = ip.zip(port(endpoint.inbound_port));
    if address.is_none() {
        tracing::debug!(endpoint = %endpoint.workload, "endpoint address unusable; skipped");
    }
    address.map(|(ip, port)| SocketAddr::new(ip, port))
}

/// Where a workload's listeners bind: its own address when it is a
/// loopback IPv4 one, else `shared` (the bind or the outbound address).
///
/// The control plane tells callers to reach a workload at its own
/// address, so an inbound listener on the shared address alone would not
/// be found; a loopback address is certainly on this host, so it is bound
/// itself. Other addresses are reached through `shared` when it is the
/// wildcard.
fn own_or(workload: &pb::Workload, shared: IpAddr) -> IpAddr {
    match workload.address.parse::<IpAddr>() {
        Ok(IpAddr::V4(own)) if own.is_loopback() => IpAddr::V4(own),
        _ => shared,
    }
}

fn workload_key(workload: &pb::Workload) -> String {
    format!("{}/{}", workload.namespace, workload.name)
}

/// A TCP port, 1 to 65535.
fn port(port: u32) -> Option<u16> {
    u16::try_from(port).ok().filter(|port| *port != 0)
}

/// The listener addresses taken so far, and by whom.
#[derive(Default)]
struct Claims {
    taken: Vec<(SocketAddr, String)>,
}

impl Claims {
    /// Takes `address` for `owner`; false, and logged, when an earlier
    /// claim overlaps it (same port on the same or a wildcard address).
    fn claim(&mut self, address: SocketAddr, owner: &str) -> bool {
        let overlapping = self
            .taken
            .iter()
            .find(|(taken, _)| overlaps(*taken, address));
        if let Some((_, holder)) = overlapping {
            tracing::warn!(
                %address,
                holder = %holder,
                refused = %owner,
                "listener address already claimed"
            );
            return false;
        }
        self.taken.push((address, owner.to_owned()));
        true
    }
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The tables in force, replaced whole.
#[derive(Debug, Default)]
pub struct Current {
    tables: RwLock<Arc<Tables>>,
}

impl Current {
    pub fn get(&self) -> Arc<Tables> {
        self.tables.read().expect("tables lock").clone()
    }

    pub fn replace(&self, tables: Arc<Tables>) {
        *self.tables.write().expect("tables lock") = tables;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(ports: &[u32], app_port: u32) -> pb::Workload {
        pb::Workload {
            app_port,
            ports: ports
                .iter()
                .map(|&port| pb::ServicePort {
                    port,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_destination_port_prefers_the_application_port() {
        assert_eq!(destination_port(&workload(&[80, 8080], 8080), 8080), 8080);
        assert_eq!(destination_port(&workload(&[80], 8080), 8080), 80);
        assert_eq!(destination_port(&workload(&[80, 443], 8080), 8080), 8080);
        assert_eq!(destination_port(&workload(&[], 8080), 8080), 8080);
    }

    #[test]
    fn overlapping_claims_are_refused() {
        let mut claims = Claims::default();

        assert!(claims.claim("127.0.0.1:80".parse().unwrap(), "a"));
        assert!(claims.claim("127.0.0.2:80".parse().unwrap(), "b"));
        assert!(!claims.claim("127.0.0.1:80".parse().unwrap(), "c"));
        assert!(!claims.claim("0.0.0.0:80".parse().unwrap(), "d"));
        assert!(claims.claim("0.0.0.0:81".parse().unwrap(), "e"));
        assert!(!claims.claim("127.0.0.9:81".parse().unwrap(), "f"));
    }

    #[test]
    fn only_loopback_workloads_listen_on_their_own_address() {
        let shared = IpAddr::from([127, 0, 0, 1]);
        let at = |address: &str| pb::Workload {
            address: address.into(),
            ..Default::default()
        };

        assert_eq!(
            own_or(&at("127.0.0.7"), shared),
            IpAddr::from([127, 0, 0, 7])
        );
        assert_eq!(own_or(&at("10.0.0.7"), shared), shared);
        assert_eq!(own_or(&at(""), shared), shared);
    }
}
