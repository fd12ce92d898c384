//! CA rotation end to end: node and workload certificates issued before,
//! during and after a rotation verify against the bundle a holder has at
//! each step, whether fetched while the new CA was prepared or once it was
//! active; the old CA retires only once nothing it signed is valid, and then
//! leaves the bundle, so that what it signed no longer verifies even at a
//! moment it was valid.
//! A prepared CA activates only once holders have had time to fetch a
//! bundle that trusts it, unless forced; these tests force it, so as not to
//! wait. Also: Palisade as an intermediate under an upstream CA.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_tests::identity::{TestNode, audit_entries, join_token};
use palisade_tests::x509::{first_der, openssl_verify, openssl_verify_at, pem_blocks};
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

/// A certificate someone holds, whether the CA that signed it is the one
/// being rotated out, and when it expires.
struct Held {
    name: String,
    chain: String,
    by_old_ca: bool,
    not_after: i64,
}

impl Held {
    fn new(name: String, chain: String, by_old_ca: bool) -> Self {
        let der = first_der(&chain);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let not_after = parsed.validity().not_after.timestamp();
        Self {
            name,
            chain,
            by_old_ca,
            not_after,
        }
    }

    /// A moment the certificate is valid: now, or, once it has expired,
    /// its last second. Certificates live seconds here, so a check run a
    /// little late still asks whether the bundle trusts their issuer.
    fn valid_at(&self) -> i64 {
        now().min(self.not_after - 1)
    }

    /// openssl's strict check against `bundle`, at a moment it is valid.
    fn verify(&self, bundle: &str) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        openssl_verify_at(
            dir.path(),
            bundle,
            &self.chain,
            "sslclient",
            self.valid_at(),
        )
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every certificate in `held` verifies against `bundle`, each at a moment
/// it is valid.
fn all_verify(step: &str, held: &[Held], bundle: &str) {
    for certificate in held {
        certificate
            .verify(bundle)
            .unwrap_or_else(|e| panic!("{step}: {} does not verify: {e}", certificate.name));
    }
}

/// What a freshly attested web-1 holds after signing orders-1, and the
/// bundle it was given.
struct Issued {
    node: String,
    workload: String,
    bundle: String,
}

impl Issued {
    /// Both certificates, as held, named by when they were issued.
    fn held(self, when: &str, by_old_ca: bool) -> [Held; 2] {
        [
            Held::new(
                format!("the node certificate issued {when}"),
                self.node,
                by_old_ca,
            ),
            Held::new(
                format!("the workload certificate issued {when}"),
                self.workload,
                by_old_ca,
            ),
        ]
    }
}

/// Signs orders-1 through a freshly attested web-1.
async fn sign_orders(cp: &ControlPlane, admin: &mut Admin) -> Issued {
    let token = join_token(admin, "web-1", 0).await.unwrap();
    let node = TestNode::attest(cp, "web-1", &token).await.unwrap();
    let (_, issued) = node.sign(cp, "shop", "orders-1", ORDERS).await.unwrap();
    Issued {
        node: node.chain_pem,
        workload: issued.certificate_chain_pem,
        bundle: issued.bundle.unwrap().x509_authorities_pem,
    }
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

/// Retires the old CA as soon as everything it signed has expired: the
/// refusal names the second that is, which a fixed wait can miss by the
/// rounding of that second.
async fn retire_once_expired(admin: &mut Admin, expiry: i64) {
    let wait = (expiry - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let request = pb::RetireKeyRequest {
            kind: pb::KeyKind::Ca as i32,
            ..Default::default()
        };
        match admin.retire_key(request).await {
            Ok(_) => return,
            Err(refused) if std::time::Instant::now() < deadline => {
                let code = refused.code();
                assert_eq!(code, tonic::Code::FailedPrecondition, "{refused}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(refused) => panic!("the old CA never retired: {refused}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_verify_at_every_step_of_a_rotation() {
    // The first admin's certificate, from the old CA, must last until the
    // second admin takes over, and the old CA retires only once it expires.
    let mut cp = ControlPlane::init_with(TD, &["--admin-ttl-secs", "20"]).unwrap();
    cp.start_with(FLAGS).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let admin_chain = std::fs::read_to_string(cp.admin_credentials().cert.unwrap()).unwrap();
    let mut held = vec![Held::new(
        "the first admin's certificate".into(),
        admin_chain,
        true,
    )];
    let dir = tempfile::tempdir().unwrap();

    // Before: one CA.
    let before = sign_orders(&cp, &mut admin).await;
    let before_prepare = before.bundle.clone();
    assert_eq!(pem_blocks(&before_prepare).len(), 1);
    let old_ca = before_prepare.clone();
    held.extend(before.held("before", true));
    all_verify("before", &held, &before_prepare);

    // Prepared: the new CA is trusted but signs nothing.
    ctl_ok(&cp, &["ca", "prepare"]);
    let during = sign_orders(&cp, &mut admin).await;
    let prepared = during.bundle.clone();
    let in_bundle = pem_blocks(&prepared).len();
    assert_eq!(in_bundle, 2, "the prepared CA joins the bundle");
    for chain in [&during.node, &during.workload] {
        openssl_verify(dir.path(), &old_ca, chain, "sslclient")
            .expect("while prepared, the old CA still signs");
    }
    held.extend(during.held("while prepared", true));
    all_verify("prepared", &held, &prepared);
    admin_bundle_holds(&cp, 2).await;

    // Active: the new CA signs; the old one signed what is still valid, so
    // it may not retire yet.
    ctl_ok(&cp, &["ca", "activate", "--force"]);
    let refused = palisadectl(&cp.ctl_config(), &["ca", "retire"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("retire it after that"), "{stderr}");

    // A second admin from the new CA, who outlasts the old CA.
    cp.terminate().unwrap();
    let second = cp
        .issue_admin_with("admin2", &["--ttl-secs", "3600"])
        .unwrap();
    cp.start_with(FLAGS).await.unwrap();
    let mut admin = cp.client(&second).await.unwrap();
    let after = sign_orders(&cp, &mut admin).await;
    let activated = after.bundle.clone();
    let new_ca = pem_blocks(&activated)
        .into_iter()
        .find(|ca| *ca != old_ca)
        .unwrap();
    for chain in [&after.node, &after.workload] {
        openssl_verify(dir.path(), &new_ca, chain, "sslclient").expect("the new CA signs");
    }
    held.extend(after.held("once active", false));

    // Whichever bundle a holder fetched since the prepare, it trusts what
    // the old CA signed before and what the new one signs now.
    all_verify("active", &held, &activated);
    all_verify(
        "active, by the bundle fetched while prepared",
        &held,
        &prepared,
    );

    // Retired: once nothing the old CA signed is valid, it leaves the bundle.
    let (by_old_ca, by_new_ca): (Vec<Held>, Vec<Held>) =
        held.into_iter().partition(|h| h.by_old_ca);
    let expiry = by_old_ca.iter().map(|h| h.not_after).max().unwrap();
    retire_once_expired(&mut admin, expiry).await;
    let status = ca_status(&mut admin).await;
    let states: Vec<i32> = status.keys.iter().map(|k| k.state).collect();
    let retired_state = pb::KeyState::Retired as i32;
    assert!(states.contains(&retired_state), "{states:?}");
    let retired = status.published;
    assert_eq!(pem_blocks(&retired), std::slice::from_ref(&new_ca));

    // What the new CA signed, before the retirement and after, verifies.
    let fresh = sign_orders(&cp, &mut admin).await;
    assert_eq!(fresh.bundle, retired);
    for purpose in ["sslclient", "sslserver"] {
        openssl_verify(dir.path(), &retired, &fresh.workload, purpose)
            .unwrap_or_else(|e| panic!("workload, retired, {purpose}: {e}"));
    }
    openssl_verify(dir.path(), &retired, &fresh.node, "sslclient")
        .unwrap_or_else(|e| panic!("node, retired: {e}"));
    all_verify("retired", &by_new_ca, &retired);

    // What the old CA signed has expired, and would not verify even at a
    // moment it was valid: its issuer is gone from the bundle.
    for certificate in &by_old_ca {
        let name = &certificate.name;
        assert!(certificate.not_after < now(), "{name} is still valid");
        let then = certificate.verify(&activated);
        then.unwrap_or_else(|e| panic!("{name} verified while valid: {e}"));
        let error = certificate.verify(&retired).unwrap_err();
        assert!(
            error.contains("unable to get local issuer certificate"),
            "{name}: {error}"
        );
    }
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
    let Issued {
        workload: chain,
        bundle,
        ..
    } = sign_orders(&cp, &mut admin).await;

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
    let Issued {
        workload: rotated,
        bundle,
        ..
    } = sign_orders(&cp, &mut admin).await;
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
