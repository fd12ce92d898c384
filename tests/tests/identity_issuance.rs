//! Issued identities work where it matters: openssl's strict verifier
//! accepts them for clients and servers, and two workloads complete an mTLS
//! handshake with them, while a stranger's or an expired certificate fails,
//! refused for that reason by the side that checks it. Ed25519 keys are
//! signed as P-256 keys are; without overrides, workloads get an hour and
//! nodes a day. Each issuance is audited with the node that asked, the
//! identity and the serial.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_tests::identity::{TestNode, join_token};
use palisade_tests::mtls::{Holder, handshake};
use palisade_tests::x509::{first_der, openssl_verify, spiffe_id};
use palisade_tests::{Admin, ControlPlane, apply, last_audit};

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
  dnsNames: [orders.shop.svc]
---
kind: Service
metadata: {name: storefront, namespace: shop}
spec:
  ports: [{port: 8080, protocol: http}]
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-2, appPort: 8080, inboundPort: 15008}
"#;

/// A control plane holding [`SHOP`], with its flags.
async fn shop(trust_domain: &str, flags: &[&str]) -> (ControlPlane, Admin) {
    let mut cp = ControlPlane::init(trust_domain).unwrap();
    cp.start_with(flags).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    (cp, admin)
}

async fn attest(cp: &ControlPlane, admin: &mut Admin, node: &str) -> TestNode {
    let token = join_token(admin, node, 0).await.unwrap();
    TestNode::attest(cp, node, &token).await.unwrap()
}

/// A workload's certificate chain and key, as PEM.
struct Svid {
    chain: String,
    key: String,
    bundle: String,
}

async fn svid(cp: &ControlPlane, node: &TestNode, workload: &str, service: &str) -> Svid {
    let id = format!("spiffe://{}/ns/shop/sa/{service}", cp.trust_domain);
    let (key, issued) = node.sign(cp, "shop", workload, &id).await.unwrap();
    Svid {
        chain: issued.certificate_chain_pem,
        key: key.serialize_pem(),
        bundle: issued.bundle.unwrap().x509_authorities_pem,
    }
}

impl Svid {
    fn holder(&self) -> Holder<'_> {
        Holder {
            chain_pem: &self.chain,
            key_pem: &self.key,
        }
    }
}

#[tokio::test]
async fn node_and_workload_certificates_pass_openssl_strict_verification() {
    let (cp, mut admin) = shop("issue.test", &[]).await;
    let node = attest(&cp, &mut admin, "web-1").await;
    let with_dns = {
        let key = palisade_tests::identity::new_key();
        let csr = palisade_tests::identity::csr(
            &key,
            &["spiffe://issue.test/ns/shop/sa/orders"],
            &["orders.shop.svc"],
        );
        node.sign_raw(&cp, "shop", "orders-1", csr.into_bytes())
            .await
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();

    for purpose in ["sslclient", "sslserver"] {
        openssl_verify(
            dir.path(),
            &node.bundle_pem,
            &with_dns.certificate_chain_pem,
            purpose,
        )
        .unwrap_or_else(|e| panic!("workload certificate, {purpose}: {e}"));
    }
    openssl_verify(dir.path(), &node.bundle_pem, &node.chain_pem, "sslclient")
        .unwrap_or_else(|e| panic!("node certificate: {e}"));
    assert_eq!(
        spiffe_id(&first_der(&node.chain_pem)).unwrap(),
        "spiffe://issue.test/node/web-1"
    );
    assert_eq!(
        spiffe_id(&first_der(&with_dns.certificate_chain_pem)).unwrap(),
        "spiffe://issue.test/ns/shop/sa/orders"
    );
}

#[tokio::test]
async fn each_issuance_is_audited_with_the_requesting_node_the_identity_and_the_serial() {
    let (cp, mut admin) = shop("issue.test", &[]).await;
    let token = join_token(&mut admin, "web-1", 0).await.unwrap();
    let (token_id, _) = token.split_once('.').unwrap();
    let node_id = "spiffe://issue.test/node/web-1";

    let node = TestNode::attest(&cp, "web-1", &token).await.unwrap();
    let attested = last_audit(&mut admin).await;
    let orders = "spiffe://issue.test/ns/shop/sa/orders";
    let (_, workload) = node.sign(&cp, "shop", "orders-1", orders).await.unwrap();
    let signed = last_audit(&mut admin).await;

    assert_eq!(
        (attested.action.as_str(), attested.outcome.as_str()),
        ("attest", "ok")
    );
    assert_eq!(attested.actor, node_id);
    let node_serial = format!("serial:{}", node.serial);
    assert_eq!(attested.targets, [node_id.to_owned(), node_serial]);
    assert_eq!(attested.detail, format!("join token {token_id}"));
    assert_eq!(
        (signed.action.as_str(), signed.outcome.as_str()),
        ("sign workload", "ok")
    );
    assert_eq!(signed.actor, node_id, "the requesting node");
    let workload_serial = format!("serial:{}", workload.serial);
    assert_eq!(signed.targets, [orders.to_owned(), workload_serial]);
}

#[tokio::test]
async fn issued_leaf_follows_the_svid_profile_and_configured_lifetime() {
    let (cp, mut admin) = shop("issue.test", &["--workload-ttl-secs", "600"]).await;
    let node = attest(&cp, &mut admin, "web-1").await;

    let orders = svid(&cp, &node, "orders-1", "orders").await;

    let der = first_der(&orders.chain);
    let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
    let constraints = leaf.basic_constraints().unwrap().unwrap().value;
    assert!(!constraints.ca);
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && !usage.key_cert_sign() && !usage.key_encipherment());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let validity = leaf.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert!(
        (600..=600 + 301).contains(&lifetime),
        "lifetime {lifetime}s"
    );
}

#[tokio::test]
async fn two_workloads_complete_mtls_and_see_each_others_identity() {
    let (cp, mut admin) = shop("issue.test", &[]).await;
    let web1 = attest(&cp, &mut admin, "web-1").await;
    let web2 = attest(&cp, &mut admin, "web-2").await;
    let orders = svid(&cp, &web1, "orders-1", "orders").await;
    let storefront = svid(&cp, &web2, "storefront-1", "storefront").await;

    let (server_saw, client_saw) =
        handshake(&orders.holder(), &storefront.holder(), &orders.bundle)
            .await
            .unwrap();

    assert_eq!(server_saw, "spiffe://issue.test/ns/shop/sa/storefront");
    assert_eq!(client_saw, "spiffe://issue.test/ns/shop/sa/orders");
}

#[tokio::test]
async fn certificate_from_another_trust_domain_fails_the_handshake() {
    let (cp, mut admin) = shop("issue.test", &[]).await;
    let (other, mut other_admin) = shop("other.test", &[]).await;
    let ours = svid(
        &cp,
        &attest(&cp, &mut admin, "web-1").await,
        "orders-1",
        "orders",
    )
    .await;
    let theirs = svid(
        &other,
        &attest(&other, &mut other_admin, "web-2").await,
        "storefront-1",
        "storefront",
    )
    .await;

    // Our server does not know who issued their client's certificate.
    let refused = handshake(&ours.holder(), &theirs.holder(), &ours.bundle).await;
    assert_eq!(
        refused.unwrap_err(),
        "server: invalid peer certificate: UnknownIssuer"
    );

    // Nor does our client know their server's, and it tells the server so.
    let refused = handshake(&theirs.holder(), &ours.holder(), &ours.bundle).await;
    assert_eq!(
        refused.unwrap_err(),
        "server: received fatal alert: UnknownCA"
    );
}

/// Waits until a certificate's notAfter has passed by a second.
async fn wait_out(chain_pem: &str) {
    let der = first_der(chain_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
    let not_after = leaf.validity().not_after.timestamp();
    let wait = (not_after + 1 - unix_now()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn expired_certificate_fails_the_handshake() {
    let (cp, mut admin) = shop("issue.test", &["--workload-ttl-secs", "3"]).await;
    let web2 = attest(&cp, &mut admin, "web-2").await;
    let orders = svid(
        &cp,
        &attest(&cp, &mut admin, "web-1").await,
        "orders-1",
        "orders",
    )
    .await;
    let storefront = svid(&cp, &web2, "storefront-1", "storefront").await;
    handshake(&orders.holder(), &storefront.holder(), &orders.bundle)
        .await
        .expect("fresh certificates pass");

    wait_out(&orders.chain).await;
    let fresh = svid(&cp, &web2, "storefront-1", "storefront").await;

    // A server whose certificate is valid refuses an expired client.
    let refused = handshake(&fresh.holder(), &orders.holder(), &orders.bundle).await;
    let error = refused.unwrap_err();
    assert!(
        error.starts_with("server: invalid peer certificate: certificate expired"),
        "{error}"
    );

    // A client refuses an expired server, and tells the server why.
    let refused = handshake(&orders.holder(), &fresh.holder(), &orders.bundle).await;
    assert_eq!(
        refused.unwrap_err(),
        "server: received fatal alert: CertificateExpired"
    );
}

/// A certificate's lifetime counted from `issued_at`, in seconds: the
/// start of validity is backdated for clock skew, so it would mislead.
fn lifetime_from(chain_pem: &str, issued_at: i64) -> i64 {
    let der = first_der(chain_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
    leaf.validity().not_after.timestamp() - issued_at
}

#[tokio::test]
async fn without_overrides_workloads_get_an_hour_and_nodes_a_day() {
    let (cp, mut admin) = shop("issue.test", &[]).await;

    let issued_at = unix_now();
    let node = attest(&cp, &mut admin, "web-1").await;
    let orders = svid(&cp, &node, "orders-1", "orders").await;
    let done = unix_now();

    let slack = done - issued_at + 1;
    let node_life = lifetime_from(&node.chain_pem, issued_at);
    assert!(
        (24 * 3600 - 1..=24 * 3600 + slack).contains(&node_life),
        "node certificate lives {node_life}s"
    );
    let workload_life = lifetime_from(&orders.chain, issued_at);
    assert!(
        (3600 - 1..=3600 + slack).contains(&workload_life),
        "workload certificate lives {workload_life}s"
    );
}

#[tokio::test]
async fn ed25519_csr_is_issued_and_passes_openssl_strict_verification() {
    let (cp, mut admin) = shop("issue.test", &[]).await;
    let node = attest(&cp, &mut admin, "web-1").await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let orders_id = "spiffe://issue.test/ns/shop/sa/orders";
    let csr = palisade_tests::identity::csr(&key, &[orders_id], &[]);

    let issued = node
        .sign_raw(&cp, "shop", "orders-1", csr.into_bytes())
        .await
        .unwrap();

    let der = first_der(&issued.certificate_chain_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
    let algorithm = leaf.public_key().algorithm.algorithm.to_id_string();
    assert_eq!(algorithm, "1.3.101.112", "the leaf holds the Ed25519 key");
    assert_eq!(
        leaf.public_key().subject_public_key.data,
        key.public_key_raw()
    );
    assert_eq!(spiffe_id(&der).unwrap(), orders_id);
    let dir = tempfile::tempdir().unwrap();
    for purpose in ["sslclient", "sslserver"] {
        openssl_verify(
            dir.path(),
            &node.bundle_pem,
            &issued.certificate_chain_pem,
            purpose,
        )
        .unwrap_or_else(|e| panic!("Ed25519 workload certificate, {purpose}: {e}"));
    }
}
