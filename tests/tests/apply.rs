//! Apply is all or nothing, and its errors name the document and the field.

use palisade_tests::{ControlPlane, apply, list_all, pb, revision};

const SHOP: &str = r#"
apiVersion: palisade.dev/v1
kind: Node
metadata: {name: web-1}
spec: {address: 10.0.0.1}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{port: 8080, protocol: http}]
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 8080, inboundPort: 15008}
"#;

const BAD_POLICY: &str = r#"
kind: AuthorizationPolicy
metadata: {name: orders, namespace: shop}
spec:
  targetService: orders
  rules:
    - from:
        - namespaces: [shop]
        - ipBlocks: ["10.0.0.0/33"]
"#;

#[tokio::test]
async fn one_bad_document_changes_nothing_and_is_named() {
    let mut cp = ControlPlane::init("example.org").unwrap();
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();
    let before = revision(&mut client).await.unwrap();

    let mut content = String::from(SHOP.trim_start());
    let first_two: Vec<&str> = content.split("---").take(2).collect();
    content = format!("{}---{}---{BAD_POLICY}", first_two[0], first_two[1]);
    let status = apply(&mut client, &content).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains(
            r#"doc 3 (AuthorizationPolicy shop/orders): spec.rules[0].from[1].ipBlocks[0]: "10.0.0.0/33" is not a CIDR"#
        ),
        "{}",
        status.message()
    );
    assert_eq!(revision(&mut client).await.unwrap(), before);
    assert!(list_all(&mut client, "Node").await.unwrap().is_empty());
    assert!(list_all(&mut client, "Service").await.unwrap().is_empty());
}

#[tokio::test]
async fn applied_documents_read_back_with_their_revision() {
    let mut cp = ControlPlane::init("example.org").unwrap();
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();

    let reply = apply(&mut client, SHOP).await.unwrap();

    let actions: Vec<i32> = reply.changes.iter().map(|c| c.action).collect();
    assert_eq!(actions, vec![pb::ChangeAction::Created as i32; 3]);
    let get = pb::GetRequest {
        kind: "Workload".into(),
        namespace: "shop".into(),
        name: "orders-1".into(),
    };
    let workload = client.get(get).await.unwrap().into_inner();
    assert_eq!(workload.revision, reply.revision);
    let document: serde_json::Value = serde_json::from_str(&workload.document).unwrap();
    assert_eq!(document["spec"]["appPort"], 8080);
    assert_eq!(document["metadata"]["revision"], reply.revision);

    let again = apply(&mut client, SHOP).await.unwrap();
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.action == pb::ChangeAction::Unchanged as i32)
    );
    assert_eq!(again.revision, reply.revision);
}
