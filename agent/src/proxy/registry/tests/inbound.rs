//! Inbound connections: a caller's certificate under changes of trust and
//! deny list, and the policy of the workload called.

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::authz::{Caller, Policy};
use crate::proxy::tables::InboundRoute;
use crate::proxy::tests::support::{TD, allow, identities};

const WORKLOAD: &str = "shop/api-1";

fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15008))
}

/// Tables that serve shop/api-1 to `callers`, trust `bundle_pem` and deny
/// `denied`; anchors are kept from `previous` when the bundle is the same.
fn tables(bundle_pem: &str, denied: &[&str], callers: &[&str], previous: &Tables) -> Tables {
    let policy = Policy::compile(&allow("shop", "api", vec![identities(callers)]), TD);
    let route = InboundRoute {
        workload: WORKLOAD.to_owned(),
        listen: listen(),
        app_port: 8080,
        port: 8080,
        policy,
    };

    let mut tables = trusting(bundle_pem, denied, previous);
    tables.inbound.insert(WORKLOAD.to_owned(), Arc::new(route));
    tables
}

impl Kind for InboundConnection {
    const PEER: &'static str = "web";

    fn tables(bundle_pem: &str, denied: &[&str], previous: &Tables) -> Tables {
        let caller = spiffe_id("shop", Self::PEER);
        tables(bundle_pem, denied, &[&caller], previous)
    }

    fn connected(leaf: &Leaf, tables: Tables) -> Connected<Self> {
        Connected::admit(tables, |anchors| {
            let certificate = held(leaf, Role::Client, anchors);
            InboundConnection {
                caller: Caller::new(&certificate.spiffe_id, IpAddr::from([127, 0, 0, 1])),
                certificate,
                workload: WORKLOAD.to_owned(),
                listen: listen(),
            }
        })
    }

    fn closed_count(counters: &Counters) -> u64 {
        Counters::read(&counters.inbound_revoked)
    }
}

changes_of_trust!(InboundConnection);

#[test]
fn after_a_rotation_a_policy_change_still_closes_the_connection() {
    let mut rotating = Rotating::<InboundConnection>::retired();

    let cart = spiffe_id("shop", "cart");
    let new = rotating.new.bundle_pem();
    let narrowed = tables(new, &[], &[&cart], &rotating.connected.tables);

    assert_eq!(rotating.connected.change(narrowed, EXPIRED), 1);
    assert!(!rotating.connected.open());
}

#[test]
fn a_workload_no_longer_served_closes_the_connection() {
    let mut rotating = Rotating::<InboundConnection>::start();

    let old = rotating.old.bundle_pem();
    let unserved = trusting(old, &[], &rotating.connected.tables);

    assert_eq!(rotating.connected.change(unserved, STILL_VALID), 1);
    assert!(rotating.closed_once());
}
