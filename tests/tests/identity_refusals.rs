//! Everything the identity API must never sign or mint: each request is
//! refused with a clear status, the refusal is audited, and nothing is
//! issued.

use std::process::Command;

use palisade_tests::identity::{TestNode, audit_entries, csr, join_token, new_key};
use palisade_tests::{Admin, ControlPlane, apply, last_audit, pb, revision};
use tonic::Code;

const TD: &str = "refuse.test";
const ORDERS: &str = "spiffe://refuse.test/ns/shop/sa/orders";

const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {}
---
kind: Node
metadata: {name: web-2}
spec: {}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{port: 9090, protocol: grpc}]
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: orders-2, namespace: shop}
spec: {service: orders, node: web-2, appPort: 9090, inboundPort: 15008}
"#;

/// A control plane holding [`SHOP`], and node web-1 attested.
async fn attested() -> (ControlPlane, Admin, TestNode) {
    let mut cp = ControlPlane::init(TD).unwrap();
    cp.start().await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let token = join_token(&mut admin, "web-1", 0).await.unwrap();
    let node = TestNode::attest(&cp, "web-1", &token).await.unwrap();
    (cp, admin, node)
}

/// The calls that issue a certificate or a token, as the audit log names them.
const ISSUING: [&str; 4] = ["attest", "renew node", "sign workload", "mint jwt-svid"];

/// What has been issued so far: the store's revision, which every issuance
/// moves because it records what it issued, and the issuances audited as
/// done.
#[derive(Debug, PartialEq)]
struct Issued {
    revision: u64,
    audited: usize,
}

async fn issued(admin: &mut Admin) -> Issued {
    let entries = audit_entries(admin).await.unwrap();
    let audited = entries
        .iter()
        .filter(|e| e.outcome == "ok" && ISSUING.contains(&e.action.as_str()))
        .count();
    Issued {
        revision: revision(admin).await.unwrap(),
        audited,
    }
}

/// Checks a refusal: its code and message, an audit entry for it as the
/// newest entry with `action`, and that nothing was issued since `before`.
/// Returns the audit entry.
async fn assert_refused(
    admin: &mut Admin,
    before: Issued,
    result: Result<impl std::fmt::Debug, tonic::Status>,
    code: Code,
    needle: &str,
    action: &str,
) -> pb::AuditEntry {
    let status = result.expect_err("the request should be refused");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(needle),
        "expected {needle:?} in {:?}",
        status.message()
    );

    let audit = last_audit(admin).await;
    assert_eq!(audit.action, action, "{audit:?}");
    assert_ne!(audit.outcome, "ok", "{audit:?}");
    assert!(
        audit.detail.contains(needle),
        "audit detail: {}",
        audit.detail
    );
    assert_eq!(issued(admin).await, before, "nothing may be issued");
    audit
}

/// Checks that a refused attestation's audit entry names node web-2 and
/// the join token's id, and nothing of its secret.
fn assert_names_node_and_token(audit: &pb::AuditEntry, token: &str) {
    let (id, secret) = token.split_once('.').unwrap();
    let expected = ["Node//web-2".to_owned(), format!("join-token:{id}")];
    assert_eq!(audit.targets, expected);
    let text = format!("{audit:?}");
    assert!(
        !text.contains(secret),
        "the secret reached the audit log: {text}"
    );
}

async fn sign(
    cp: &ControlPlane,
    node: &TestNode,
    workload: &str,
    csr: Vec<u8>,
) -> Result<pb_id::WorkloadCertificate, tonic::Status> {
    node.sign_raw(cp, "shop", workload, csr).await
}

use palisade_proto::identity as pb_id;

/// Asks for a JWT-SVID for `workload` in namespace shop.
async fn mint(
    cp: &ControlPlane,
    node: &TestNode,
    workload: &str,
) -> Result<pb_id::JwtSvid, tonic::Status> {
    let request = pb_id::MintJwtSvidRequest {
        namespace: "shop".into(),
        workload: workload.into(),
        audiences: vec!["spiffe://refuse.test/ns/shop/sa/payments".into()],
        ttl_seconds: 0,
    };
    let mut client = node
        .client(cp)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(client.mint_jwt_svid(request).await?.into_inner())
}

/// A PEM CSR made by openssl with `args` after `openssl req -new`.
fn openssl_csr(args: &[&str]) -> Vec<u8> {
    palisade_tests::system::ensure_command("openssl", "openssl");
    let output = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            "/CN=test",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn malformed_pem_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let garbage = b"-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n";
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", garbage.to_vec()).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "not valid PEM",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn malformed_der_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", vec![0x30, 0x82, 0x01, 0x00, 0x02]).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "not valid DER",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn csr_whose_signature_does_not_verify_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let pem = csr(&new_key(), &[ORDERS], &[]);
    let (_, mut der) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(rest, block)| (rest, block.contents))
        .unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", der).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "signature does not verify",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn csr_for_another_nodes_workload_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let before = issued(&mut admin).await;

    let result = sign(
        &cp,
        &node,
        "orders-2",
        csr(&new_key(), &[ORDERS], &[]).into_bytes(),
    )
    .await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::PermissionDenied,
        "runs on node web-2, not on web-1",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn two_uri_sans_are_refused() {
    let (cp, mut admin, node) = attested().await;
    let two = csr(
        &new_key(),
        &[ORDERS, "spiffe://refuse.test/ns/shop/sa/other"],
        &[],
    );
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", two.into_bytes()).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "2 URI SANs",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn uri_san_in_another_trust_domain_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let foreign = csr(&new_key(), &["spiffe://evil.test/ns/shop/sa/orders"], &[]);
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", foreign.into_bytes()).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "trust domain \"evil.test\"",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn request_for_ca_rights_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let san = format!("subjectAltName=URI:{ORDERS}");
    let ca = openssl_csr(&[
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-addext",
        &san,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", ca).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "asks for CA rights",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn rsa_1024_key_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let san = format!("subjectAltName=URI:{ORDERS}");
    let rsa = openssl_csr(&["-newkey", "rsa:1024", "-addext", &san]);
    let before = issued(&mut admin).await;

    let result = sign(&cp, &node, "orders-1", rsa).await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::InvalidArgument,
        "RSA keys are not accepted (this one has 1024 bits)",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn workload_that_does_not_exist_is_not_found() {
    let (cp, mut admin, node) = attested().await;
    let before = issued(&mut admin).await;

    let result = sign(
        &cp,
        &node,
        "ghost-1",
        csr(&new_key(), &[ORDERS], &[]).into_bytes(),
    )
    .await;

    assert_refused(
        &mut admin,
        before,
        result,
        Code::NotFound,
        "Workload shop/ghost-1 does not exist",
        "sign workload",
    )
    .await;
}

#[tokio::test]
async fn jwt_svid_for_another_nodes_workload_is_refused() {
    let (cp, mut admin, node) = attested().await;
    let before = issued(&mut admin).await;

    let result = mint(&cp, &node, "orders-2").await;

    let audit = assert_refused(
        &mut admin,
        before,
        result,
        Code::PermissionDenied,
        "runs on node web-2, not on web-1",
        "mint jwt-svid",
    )
    .await;
    assert_eq!(audit.actor, node.spiffe_id());
    assert_eq!(audit.targets, ["Workload/shop/orders-2"]);
}

#[tokio::test]
async fn jwt_svid_for_a_workload_that_does_not_exist_is_not_found() {
    let (cp, mut admin, node) = attested().await;
    let before = issued(&mut admin).await;

    let result = mint(&cp, &node, "ghost-1").await;

    let audit = assert_refused(
        &mut admin,
        before,
        result,
        Code::NotFound,
        "Workload shop/ghost-1 does not exist",
        "mint jwt-svid",
    )
    .await;
    assert_eq!(audit.actor, node.spiffe_id());
    assert_eq!(audit.targets, ["Workload/shop/ghost-1"]);
}

#[tokio::test]
async fn replayed_join_token_is_refused() {
    let (cp, mut admin, _node) = attested().await;
    let token = join_token(&mut admin, "web-2", 0).await.unwrap();
    TestNode::attest(&cp, "web-2", &token).await.unwrap();
    let before = issued(&mut admin).await;

    let result = TestNode::attest(&cp, "web-2", &token)
        .await
        .map(|n| n.serial);

    let audit = assert_refused(
        &mut admin,
        before,
        result,
        Code::PermissionDenied,
        "already used",
        "attest",
    )
    .await;
    assert_names_node_and_token(&audit, &token);
}

#[tokio::test]
async fn expired_join_token_is_refused() {
    let (cp, mut admin, _node) = attested().await;
    let token = join_token(&mut admin, "web-2", 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let before = issued(&mut admin).await;

    let result = TestNode::attest(&cp, "web-2", &token)
        .await
        .map(|n| n.serial);

    let audit = assert_refused(
        &mut admin,
        before,
        result,
        Code::PermissionDenied,
        "expired",
        "attest",
    )
    .await;
    assert_names_node_and_token(&audit, &token);
}

#[tokio::test]
async fn forged_join_token_is_refused() {
    let (cp, mut admin, _node) = attested().await;
    let token = join_token(&mut admin, "web-2", 0).await.unwrap();
    let (id, _) = token.split_once('.').unwrap();
    let forged = format!("{id}.{}", "A".repeat(43));
    let before = issued(&mut admin).await;

    let result = TestNode::attest(&cp, "web-2", &forged)
        .await
        .map(|n| n.serial);

    let audit = assert_refused(
        &mut admin,
        before,
        result,
        Code::PermissionDenied,
        "not known",
        "attest",
    )
    .await;
    assert_names_node_and_token(&audit, &token);
    assert_names_node_and_token(&audit, &forged);
}

#[tokio::test]
async fn revoked_node_can_neither_renew_nor_sign() {
    let (cp, mut admin, node) = attested().await;
    let (_, workload) = node.sign(&cp, "shop", "orders-1", ORDERS).await.unwrap();
    let request = pb::RevokeNodeRequest {
        node: "web-1".into(),
        reason: "host compromised".into(),
    };
    let revoked = admin.revoke_node(request).await.unwrap().into_inner();

    let mut serials = revoked.serials.clone();
    serials.sort();
    let mut expected = vec![node.serial.clone(), workload.serial.clone()];
    expected.sort();
    assert_eq!(serials, expected, "the deny list holds what the node held");
    let audit = last_audit(&mut admin).await;
    assert_eq!(audit.action, "node revoke");
    assert_eq!(audit.actor, "spiffe://refuse.test/admin/admin");
    assert_eq!(audit.detail, "host compromised");
    assert!(
        audit.targets.contains(&"Node//web-1".to_owned()),
        "{audit:?}"
    );
    for serial in &expected {
        let target = format!("serial:{serial}");
        assert!(audit.targets.contains(&target), "{target} in {audit:?}");
    }

    let before = issued(&mut admin).await;
    let renewed = node.renew(&cp).await.map(|c| c.serial);
    assert_refused(
        &mut admin,
        before,
        renewed,
        Code::PermissionDenied,
        "node web-1 was revoked",
        "renew node",
    )
    .await;
    let before = issued(&mut admin).await;
    let signed = node
        .sign(&cp, "shop", "orders-1", ORDERS)
        .await
        .map(|(_, c)| c.serial);
    assert_refused(
        &mut admin,
        before,
        signed,
        Code::PermissionDenied,
        "node web-1 was revoked",
        "sign workload",
    )
    .await;
    let token = pb::CreateJoinTokenRequest {
        node: "web-1".into(),
        ttl_seconds: 0,
    };
    let status = admin.create_join_token(token).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn admin_certificate_cannot_act_as_a_node() {
    let (cp, mut admin, _node) = attested().await;
    let credentials = cp.admin_credentials();
    let impostor = TestNode {
        name: "web-1".into(),
        trust_domain: TD.into(),
        key: rcgen::KeyPair::from_pem(&std::fs::read_to_string(credentials.key.unwrap()).unwrap())
            .unwrap(),
        chain_pem: std::fs::read_to_string(credentials.cert.unwrap()).unwrap(),
        serial: String::new(),
        bundle_pem: std::fs::read_to_string(credentials.ca).unwrap(),
    };
    let before = issued(&mut admin).await;

    let result = impostor
        .sign(&cp, "shop", "orders-1", ORDERS)
        .await
        .map(|(_, c)| c.serial);

    assert_refused(
        &mut admin,
        before,
        result,
        Code::PermissionDenied,
        "is not a node identity",
        "sign workload",
    )
    .await;
}
