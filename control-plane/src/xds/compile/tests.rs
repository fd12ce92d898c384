use super::*;
use crate::store::{ChangeAction, ChangeEvent};
use crate::xds::testing::{events, world_at};

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
metadata: {name: storefront, namespace: shop}
spec: {ports: [{port: 8080, protocol: http}]}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-2, appPort: 8080, inboundPort: 15008}
---
kind: AuthorizationPolicy
metadata: {name: shop-calls-shop, namespace: shop}
spec:
  rules:
    - from: [{namespaces: [shop]}]
"#;

const PAYMENTS: &str = r#"
kind: Service
metadata: {name: payments, namespace: shop}
spec: {ports: [{port: 9090, protocol: grpc}]}
---
kind: Workload
metadata: {name: payments-1, namespace: shop}
spec: {service: payments, node: web-1, appPort: 9090, inboundPort: 15009}
"#;

fn created(yaml: &str, revision: u64) -> Vec<ChangeEvent> {
    events(yaml, revision, ChangeAction::Created)
}

fn compiler() -> Compiler {
    Compiler::new(world_at(SHOP, 1))
}

fn endpoints(view: &View) -> Vec<String> {
    view.of(agent::ENDPOINTS_TYPE_URL)
        .map(|resources| resources.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn a_service_created_later_reaches_callers_its_policies_already_allow() {
    let mut compiler = compiler();
    let caller = ClientKey::Agent("web-2".into());
    let view = compiler.subscribe(&caller);
    assert!(endpoints(&view.borrow()).contains(&"shop/storefront".to_owned()));

    for event in created(PAYMENTS, 2) {
        compiler.update(|world| world.change(&event));
    }

    assert!(
        endpoints(&view.borrow()).contains(&"shop/payments".to_owned()),
        "{:?}",
        endpoints(&view.borrow())
    );
}

#[test]
fn a_deleted_service_leaves_the_views_of_its_callers() {
    let mut compiler = compiler();
    for event in created(PAYMENTS, 2) {
        compiler.update(|world| world.change(&event));
    }
    let caller = ClientKey::Agent("web-2".into());
    let view = compiler.subscribe(&caller);
    assert!(endpoints(&view.borrow()).contains(&"shop/payments".to_owned()));

    for mut event in created(PAYMENTS, 3).into_iter().rev() {
        event.action = ChangeAction::Deleted;
        compiler.update(|world| world.change(&event));
    }

    assert!(!endpoints(&view.borrow()).contains(&"shop/payments".to_owned()));
}

#[test]
fn a_new_stream_of_a_known_client_shares_its_view() {
    let mut compiler = compiler();
    let caller = ClientKey::Agent("web-2".into());

    let first = compiler.subscribe(&caller);
    let second = compiler.subscribe(&caller);

    assert!(Arc::ptr_eq(&first.borrow(), &second.borrow()));
    assert_eq!(compiler.clients(), 1);
}
