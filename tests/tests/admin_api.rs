//! The admin API's answers beyond a plain apply: a dry run reports the
//! changes and writes nothing, a label selector lists exactly what matches,
//! and a resource that others use cannot be deleted.

use palisade_tests::{Admin, ControlPlane, apply, last_audit, list_all, pb, revision};
use tonic::Code;

const SHOP: &str = include_str!("../../deploy/examples/shop.yaml");

/// The orders Service on a new port, a new payments Service, and storefront
/// as it already is.
const CHANGES: &str = r#"
kind: Service
metadata: {name: orders, namespace: shop, labels: {app: orders}}
spec:
  ports: [{name: grpc, port: 9091, protocol: grpc}]
---
kind: Service
metadata: {name: payments, namespace: shop}
spec:
  ports: [{name: http, port: 8443, protocol: http}]
---
kind: Service
metadata: {name: storefront, namespace: shop, labels: {app: storefront}}
spec:
  ports: [{name: http, port: 8080, protocol: http}]
"#;

async fn started() -> (ControlPlane, Admin) {
    let mut cp = ControlPlane::init("api.test").unwrap();
    cp.start().await.unwrap();
    let client = cp.admin().await.unwrap();
    (cp, client)
}

async fn get(client: &mut Admin, kind: &str, namespace: &str, name: &str) -> pb::Resource {
    let request = pb::GetRequest {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    client.get(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn dry_run_reports_each_change_with_its_diff_and_writes_nothing() {
    let (_cp, mut client) = started().await;
    apply(&mut client, SHOP).await.unwrap();
    let before = revision(&mut client).await.unwrap();
    let services_before = list_all(&mut client, "Service").await.unwrap();

    let request = pb::ApplyRequest {
        source: "changes.yaml".into(),
        content: CHANGES.into(),
        dry_run: true,
    };
    let reply = client.apply(request).await.unwrap().into_inner();

    assert!(reply.dry_run);
    assert_eq!(reply.revision, before);
    let actions: Vec<(&str, pb::ChangeAction)> = reply
        .changes
        .iter()
        .map(|c| (c.name.as_str(), c.action()))
        .collect();
    assert_eq!(
        actions,
        [
            ("orders", pb::ChangeAction::Updated),
            ("payments", pb::ChangeAction::Created),
            ("storefront", pb::ChangeAction::Unchanged),
        ]
    );
    let updated = &reply.changes[0].diff;
    assert!(updated.starts_with("--- a/Service/shop/orders\n+++ b/Service/shop/orders\n"));
    assert!(
        has_line(updated, '-', "9090") && has_line(updated, '+', "9091"),
        "{updated}"
    );
    assert!(!has_line(updated, '-', "name: orders"), "{updated}");
    let created = &reply.changes[1].diff;
    assert!(
        created.starts_with("--- /dev/null\n+++ b/Service/shop/payments\n"),
        "{created}"
    );
    assert!(has_line(created, '+', "8443"), "{created}");
    assert!(reply.changes[2].diff.is_empty());

    assert_eq!(revision(&mut client).await.unwrap(), before);
    assert_eq!(
        list_all(&mut client, "Service").await.unwrap(),
        services_before
    );
    let orders = get(&mut client, "Service", "shop", "orders").await;
    assert!(orders.document.contains("9090"), "{}", orders.document);
}

/// Whether a line of `diff` starts with `sign` and contains `text`.
fn has_line(diff: &str, sign: char, text: &str) -> bool {
    diff.lines()
        .any(|line| line.starts_with(sign) && !line.starts_with("---") && line.contains(text))
}

#[tokio::test]
async fn dry_run_of_a_bad_apply_is_refused_like_the_real_one() {
    let (_cp, mut client) = started().await;
    let before = revision(&mut client).await.unwrap();
    let dangling = "kind: Workload\nmetadata: {name: w, namespace: shop}\n\
                    spec: {service: nowhere, node: web-1, appPort: 80, inboundPort: 15008}\n";

    let request = pb::ApplyRequest {
        source: "w.yaml".into(),
        content: dangling.into(),
        dry_run: true,
    };
    let status = client.apply(request).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("spec.service"),
        "{}",
        status.message()
    );
    assert_eq!(revision(&mut client).await.unwrap(), before);
}

const LABELLED_NODES: &str = r#"
kind: Node
metadata: {name: n-a, labels: {zone: a, tier: edge}}
spec: {address: 10.0.0.1}
---
kind: Node
metadata: {name: n-b, labels: {zone: b}}
spec: {address: 10.0.0.2}
---
kind: Node
metadata: {name: n-c}
spec: {address: 10.0.0.3}
---
kind: Node
metadata: {name: n-d, labels: {zone: a, legacy: "true"}}
spec: {address: 10.0.0.4}
"#;

async fn names(client: &mut Admin, kind: &str, namespace: &str, selector: &str) -> Vec<String> {
    let request = pb::ListRequest {
        kind: kind.into(),
        namespace: namespace.into(),
        label_selector: selector.into(),
        ..Default::default()
    };
    let reply = client.list(request).await.unwrap().into_inner();
    reply.resources.into_iter().map(|r| r.name).collect()
}

#[tokio::test]
async fn label_selectors_list_exactly_the_matching_resources() {
    let (_cp, mut client) = started().await;
    apply(&mut client, LABELLED_NODES).await.unwrap();

    assert_eq!(
        names(&mut client, "Node", "", "").await,
        ["n-a", "n-b", "n-c", "n-d"]
    );
    assert_eq!(
        names(&mut client, "Node", "", "zone=a").await,
        ["n-a", "n-d"]
    );
    assert_eq!(names(&mut client, "Node", "", "zone==b").await, ["n-b"]);
    assert_eq!(
        names(&mut client, "Node", "", "zone!=a").await,
        ["n-b", "n-c"]
    );
    assert_eq!(names(&mut client, "Node", "", "tier").await, ["n-a"]);
    assert_eq!(names(&mut client, "Node", "", "!zone").await, ["n-c"]);
    assert_eq!(
        names(&mut client, "Node", "", "zone=a,!legacy").await,
        ["n-a"]
    );
    assert_eq!(
        names(&mut client, "Node", "", "zone, tier!=edge").await,
        ["n-b", "n-d"]
    );
    assert!(names(&mut client, "Node", "", "zone=c").await.is_empty());
}

#[tokio::test]
async fn label_selector_and_namespace_narrow_a_list_together() {
    let (_cp, mut client) = started().await;
    let services = r#"
kind: Service
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: web, namespace: blog, labels: {app: web}}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {ports: [{port: 5432}]}
"#;
    apply(&mut client, services).await.unwrap();

    assert_eq!(
        names(&mut client, "Service", "shop", "app=web").await,
        ["web"]
    );
    assert_eq!(
        names(&mut client, "Service", "", "app=web").await,
        ["web", "web"]
    );
    assert_eq!(
        names(&mut client, "Service", "shop", "app!=web").await,
        ["db"]
    );
}

#[tokio::test]
async fn malformed_label_selector_is_refused_naming_its_part() {
    let (_cp, mut client) = started().await;

    let request = pb::ListRequest {
        kind: "Node".into(),
        label_selector: "zone=a,=b".into(),
        ..Default::default()
    };
    let status = client.list(request).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains(r#""=b""#), "{}", status.message());
}

fn delete_request(kind: &str, namespace: &str, name: &str, dry_run: bool) -> pb::DeleteRequest {
    pb::DeleteRequest {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
        expected_revision: 0,
        dry_run,
    }
}

#[tokio::test]
async fn service_in_use_cannot_be_deleted_and_its_users_are_named() {
    let (_cp, mut client) = started().await;
    apply(&mut client, SHOP).await.unwrap();
    let before = revision(&mut client).await.unwrap();

    let refused = client
        .delete(delete_request("Service", "shop", "orders", false))
        .await
        .unwrap_err();
    let dry_run = client
        .delete(delete_request("Service", "shop", "orders", true))
        .await
        .unwrap_err();

    for status in [&refused, &dry_run] {
        assert_eq!(status.code(), Code::FailedPrecondition);
        let message = status.message();
        assert!(
            message.starts_with("Service shop/orders is used by "),
            "{message}"
        );
        assert!(message.contains("Workload shop/orders-1"), "{message}");
        assert!(
            message.contains("AuthorizationPolicy shop/orders-from-storefront"),
            "{message}"
        );
        assert!(!message.contains("storefront-1"), "{message}");
    }
    assert_eq!(revision(&mut client).await.unwrap(), before);
    get(&mut client, "Service", "shop", "orders").await;
    let audit = last_audit(&mut client).await;
    assert_eq!(
        (audit.action.as_str(), audit.outcome.as_str()),
        ("delete", "invalid")
    );
    assert_eq!(audit.targets, ["Service/shop/orders"]);
}

#[tokio::test]
async fn service_can_be_deleted_once_nothing_uses_it() {
    let (_cp, mut client) = started().await;
    apply(&mut client, SHOP).await.unwrap();

    let users = [
        ("Workload", "orders-1"),
        ("AuthorizationPolicy", "orders-from-storefront"),
    ];
    for (kind, name) in users {
        client
            .delete(delete_request(kind, "shop", name, false))
            .await
            .unwrap();
    }
    let deleted = client
        .delete(delete_request("Service", "shop", "orders", false))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(deleted.change.unwrap().action(), pb::ChangeAction::Deleted);
    assert_eq!(
        names(&mut client, "Service", "shop", "").await,
        ["storefront"]
    );
}

#[tokio::test]
async fn node_in_use_cannot_be_deleted_and_its_workloads_are_named() {
    let (_cp, mut client) = started().await;
    apply(&mut client, SHOP).await.unwrap();
    let before = revision(&mut client).await.unwrap();

    let status = client
        .delete(delete_request("Node", "", "web-2", false))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "Node web-2 is used by Workload shop/orders-1"
    );
    assert_eq!(revision(&mut client).await.unwrap(), before);
    assert_eq!(list_all(&mut client, "Node").await.unwrap().len(), 2);
}
