//! CA rotation end to end: certificates issued before, during and after a
//! rotation verify against the bundle a holder has at each step; the old CA
//! retires only once nothing it signed is valid, and then leaves the bundle.
//! A prepared CA activates only once holders have had time to fetch a
//! bundle that trusts it, unless forced; these tests force it, so as not to
//! wait. Also: Palisade as an intermediate under an upstream CA.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_tests::identity::{TestNode, audit_entries, join_token};
use palisade_tests::x509::{first_der, openssl_verify, pem_blocks};
use palisade_tests::{Admin, ControlPlane, apply, last_audit, palisadectl, pb};

const TD: &str = "rotate.test";
const ORDERS: &str = "spiffe://rotate.test/ns/shop/sa/orders";
/// Short lifetimes, so that the old CA's certificates expire during the
/// test; no schedule, so that only the test rotates.
const FLAGS: &[&str] = &[
    "--workload-ttl-secs",
    "4",
    "--node-ttl-secs",
    "4",
    "--auto-rotate",
    "false",
];

const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
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
kind: AdminBinding
metadata: {name: second-admin}
spec: {role: admin, subjects: ["spiffe://rotate.test/admin/admin2"]}
"#;

/// A certificate someone holds, and when it expires.
struct Held {
    name: &'static str,
    chain: String,
    not_after: i64,
}

impl Held {
    fn new(name: &'static str, chain: String) -> Self {
        let der = first_der(&chain);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let not_after = parsed.validity().not_after.timestamp();
        Self {
            name,
            chain,
            not_after,
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every certificate still valid verifies against `bundle`.
fn all_valid_verify(step: &str, held: &[Held], bundle: &str) {
    let dir = tempfile::tempdir().unwrap();
    for certificate in held.iter().filter(|h| h.not_after > now() + 1) {
        openssl_verify(dir.path(), bundle, &certificate.chain, "sslclient")
            .unwrap_or_else(|e| panic!("{step}: {} no longer verifies: {e}", certificate.name));
    }
}

/// Signs orders-1 through a freshly attested web-1.
async fn sign_orders(cp: &ControlPlane, admin: &mut Admin) -> (String, String) {
    let token = join_token(admin, "web-1", 0).await.unwrap();
    let node = TestNode::attest(cp, "web-1", &token).await.unwrap();
    let (_, issued) = node.sign(cp, "shop", "orders-1", ORDERS).await.unwrap();
    (
        issued.certificate_chain_pem,
        issued.bundle.unwrap().x509_authorities_pem,
    )
}

async fn ca_status(admin: &mut Admin) -> pb::KeySet {
    let request = pb::KeyStatusRequest {
        kind: pb::KeyKind::Ca as i32,
    };
    admin.key_status(request).await.unwrap().into_inner()
}

fn ctl_ok(cp: &ControlPlane, args: &[&str]) -> String {
    let output = palisadectl(&cp.ctl_config(), args);
    assert!(
        output.status.success(),
        "palisadectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until the first admin's copy of the bundle holds `count` CAs.
async fn admin_bundle_holds(cp: &ControlPlane, count: usize) {
    let path = cp.data_dir.join("admin").join("ca.pem");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if pem_blocks(&text).len() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never held {count} CAs", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_verify_at_every_step_of_a_rotation() {
    let mut cp = ControlPlane::init_with(TD, &["--admin-ttl-secs", "12"]).unwrap();
    cp.start_with(FLAGS).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let mut held = vec![Held::new(
        "the first admin's certificate",
        std::fs::read_to_string(cp.admin_credentials().cert.unwrap()).unwrap(),
    )];

    // Before: one CA.
    let (before, bundle) = sign_orders(&cp, &mut admin).await;
    assert_eq!(pem_blocks(&bundle).len(), 1);
    let old_ca = bundle.clone();
    held.push(Held::new("issued before", before));
    all_valid_verify("before", &held, &bundle);

    // Prepared: the new CA is trusted but signs nothing.
    ctl_ok(&cp, &["ca", "prepare"]);
    let (during, bundle) = sign_orders(&cp, &mut admin).await;
    assert_eq!(
        pem_blocks(&bundle).len(),
        2,
        "the prepared CA joins the bundle"
    );
    let dir = tempfile::tempdir().unwrap();
    openssl_verify(dir.path(), &old_ca, &during, "sslclient")
        .expect("while prepared, the old CA still signs");
    held.push(Held::new("issued while prepared", during));
    all_valid_verify("prepared", &held, &bundle);
    admin_bundle_holds(&cp, 2).await;

    // Active: the new CA signs; both stay trusted.
    ctl_ok(&cp, &["ca", "activate", "--force"]);
    let mut admin = cp.admin().await.unwrap();
    let (after, bundle) = sign_orders(&cp, &mut admin).await;
    let new_ca = pem_blocks(&bundle)
        .into_iter()
        .find(|ca| *ca != old_ca)
        .unwrap();
    openssl_verify(dir.path(), &new_ca, &after, "sslclient").expect("the new CA signs");
    held.push(Held::new("issued after activation", after));
    all_valid_verify("active", &held, &bundle);

    // Retire is refused while the old CA's certificates are valid.
    let refused = palisadectl(&cp.ctl_config(), &["ca", "retire"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("retire it after that"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A second admin from the new CA, then wait out the old CA's leaves.
    cp.terminate().unwrap();
    let second = cp
        .issue_admin_with("admin2", &["--ttl-secs", "3600"])
        .unwrap();
    cp.start_with(FLAGS).await.unwrap();
    let expiry = held[..3].iter().map(|h| h.not_after).max().unwrap();
    let wait = (expiry - now() + 2).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let mut admin2 = cp.client(&second).await.unwrap();

    // Retired: the old CA leaves the bundle; the new certificates verify.
    let request = pb::RetireKeyRequest {
        kind: pb::KeyKind::Ca as i32,
        ..Default::default()
    };
    admin2.retire_key(request).await.unwrap();
    let status = ca_status(&mut admin2).await;
    let states: Vec<i32> = status.keys.iter().map(|k| k.state).collect();
    assert!(
        states.contains(&(pb::KeyState::Retired as i32)),
        "{states:?}"
    );
    assert_eq!(pem_blocks(&status.published), std::slice::from_ref(&new_ca));
    all_valid_verify("retired", &held, &status.published);
    assert!(
        openssl_verify(dir.path(), &status.published, &held[1].chain, "sslclient").is_err(),
        "what the old CA signed no longer verifies"
    );
}

fn states(set: &pb::KeySet) -> Vec<i32> {
    let mut states: Vec<i32> = set.keys.iter().map(|k| k.state).collect();
    states.sort();
    states
}

#[tokio::test]
async fn activating_a_ca_prepared_moments_ago_is_refused_and_audited_unless_forced() {
    let mut cp = ControlPlane::init(TD).unwrap();
    cp.start_with(FLAGS).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    ctl_ok(&cp, &["ca", "prepare"]);
    let prepared = ca_status(&mut admin).await;

    let refused = palisadectl(&cp.ctl_config(), &["ca", "activate"]);

    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("failed precondition"), "{stderr}");
    assert!(
        stderr.contains("trust bundle") && stderr.contains("may activate in"),
        "{stderr}"
    );
    let audit = last_audit(&mut admin).await;
    assert_eq!(
        (audit.action.as_str(), audit.outcome.as_str()),
        ("ca activate", "invalid")
    );
    assert!(audit.detail.contains("may activate in"), "{}", audit.detail);
    assert_eq!(
        states(&ca_status(&mut admin).await),
        states(&prepared),
        "nothing changed"
    );

    ctl_ok(&cp, &["ca", "activate", "--force"]);
    let active = pb::KeyState::Active as i32;
    let inactive = pb::KeyState::Inactive as i32;
    assert_eq!(states(&ca_status(&mut admin).await), [active, inactive]);
    let entries = audit_entries(&mut admin).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.action == "ca activate --force" && e.outcome == "ok"),
        "the forced activation is audited as forced"
    );
}

#[tokio::test]
async fn palisade_runs_as_an_intermediate_under_an_upstream_ca() {
    palisade_tests::system::ensure_command("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    let key = dir.path().join("root-key.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/O=Corp/CN=Corp Root"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let mut cp = ControlPlane::init_with(
        TD,
        &[
            "--upstream-ca",
            root.to_str().unwrap(),
            "--upstream-key",
            key.to_str().unwrap(),
        ],
    )
    .unwrap();
    cp.start_with(FLAGS).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let (chain, bundle) = sign_orders(&cp, &mut admin).await;

    let root_pem = std::fs::read_to_string(&root).unwrap();
    assert_eq!(
        pem_blocks(&bundle),
        pem_blocks(&root_pem),
        "the bundle is the upstream root"
    );
    assert_eq!(
        pem_blocks(&chain).len(),
        2,
        "leaf and Palisade's intermediate"
    );
    for purpose in ["sslclient", "sslserver"] {
        openssl_verify(dir.path(), &root_pem, &chain, purpose)
            .unwrap_or_else(|e| panic!("{purpose}: {e}"));
    }

    ctl_ok(&cp, &["ca", "prepare"]);
    ctl_ok(&cp, &["ca", "activate", "--force"]);
    let mut admin = cp.admin().await.unwrap();
    let (rotated, bundle) = sign_orders(&cp, &mut admin).await;
    assert_eq!(
        pem_blocks(&bundle),
        pem_blocks(&root_pem),
        "rotation keeps the anchor"
    );
    assert_ne!(
        pem_blocks(&rotated)[1],
        pem_blocks(&chain)[1],
        "a new intermediate signs"
    );
    openssl_verify(dir.path(), &root_pem, &rotated, "sslclient").unwrap();
}
