//! How snapshots become routes: who claims which listener address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use palisade_proto::xds as pb;

use super::support::*;
use crate::identity::svid::WorkloadCertificates;
use crate::proxy::tables::Tables;
use crate::proxy::{Context, Counters};

fn context() -> Context {
    Context::new(
        Default::default(),
        settings(),
        Arc::new(Counters::default()),
    )
}

fn service(namespace: &str, name: &str, port: u32) -> (String, pb::Endpoints) {
    let endpoints = pb::Endpoints {
        namespace: namespace.into(),
        service: name.into(),
        spiffe_id: spiffe_id(namespace, name),
        ports: vec![pb::ServicePort {
            port,
            ..Default::default()
        }],
        ..Default::default()
    };
    (format!("{namespace}/{name}"), endpoints)
}

fn certificates(ca: &TestCa, workloads: &[&str]) -> WorkloadCertificates {
    WorkloadCertificates {
        by_workload: workloads
            .iter()
            .map(|w| ((*w).to_owned(), ca.leaf(&spiffe_id("shop", w)).svid()))
            .collect(),
        bundle_pem: ca.bundle_pem().to_owned(),
    }
}

#[test]
fn an_outbound_address_goes_to_the_first_workload_and_service_in_name_order() {
    let ca = TestCa::new();
    let mut a = workload("shop", "a", "a", 7001, 8001);
    let mut b = workload("shop", "b", "b", 7002, 8002);
    a.address = "10.0.0.1".into();
    b.address = "10.0.0.2".into();
    let mut snapshot = snapshot(&ca, vec![b, a], vec![]);
    snapshot.endpoints = BTreeMap::from([
        service("shop", "ledger", 80),
        service("bank", "ledger", 80),
        service("bank", "vault", 81),
    ]);

    let certificates = certificates(&ca, &["shop/a", "shop/b"]);
    let tables = Tables::build(
        Some(&snapshot),
        &certificates,
        &Tables::default(),
        &context(),
    );

    let owners: Vec<(SocketAddr, &str, &str)> = tables
        .outbound
        .values()
        .map(|r| (r.listen, r.workload.as_str(), r.service.as_str()))
        .collect();
    assert_eq!(
        owners,
        [
            (local(80), "shop/a", "bank/ledger"),
            (local(81), "shop/a", "bank/vault")
        ]
    );
}

#[test]
fn a_loopback_workload_listens_on_its_own_address() {
    let ca = TestCa::new();
    let mut a = workload("shop", "a", "a", 7001, 8001);
    a.address = "127.0.0.9".into();
    let mut snapshot = snapshot(&ca, vec![a], vec![]);
    snapshot.endpoints = BTreeMap::from([service("bank", "ledger", 80)]);

    let certificates = certificates(&ca, &["shop/a"]);
    let tables = Tables::build(
        Some(&snapshot),
        &certificates,
        &Tables::default(),
        &context(),
    );

    let listen: Vec<SocketAddr> = tables.outbound.keys().copied().collect();
    assert_eq!(listen, ["127.0.0.9:80".parse::<SocketAddr>().unwrap()]);
    let inbound = tables.inbound["shop/a"].listen;
    assert_eq!(inbound, "127.0.0.9:7001".parse::<SocketAddr>().unwrap());
}

#[test]
fn only_workloads_with_a_certificate_are_served_and_inbound_ports_are_not_shared() {
    let ca = TestCa::new();
    let workloads = vec![
        workload("shop", "a", "a", 7001, 8001),
        workload("shop", "b", "b", 7001, 8002),
        workload("shop", "c", "c", 7003, 8003),
    ];
    let snapshot = snapshot(&ca, workloads, vec![]);

    let certificates = certificates(&ca, &["shop/a", "shop/b"]);
    let tables = Tables::build(
        Some(&snapshot),
        &certificates,
        &Tables::default(),
        &context(),
    );

    let served: Vec<&str> = tables.inbound.keys().map(String::as_str).collect();
    assert_eq!(served, ["shop/a"]);
}

#[test]
fn without_a_snapshot_nothing_is_served() {
    let ca = TestCa::new();
    let certificates = certificates(&ca, &["shop/a"]);

    let tables = Tables::build(None, &certificates, &Tables::default(), &context());

    assert!(tables.inbound.is_empty() && tables.outbound.is_empty());
    assert!(tables.listeners().is_empty());
}
