//! What changes of tables do to established connections, judged at chosen
//! moments: the peer's certificate valid from 2020 until 2030, verified in
//! 2025, its connection judged again in 2026 (certificate still valid) or
//! in 2031 (expired).
//!
//! Inbound and outbound connections hold their peer's certificate alike,
//! so the changes of trust below are run for both kinds (see [`Kind`]).

mod inbound;
mod outbound;

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::proxy::tests::support::{Leaf, TestCa, Validity, spiffe_id};
use crate::proxy::trust::{Anchors, Trust};
use crate::proxy::verified::Role;

const VERIFIED: u64 = 1_735_689_600; // 2025-01-01
const STILL_VALID: u64 = 1_767_225_600; // 2026-01-01
const EXPIRED: u64 = 1_924_992_000; // 2031-01-01

fn at(seconds: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(seconds))
}

/// The bundle of these CAs, in this order.
fn bundle(cas: &[&TestCa]) -> String {
    cas.iter().map(|ca| ca.bundle_pem()).collect()
}

/// Tables that trust `bundle_pem` and deny `denied`, keeping the anchors
/// of `previous` when the bundle is the same.
fn trusting(bundle_pem: &str, denied: &[&str], previous: &Tables) -> Tables {
    let denied: BTreeSet<String> = denied.iter().map(|s| (*s).to_owned()).collect();
    let mut tables = Tables::default();
    tables.trust = Arc::new(Trust::new(bundle_pem, denied, &previous.trust));
    tables
}

/// A certificate for `spiffe_id` from `ca`, valid from 2020 until 2030.
fn until_2030(ca: &TestCa, spiffe_id: &str) -> Leaf {
    let end = rcgen::date_time_ymd(2030, 1, 1);
    ca.leaf_with(&[spiffe_id], Validity::Until(end))
}

/// `leaf` as a connection holds it, verified as `role` in 2025 by
/// `anchors`.
fn held(leaf: &Leaf, role: Role, anchors: &Arc<Anchors>) -> PeerCertificate {
    let chain = vec![leaf.certificate.clone()];
    PeerCertificate::read(role, chain, at(VERIFIED), anchors.clone()).unwrap()
}

/// A registry holding one connection, admitted by `tables`.
struct Connected<C: Judged> {
    registry: Arc<Registry<C>>,
    counters: Counters,
    tables: Arc<Tables>,
    /// Keeps the connection in the registry.
    _admitted: Admitted<C>,
}

impl<C: Judged> Connected<C> {
    /// Admits the connection that `connect` makes with the anchors of
    /// `tables`.
    fn admit(tables: Tables, connect: impl FnOnce(&Arc<Anchors>) -> C) -> Self {
        let tables = Arc::new(tables);
        let connection = connect(&tables.trust.anchors);
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

/// One kind of connection: the tables that allow it, and how it is made.
trait Kind: Judged + Sized {
    /// The service account of the peer, in namespace `shop`.
    const PEER: &'static str;

    /// Tables that allow the connection, trust `bundle_pem` and deny
    /// `denied`; anchors are kept from `previous` when the bundle is the
    /// same.
    fn tables(bundle_pem: &str, denied: &[&str], previous: &Tables) -> Tables;

    /// The registry of one connection whose peer presented `leaf`, verified
    /// in 2025 by `tables`.
    fn connected(leaf: &Leaf, tables: Tables) -> Connected<Self>;

    /// The counter of connections of this kind that changes closed.
    fn closed_count(counters: &Counters) -> u64;
}

/// A connection whose peer's certificate the `old` CA signed, and the CA
/// that follows it.
struct Rotating<K: Kind> {
    old: TestCa,
    new: TestCa,
    leaf: Leaf,
    connected: Connected<K>,
}

impl<K: Kind> Rotating<K> {
    fn start() -> Self {
        let (old, new) = (TestCa::new(), TestCa::new());
        let leaf = until_2030(&old, &spiffe_id("shop", K::PEER));
        let tables = K::tables(old.bundle_pem(), &[], &Tables::default());
        let connected = K::connected(&leaf, tables);
        Self {
            old,
            new,
            leaf,
            connected,
        }
    }

    /// Applies `bundle_pem` and `denied` at `now`; returns how many
    /// connections closed.
    fn change(&mut self, bundle_pem: &str, denied: &[&str], now: u64) -> usize {
        let next = K::tables(bundle_pem, denied, &self.connected.tables);
        self.connected.change(next, now)
    }

    /// Applies `bundle_pem` with the peer's serial denied, at `now`.
    fn deny_serial(&mut self, bundle_pem: &str, now: u64) -> usize {
        let serial = self.leaf.serial.clone();
        self.change(bundle_pem, &[&serial], now)
    }

    /// Whether the connection was closed, and counted once.
    fn closed_once(&self) -> bool {
        !self.connected.open() && K::closed_count(&self.connected.counters) == 1
    }

    /// Retires the old CA once the certificate has expired.
    fn retired() -> Self {
        let mut rotating = Self::start();
        let new = rotating.new.bundle_pem().to_owned();
        assert_eq!(rotating.change(&new, &[], EXPIRED), 0);
        rotating
    }
}

fn denying_the_serial_closes_the_connection<K: Kind>() {
    let mut rotating = Rotating::<K>::start();

    let old = rotating.old.bundle_pem().to_owned();

    assert_eq!(rotating.deny_serial(&old, STILL_VALID), 1);
    assert!(rotating.closed_once());
}

fn preparing_activating_and_retiring_a_ca_keeps_the_connection<K: Kind>() {
    let mut rotating = Rotating::<K>::start();
    let (old, new) = (&rotating.old, &rotating.new);
    let steps = [
        (bundle(&[old, new]), STILL_VALID),
        (bundle(&[new, old]), STILL_VALID),
        (bundle(&[new]), EXPIRED),
    ];

    for (bundle_pem, now) in steps {
        assert_eq!(rotating.change(&bundle_pem, &[], now), 0);
    }
    assert!(rotating.connected.open());
    assert_eq!(K::closed_count(&rotating.connected.counters), 0);
}

fn a_retired_ca_stays_out_of_later_judgements<K: Kind>() {
    let mut rotating = Rotating::<K>::retired();

    let next = TestCa::new();
    let rotated_again = bundle(&[&rotating.new, &next]);

    assert_eq!(rotating.change(&rotated_again, &[], EXPIRED), 0);
    assert!(rotating.connected.open());
}

fn dropping_the_ca_of_a_certificate_still_valid_closes_the_connection<K: Kind>() {
    let mut rotating = Rotating::<K>::start();

    let new = rotating.new.bundle_pem().to_owned();

    assert_eq!(rotating.change(&new, &[], STILL_VALID), 1);
    assert!(rotating.closed_once());
}

fn after_a_rotation_the_deny_list_still_closes_the_connection<K: Kind>() {
    let mut rotating = Rotating::<K>::retired();

    let new = rotating.new.bundle_pem().to_owned();

    assert_eq!(rotating.deny_serial(&new, EXPIRED), 1);
    assert!(rotating.closed_once());
}

/// One `#[test]` for `kind` per change of trust above.
macro_rules! changes_of_trust {
    ($kind:ty) => {
        changes_of_trust!(
            $kind: denying_the_serial_closes_the_connection,
            preparing_activating_and_retiring_a_ca_keeps_the_connection,
            a_retired_ca_stays_out_of_later_judgements,
            dropping_the_ca_of_a_certificate_still_valid_closes_the_connection,
            after_a_rotation_the_deny_list_still_closes_the_connection
        );
    };
    ($kind:ty: $($change:ident),+) => {
        $(
            #[test]
            fn $change() {
                super::$change::<$kind>();
            }
        )+
    };
}
use changes_of_trust;
