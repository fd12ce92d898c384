use super::*;
use crate::xds::testing::stored;

const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {address: 10.0.0.1}
---
kind: Node
metadata: {name: web-2}
spec: {address: 10.0.0.2}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec: {ports: [{port: 9090, protocol: grpc}]}
---
kind: Service
metadata: {name: storefront, namespace: shop}
spec: {ports: [{port: 8080, protocol: http}]}
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-2, appPort: 8080, inboundPort: 15008}
---
kind: AuthorizationPolicy
metadata: {name: orders-from-storefront, namespace: shop}
spec:
  targetService: orders
  rules:
    - from: [{identities: ["spiffe://td/ns/shop/sa/storefront"]}]
"#;

fn shop() -> World {
    let mut world = World::new("td");
    for resource in stored(SHOP, 1) {
        world.insert(&resource);
    }
    world
}

#[test]
fn loaded_world_indexes_workloads_by_node_and_service() {
    let world = shop();

    let on_web1: Vec<&str> = world
        .workloads_on("web-1")
        .map(|((_, n), _)| n.as_str())
        .collect();
    let orders = ("shop".to_owned(), "orders".to_owned());

    assert_eq!(on_web1, ["orders-1"]);
    assert_eq!(
        world.nodes_hosting(&orders),
        BTreeSet::from(["web-1".to_owned()])
    );
    assert_eq!(
        world.service_identity(&orders).unwrap(),
        "spiffe://td/ns/shop/sa/orders"
    );
}

#[test]
fn allow_policy_makes_the_target_callable_only_by_its_sources() {
    let world = shop();
    let orders = ("shop".to_owned(), "orders".to_owned());

    assert!(
        world
            .callable_by("spiffe://td/ns/shop/sa/storefront", "shop")
            .contains(&orders)
    );
    assert!(
        world
            .callable_by("spiffe://td/ns/shop/sa/orders", "shop")
            .is_empty()
    );
}

#[test]
fn moving_a_workload_touches_both_nodes_and_its_service() {
    let mut world = shop();
    let moved = "kind: Workload\nmetadata: {name: orders-1, namespace: shop}\n\
                 spec: {service: orders, node: web-2, appPort: 9090, inboundPort: 15008}\n";

    let touched = world.change(&ChangeEvent {
        action: ChangeAction::Updated,
        resource: stored(moved, 2).remove(0),
    });

    assert_eq!(
        touched.nodes,
        BTreeSet::from(["web-1".to_owned(), "web-2".to_owned()])
    );
    assert_eq!(
        touched.services,
        BTreeSet::from([("shop".to_owned(), "orders".to_owned())])
    );
    assert!(!touched.everything);
}

#[test]
fn deleting_a_policy_touches_everything_and_removes_it() {
    let mut world = shop();
    let mut policy = stored(SHOP, 1).pop().unwrap();
    policy.revision = 3;

    let touched = world.change(&ChangeEvent {
        action: ChangeAction::Deleted,
        resource: policy,
    });

    assert!(touched.everything);
    assert!(world.policies.is_empty());
}

#[test]
fn records_of_other_kinds_are_ignored() {
    let mut world = shop();
    let record = StoredResource {
        key: "IssuedCertificate/web-1/abcd".into(),
        revision: 4,
        create_revision: 4,
        document: "{}".into(),
    };

    assert!(world.insert(&record).is_empty());
}

#[test]
fn the_indexes_follow_a_workload_that_moves_and_one_that_is_deleted() {
    let mut world = shop();
    let moved = "kind: Workload\nmetadata: {name: orders-1, namespace: shop}\n\
                 spec: {service: orders, node: web-2, appPort: 9090, inboundPort: 15008}\n";
    let orders = ("shop".to_owned(), "orders".to_owned());

    world.change(&ChangeEvent {
        action: ChangeAction::Updated,
        resource: stored(moved, 2).remove(0),
    });
    assert_eq!(world.workloads_on("web-1").count(), 0);
    assert_eq!(world.workloads_on("web-2").count(), 2);
    assert_eq!(
        world.nodes_hosting(&orders),
        BTreeSet::from(["web-2".to_owned()])
    );

    world.change(&ChangeEvent {
        action: ChangeAction::Deleted,
        resource: stored(moved, 3).remove(0),
    });
    assert_eq!(world.workloads_on("web-2").count(), 1);
    assert_eq!(world.workloads_of(&orders).count(), 0);
}

#[test]
fn creating_or_deleting_a_service_touches_everything() {
    let mut world = shop();
    let payments = "kind: Service\nmetadata: {name: payments, namespace: shop}\n\
                    spec: {ports: [{port: 9090}]}\n";
    let changed = "kind: Service\nmetadata: {name: payments, namespace: shop}\n\
                   spec: {ports: [{port: 9091}]}\n";

    let created = world.change(&ChangeEvent {
        action: ChangeAction::Created,
        resource: stored(payments, 2).remove(0),
    });
    let updated = world.change(&ChangeEvent {
        action: ChangeAction::Updated,
        resource: stored(changed, 3).remove(0),
    });
    let deleted = world.change(&ChangeEvent {
        action: ChangeAction::Deleted,
        resource: stored(changed, 4).remove(0),
    });

    assert!(created.everything);
    assert!(
        !updated.everything,
        "a port change touches only its service"
    );
    assert!(deleted.everything);
}
