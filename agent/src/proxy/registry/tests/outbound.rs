//! Outbound connections: a server's certificate under changes of trust and
//! deny list, and the route and endpoints that lead to it.

use std::net::SocketAddr;

use super::*;
use crate::identity::svid::Certificates;
use crate::proxy::balancer::Balancer;
use crate::proxy::tables::OutboundRoute;
use crate::proxy::tls;
use crate::proxy::trust::TrustCell;

fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 8080))
}

fn api() -> String {
    spiffe_id("shop", OutboundConnection::PEER)
}

fn endpoint() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15008))
}

/// The route of shop/web-1 to shop/api, whose servers are `spiffe_id` at
/// `endpoints`.
fn route(spiffe_id: &str, endpoints: &[SocketAddr]) -> Arc<OutboundRoute> {
    let workload = "shop/web-1";
    let trust = Arc::new(TrustCell::default());
    let client = tls::client_config(workload, &Certificates::default(), &trust, spiffe_id);
    Arc::new(OutboundRoute {
        listen: listen(),
        workload: workload.to_owned(),
        service: "shop/api".to_owned(),
        spiffe_id: spiffe_id.to_owned(),
        balancer: Arc::new(Balancer::new(endpoints, None)),
        client: client.unwrap(),
    })
}

/// Tables with `route`, trusting `bundle_pem` and denying `denied`.
fn routing(
    route: Arc<OutboundRoute>,
    bundle_pem: &str,
    denied: &[&str],
    previous: &Tables,
) -> Tables {
    let mut tables = trusting(bundle_pem, denied, previous);
    tables.outbound.insert(route.listen, route);
    tables
}

impl Kind for OutboundConnection {
    const PEER: &'static str = "api";

    fn tables(bundle_pem: &str, denied: &[&str], previous: &Tables) -> Tables {
        let route = route(&api(), &[endpoint()]);
        routing(route, bundle_pem, denied, previous)
    }

    fn connected(leaf: &Leaf, tables: Tables) -> Connected<Self> {
        let route = tables.outbound[&listen()].clone();
        Connected::admit(tables, |anchors| OutboundConnection {
            route,
            endpoint: endpoint(),
            server: held(leaf, Role::Server, anchors),
        })
    }

    fn closed_count(counters: &Counters) -> u64 {
        Counters::read(&counters.outbound_revoked)
    }
}

changes_of_trust!(OutboundConnection);

/// Whether the connection closes when `route` replaces the usual one
/// (none: no route), and is counted.
fn closed_by_rerouting(route: Option<Arc<OutboundRoute>>) -> bool {
    let mut rotating = Rotating::<OutboundConnection>::start();

    let old = rotating.old.bundle_pem();
    let previous = &rotating.connected.tables;
    let next = match route {
        Some(route) => routing(route, old, &[], previous),
        None => trusting(old, &[], previous),
    };

    let closed = rotating.connected.change(next, STILL_VALID);
    closed == 1 && rotating.closed_once()
}

#[test]
fn a_removed_route_closes_the_connection() {
    assert!(closed_by_rerouting(None));
}

#[test]
fn an_endpoint_removed_from_the_service_closes_the_connection() {
    let elsewhere = SocketAddr::from(([127, 0, 0, 1], 15009));
    let moved = route(&api(), &[elsewhere]);

    assert!(closed_by_rerouting(Some(moved)));
}

#[test]
fn a_service_that_names_another_identity_closes_the_connection() {
    let renamed = route(&spiffe_id("shop", "api-v2"), &[endpoint()]);

    assert!(closed_by_rerouting(Some(renamed)));
}

#[test]
fn a_server_denied_during_the_handshake_is_not_admitted() {
    let ca = TestCa::new();
    let server = until_2030(&ca, &api());
    let allowed = OutboundConnection::tables(ca.bundle_pem(), &[], &Tables::default());
    let denied = OutboundConnection::tables(ca.bundle_pem(), &[&server.serial], &allowed);
    let connection = OutboundConnection {
        route: allowed.outbound[&listen()].clone(),
        endpoint: endpoint(),
        server: held(&server, Role::Server, &allowed.trust.anchors),
    };

    let current = Current::default();
    current.replace(Arc::new(denied));
    let registry = Arc::new(Registry::default());

    assert!(registry.admit(connection, &current).is_err());
    assert!(registry.lock().is_empty());
}
