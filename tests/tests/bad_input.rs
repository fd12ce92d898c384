//! Every kind of bad input to the admin API gets a clear status, is audited,
//! and changes nothing: the store's revision and its resources stay as they
//! were.

use palisade_tests::{ControlPlane, Credentials, apply, last_audit, list_all, pb, revision};
use tonic::Code;
use tonic::transport::Channel;

type Client = palisade_proto::admin::admin_client::AdminClient<Channel>;

const BASE: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {address: 10.0.0.1}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{port: 8080, protocol: http}]
"#;

/// What the store held before a bad call: its revision and every resource.
#[derive(Debug, PartialEq)]
struct Snapshot {
    revision: u64,
    documents: Vec<String>,
}

async fn snapshot(client: &mut Client) -> Snapshot {
    let mut documents = Vec::new();
    for kind in [
        "Node",
        "Service",
        "Workload",
        "AuthorizationPolicy",
        "JwtIssuer",
        "RequestAuthentication",
        "AdminRole",
        "AdminBinding",
    ] {
        let listed = list_all(client, kind).await.unwrap();
        documents.extend(listed.into_iter().map(|r| r.document));
    }
    Snapshot {
        revision: revision(client).await.unwrap(),
        documents,
    }
}

/// A control plane holding [`BASE`], and an admin client for it.
async fn started() -> (ControlPlane, Client) {
    let mut cp = ControlPlane::init("bad.test").unwrap();
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();
    apply(&mut client, BASE).await.unwrap();
    (cp, client)
}

/// Applies `content`, expects `code` with `needle` in the message, and checks
/// that nothing changed and that the refusal was audited.
async fn refused_apply(client: &mut Client, content: &str, code: Code, needle: &str) {
    let before = snapshot(client).await;

    let status = apply(client, content).await.unwrap_err();

    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(needle),
        "expected {needle:?} in: {}",
        status.message()
    );
    assert_eq!(
        snapshot(client).await,
        before,
        "a refused apply changed the store"
    );
    let audit = last_audit(client).await;
    assert_eq!(audit.action, "apply");
    assert_ne!(audit.outcome, "ok", "{audit:?}");
    assert!(
        audit.detail.contains(needle),
        "audit detail: {}",
        audit.detail
    );
}

#[tokio::test]
async fn malformed_yaml_names_line_and_column() {
    let (_cp, mut client) = started().await;
    let content = "kind: Node\nmetadata: {name: web-2}\nspec:\n  address: [10.0.0.2\n";

    refused_apply(
        &mut client,
        content,
        Code::InvalidArgument,
        "doc 1: line 5 column 1",
    )
    .await;
}

#[tokio::test]
async fn unknown_kind_is_named() {
    let (_cp, mut client) = started().await;
    let content = "kind: Gadget\nmetadata: {name: g}\nspec: {}\n";

    refused_apply(&mut client, content, Code::InvalidArgument, "Gadget").await;
}

#[tokio::test]
async fn unknown_field_is_named_with_its_path() {
    let (_cp, mut client) = started().await;
    let content = "kind: Node\nmetadata: {name: web-2}\nspec: {adress: 10.0.0.2}\n";

    refused_apply(
        &mut client,
        content,
        Code::InvalidArgument,
        "doc 1 (Node web-2): spec: unknown field `adress`",
    )
    .await;
}

#[tokio::test]
async fn duplicate_names_in_one_apply_are_refused() {
    let (_cp, mut client) = started().await;
    let content = "kind: Node\nmetadata: {name: web-2}\nspec: {address: 10.0.0.2}\n---\n\
                   kind: Node\nmetadata: {name: web-2}\nspec: {address: 10.0.0.3}\n";

    refused_apply(
        &mut client,
        content,
        Code::InvalidArgument,
        "doc 2 (Node web-2): duplicates doc 1",
    )
    .await;
}

#[tokio::test]
async fn dangling_reference_is_refused() {
    let (_cp, mut client) = started().await;
    let content = "kind: Workload\nmetadata: {name: orders-1, namespace: shop}\n\
                   spec: {service: orders, node: web-9, appPort: 8080, inboundPort: 15008}\n";

    refused_apply(
        &mut client,
        content,
        Code::InvalidArgument,
        "doc 1 (Workload shop/orders-1): spec.node: Node web-9 does not exist",
    )
    .await;
}

/// A valid document to go first in an apply, so that a refusal is seen to
/// change nothing, not even what was valid.
const VALID_FIRST: &str = "kind: Node\nmetadata: {name: web-2}\nspec: {address: 10.0.0.2}\n---\n";

#[tokio::test]
async fn workload_naming_a_missing_service_is_refused() {
    let (_cp, mut client) = started().await;
    let content = format!(
        "{VALID_FIRST}kind: Workload\nmetadata: {{name: orders-1, namespace: shop}}\n\
         spec: {{service: payments, node: web-1, appPort: 8080, inboundPort: 15008}}\n"
    );

    refused_apply(
        &mut client,
        &content,
        Code::InvalidArgument,
        "doc 2 (Workload shop/orders-1): spec.service: Service shop/payments does not exist",
    )
    .await;
}

#[tokio::test]
async fn policy_targeting_a_missing_service_is_refused() {
    let (_cp, mut client) = started().await;
    let content = format!(
        "{VALID_FIRST}kind: AuthorizationPolicy\nmetadata: {{name: pay, namespace: shop}}\n\
         spec: {{targetService: payments, action: ALLOW, rules: [{{from: [{{namespaces: [shop]}}]}}]}}\n"
    );

    refused_apply(
        &mut client,
        &content,
        Code::InvalidArgument,
        "doc 2 (AuthorizationPolicy shop/pay): spec.targetService: \
         Service shop/payments does not exist",
    )
    .await;
}

#[tokio::test]
async fn request_authentication_naming_a_missing_issuer_is_refused() {
    let (_cp, mut client) = started().await;
    let content = format!(
        "{VALID_FIRST}kind: JwtIssuer\nmetadata: {{name: corp, namespace: shop}}\n\
         spec: {{issuer: \"https://id.example.com\", jwksUri: \"https://id.example.com/jwks\"}}\n\
         ---\nkind: RequestAuthentication\nmetadata: {{name: orders, namespace: shop}}\n\
         spec:\n  targetService: orders\n  issuers: [{{issuer: corp}}, {{issuer: partners}}]\n"
    );

    refused_apply(
        &mut client,
        &content,
        Code::InvalidArgument,
        "doc 3 (RequestAuthentication shop/orders): spec.issuers[1].issuer: \
         JwtIssuer shop/partners does not exist",
    )
    .await;
}

#[tokio::test]
async fn binding_to_a_missing_custom_role_is_refused() {
    let (_cp, mut client) = started().await;
    let content = format!(
        "{VALID_FIRST}kind: AdminBinding\nmetadata: {{name: ops}}\n\
         spec: {{role: shop-operator, subjects: [\"spiffe://bad.test/admin/olga\"]}}\n"
    );

    refused_apply(
        &mut client,
        &content,
        Code::InvalidArgument,
        "doc 2 (AdminBinding ops): spec.role: AdminRole shop-operator does not exist",
    )
    .await;
}

#[tokio::test]
async fn stale_revision_is_aborted() {
    let (_cp, mut client) = started().await;
    let get = pb::GetRequest {
        kind: "Node".into(),
        name: "web-1".into(),
        ..Default::default()
    };
    let read_at = client.get(get).await.unwrap().into_inner().revision;
    apply(
        &mut client,
        "kind: Node\nmetadata: {name: web-1}\nspec: {address: 10.0.0.9}\n",
    )
    .await
    .unwrap();
    let stale = format!(
        "kind: Node\nmetadata: {{name: web-1, revision: {read_at}}}\nspec: {{address: 10.0.0.7}}\n"
    );

    refused_apply(
        &mut client,
        &stale,
        Code::Aborted,
        &format!("metadata.revision: {read_at} is stale"),
    )
    .await;
}

#[tokio::test]
async fn oversized_request_is_refused_before_it_is_buffered() {
    let (cp, mut client) = started().await;
    let before = snapshot(&mut client).await;
    let padding = "#".repeat(64 * 1024 * 1024);
    let content =
        format!("kind: Node\nmetadata: {{name: big}}\nspec: {{address: 10.0.0.5}}\n{padding}\n");

    let status = apply(&mut client, &content).await.unwrap_err();

    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    drop(content);
    let mut fresh = cp.admin().await.unwrap();
    assert_eq!(snapshot(&mut fresh).await, before);
    assert_refusal_audited(&mut fresh, "larger than the limit").await;
}

#[tokio::test]
async fn a_message_declared_too_large_is_refused_before_its_bytes_arrive() {
    let (cp, mut client) = started().await;
    let before = snapshot(&mut client).await;

    let answer = palisade_tests::raw::declared_message(
        &cp,
        &cp.admin_credentials(),
        "/palisade.admin.v1.Admin/Apply",
        64 * 1024 * 1024,
        4096,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();

    assert_eq!(answer.code, Code::ResourceExhausted as i32, "{answer:?}");
    assert!(answer.message.contains("67108864 bytes"), "{answer:?}");
    assert_eq!(snapshot(&mut client).await, before);
    assert_refusal_audited(&mut client, "request message of 67108864 bytes").await;
}

/// Checks that the newest audit entry is the first admin's apply, refused
/// before its handler ran, with `reason` in its detail.
async fn assert_refusal_audited(client: &mut Client, reason: &str) {
    let audit = last_audit(client).await;
    assert_eq!(
        (
            audit.actor.as_str(),
            audit.action.as_str(),
            audit.outcome.as_str()
        ),
        ("spiffe://bad.test/admin/admin", "apply", "invalid"),
        "{audit:?}"
    );
    assert!(
        audit.detail.contains(reason),
        "audit detail: {}",
        audit.detail
    );
}

#[tokio::test]
async fn viewer_cannot_write_and_hears_which_permission_is_missing() {
    let mut cp = ControlPlane::init("bad.test").unwrap();
    let viewer = cp.issue_admin("vera").unwrap();
    cp.start().await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, BASE).await.unwrap();
    let binding = "kind: AdminBinding\nmetadata: {name: vera-views}\n\
                   spec: {role: viewer, subjects: [\"spiffe://bad.test/admin/vera\"]}\n";
    apply(&mut admin, binding).await.unwrap();
    let mut vera = cp.client(&viewer).await.unwrap();
    let before = snapshot(&mut admin).await;

    assert_eq!(list_all(&mut vera, "Node").await.unwrap().len(), 1);
    let status = apply(
        &mut vera,
        "kind: Node\nmetadata: {name: web-2}\nspec: {address: 10.0.0.2}\n",
    )
    .await
    .unwrap_err();

    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains(r#"lacks permission "apply" on Node"#),
        "{}",
        status.message()
    );
    assert_eq!(snapshot(&mut admin).await, before);
    let audit = last_audit(&mut admin).await;
    assert_eq!(
        (audit.actor.as_str(), audit.outcome.as_str()),
        ("spiffe://bad.test/admin/vera", "denied")
    );
}

#[tokio::test]
async fn certificate_from_another_ca_is_unauthenticated() {
    let (cp, mut admin) = started().await;
    let other = ControlPlane::init("bad.test").unwrap();
    let foreign = Credentials {
        ca: cp.admin_credentials().ca,
        ..other.admin_credentials()
    };
    let before = snapshot(&mut admin).await;

    let outcome = match cp.client(&foreign).await {
        Ok(mut client) => apply(&mut client, BASE).await.map(|_| ()),
        Err(error) => panic!("the TLS handshake itself should pass: {error}"),
    };

    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(
        status.message().contains("not trusted"),
        "{}",
        status.message()
    );
    assert_eq!(snapshot(&mut admin).await, before);
    let audit = last_audit(&mut admin).await;
    assert!(audit.actor.starts_with("unauthenticated"), "{audit:?}");
    assert_eq!(audit.outcome, "unauthenticated");
}

#[tokio::test]
async fn missing_client_certificate_is_unauthenticated() {
    let (cp, mut admin) = started().await;
    let anonymous = Credentials {
        cert: None,
        key: None,
        ..cp.admin_credentials()
    };
    let before = snapshot(&mut admin).await;
    let mut client = cp.client(&anonymous).await.unwrap();

    let status = apply(&mut client, BASE).await.unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(
        status.message().contains("no client certificate"),
        "{}",
        status.message()
    );
    assert_eq!(snapshot(&mut admin).await, before);
    assert_eq!(last_audit(&mut admin).await.outcome, "unauthenticated");
}
