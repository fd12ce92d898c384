//! What changes of trust do to an established connection, judged at
//! chosen moments: a caller's certificate valid from 2020 until 2030,
//! verified in 2025, its connection judged again in 2026 (certificate
//! still valid) or in 2031 (expired).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::authz::Policy;
use crate::proxy::peer;
use crate::proxy::tests::support::{Leaf, TD, TestCa, Validity, allow, identities, spiffe_id};

const WORKLOAD: &str = "shop/api-1";
const VERIFIED: u64 = 1_735_689_600; // 2025-01-01
const STILL_VALID: u64 = 1_767_225_600; // 2026-01-01
const EXPIRED: u64 = 1_924_992_000; // 2031-01-01

fn at(seconds: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(seconds))
}

fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15008))
}

fn web() -> String {
    spiffe_id("shop", "web")
}

/// The bundle of these CAs, in this order.
fn bundle(cas: &[&TestCa]) -> String {
    cas.iter().map(|ca| ca.bundle_pem()).collect()
}

/// Tables that serve shop/api-1 to `callers`, trust `bundle_pem` and deny
/// `denied`; anchors are kept from `previous` when the bundle is the same.
fn tables(bundle_pem: &str, denied: &[&str], callers: &[&str], previous: &Tables) -> Tables {
    let denied: BTreeSet<String> = denied.iter().map(|s| (*s).to_owned()).collect();
    let policy = Policy::compile(&allow("shop", "api", vec![identities(callers)]), TD);
    let route = InboundRoute {
        workload: WORKLOAD.to_owned(),
        listen: listen(),
        app_port: 8080,
        port: 8080,
        policy,
    };

    let mut tables = Tables::default();
    tables.trust = Arc::new(Trust::new(bundle_pem, denied, &previous.trust));
    tables.inbound.insert(WORKLOAD.to_owned(), Arc::new(route));
    tables
}

/// A registry holding one connection of shop/web, whose certificate
/// `caller` was verified in 2025 by `tables`.
struct Connected {
    registry: Arc<Registry>,
    counters: Counters,
    tables: Arc<Tables>,
    /// Keeps the connection in the registry.
    _admitted: Admitted,
}

impl Connected {
    fn admit(caller: &Leaf, tables: Tables) -> Self {
        let identified = peer::identify(&caller.certificate).unwrap();
        let tables = Arc::new(tables);
        let connection = Established {
            caller: Caller::new(&identified.spiffe_id, IpAddr::from([127, 0, 0, 1])),
            serial: identified.serial,
            not_after: identified.not_after,
            chain: vec![caller.certificate.clone()],
            verified_at: at(VERIFIED),
            anchors: tables.trust.anchors.clone(),
            workload: WORKLOAD.to_owned(),
            listen: listen(),
        };
        let current = Current::default();
        current.replace(tables.clone());

        let registry = Arc::new(Registry::default());
        let admitted = registry.admit(connection, &current).unwrap();
        Self {
            registry,
            counters: Counters::default(),
            tables,
            _admitted: admitted,
        }
    }

    /// Swaps in `next` and judges the connection again at `now`; returns
    /// how many connections were closed.
    fn change(&mut self, next: Tables, now: u64) -> usize {
        self.tables = Arc::new(next);
        self.registry
            .reevaluate_at(&self.tables, &self.counters, at(now))
    }

    fn open(&self) -> bool {
        self.registry.lock().len() == 1
    }
}

fn until_2030(ca: &TestCa) -> Leaf {
    let end = rcgen::date_time_ymd(2030, 1, 1);
    ca.leaf_with(&[&web()], Validity::Until(end))
}

#[test]
fn preparing_activating_and_retiring_a_ca_keeps_the_connection() {
    let (old, new) = (TestCa::new(), TestCa::new());
    let caller = until_2030(&old);
    let mut connected = Connected::admit(
        &caller,
        tables(old.bundle_pem(), &[], &[&web()], &Tables::default()),
    );

    let prepared = tables(&bundle(&[&old, &new]), &[], &[&web()], &connected.tables);
    assert_eq!(connected.change(prepared, STILL_VALID), 0);
    let activated = tables(&bundle(&[&new, &old]), &[], &[&web()], &connected.tables);
    assert_eq!(connected.change(activated, STILL_VALID), 0);
    let retired = tables(new.bundle_pem(), &[], &[&web()], &connected.tables);
    assert_eq!(connected.change(retired, EXPIRED), 0);

    assert!(connected.open());
    assert_eq!(Counters::read(&connected.counters.inbound_revoked), 0);
}

#[test]
fn a_retired_ca_stays_out_of_later_judgements() {
    let (old, new) = (TestCa::new(), TestCa::new());
    let caller = until_2030(&old);
    let mut connected = Connected::admit(
        &caller,
        tables(old.bundle_pem(), &[], &[&web()], &Tables::default()),
    );
    let retired = tables(new.bundle_pem(), &[], &[&web()], &connected.tables);
    assert_eq!(connected.change(retired, EXPIRED), 0);

    let next = TestCa::new();
    let rotated_again = tables(&bundle(&[&new, &next]), &[], &[&web()], &connected.tables);

    assert_eq!(connected.change(rotated_again, EXPIRED), 0);
    assert!(connected.open());
}

#[test]
fn dropping_the_ca_of_a_certificate_still_valid_closes_the_connection() {
    let (old, new) = (TestCa::new(), TestCa::new());
    let caller = until_2030(&old);
    let mut connected = Connected::admit(
        &caller,
        tables(old.bundle_pem(), &[], &[&web()], &Tables::default()),
    );

    let distrusted = tables(new.bundle_pem(), &[], &[&web()], &connected.tables);

    assert_eq!(connected.change(distrusted, STILL_VALID), 1);
    assert!(!connected.open());
    assert_eq!(Counters::read(&connected.counters.inbound_revoked), 1);
}

#[test]
fn after_a_rotation_the_deny_list_still_closes_the_connection() {
    let (old, new) = (TestCa::new(), TestCa::new());
    let caller = until_2030(&old);
    let mut connected = Connected::admit(
        &caller,
        tables(old.bundle_pem(), &[], &[&web()], &Tables::default()),
    );
    let retired = tables(new.bundle_pem(), &[], &[&web()], &connected.tables);
    assert_eq!(connected.change(retired, EXPIRED), 0);

    let denied = tables(
        new.bundle_pem(),
        &[&caller.serial],
        &[&web()],
        &connected.tables,
    );

    assert_eq!(connected.change(denied, EXPIRED), 1);
    assert!(!connected.open());
}

#[test]
fn after_a_rotation_a_policy_change_still_closes_the_connection() {
    let (old, new) = (TestCa::new(), TestCa::new());
    let caller = until_2030(&old);
    let mut connected = Connected::admit(
        &caller,
        tables(old.bundle_pem(), &[], &[&web()], &Tables::default()),
    );
    let retired = tables(new.bundle_pem(), &[], &[&web()], &connected.tables);
    assert_eq!(connected.change(retired, EXPIRED), 0);

    let cart = spiffe_id("shop", "cart");
    let narrowed = tables(new.bundle_pem(), &[], &[&cart], &connected.tables);

    assert_eq!(connected.change(narrowed, EXPIRED), 1);
    assert!(!connected.open());
}
