//! JWT-SVIDs verify in an independent library: PyJWT fetches the JWKS from
//! the control plane's HTTPS endpoint and checks the tokens. A prepared key
//! is published at once, over HTTPS and through the Bundle call alike, but
//! signs nothing; after activation both keys verify until the old key's
//! tokens expire; once the old key retires, its tokens no longer verify.

use std::process::Command;
use std::time::Duration;

use palisade_proto::identity::BundleRequest;
use palisade_tests::identity::{TestNode, anonymous, join_token};
use palisade_tests::{Admin, ControlPlane, apply, pb};

const TD: &str = "jwt.test";
const AUDIENCE: &str = "spiffe://jwt.test/ns/shop/sa/payments";
/// What PyJWT prints for a token of orders-1 that verifies.
const SUBJECT: &str = "ok spiffe://jwt.test/ns/shop/sa/orders";
/// How long tokens live: long enough that a token minted just before a
/// step is still valid when PyJWT checks it, however loaded the machine;
/// the old key retires this long after the new one activates.
const TTL_SECS: u64 = 10;

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
"#;

/// Fetches the JWKS over HTTPS (trusting only the bundle) and verifies each
/// token with PyJWT, in one process so that a step's checks all happen at
/// once. Prints the JWKS, and each token's key id with "ok <subject>",
/// "error unknown-kid" when the JWKS lacks its key, or the error's type.
const CHECK: &str = r#"
import json, ssl, sys, urllib.request
import jwt
url, cafile, audience, *tokens = sys.argv[1:]
context = ssl.create_default_context(cafile=cafile)
with urllib.request.urlopen(url, context=context, timeout=10) as response:
    published = json.load(response)
jwks = jwt.PyJWKSet.from_dict(published)
results = []
for token in tokens:
    kid = jwt.get_unverified_header(token)["kid"]
    key = next((k for k in jwks.keys if k.key_id == kid), None)
    if key is None:
        result = "error unknown-kid"
    else:
        try:
            claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=audience)
            result = "ok " + claims["sub"]
        except jwt.PyJWTError as error:
            result = "error " + type(error).__name__
    results.append({"kid": kid, "result": result})
print(json.dumps({"jwks": published, "tokens": results}))
"#;

/// What PyJWT saw in one step: the JWKS served, and for each token the key
/// id it names and the outcome.
struct Seen {
    jwks: serde_json::Value,
    kids: Vec<String>,
    results: Vec<String>,
}

struct Verifier {
    python: std::path::PathBuf,
    url: String,
    cafile: std::path::PathBuf,
}

impl Verifier {
    fn new(cp: &ControlPlane) -> Self {
        let address = std::fs::read_to_string(cp.data_dir.join("jwks.addr")).unwrap();
        Self {
            python: palisade_tests::system::python_with(&["pyjwt", "cryptography"]),
            url: format!("https://{}/.well-known/jwks.json", address.trim()),
            cafile: cp.data_dir.join("ca.pem"),
        }
    }

    /// Fetches the JWKS and checks `tokens` against it.
    fn check(&self, tokens: &[&str]) -> Seen {
        let output = Command::new(&self.python)
            .args(["-c", CHECK, &self.url])
            .arg(&self.cafile)
            .arg(AUDIENCE)
            .args(tokens)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let field = |name: &str| -> Vec<String> {
            let tokens = printed["tokens"].as_array().unwrap();
            tokens
                .iter()
                .map(|t| t[name].as_str().unwrap().to_owned())
                .collect()
        };
        Seen {
            kids: field("kid"),
            results: field("result"),
            jwks: printed["jwks"].clone(),
        }
    }
}

/// The JWKS the Bundle call gives.
async fn bundle_jwks(cp: &ControlPlane) -> serde_json::Value {
    let mut client = anonymous(cp).await.unwrap();
    let bundle = client.bundle(BundleRequest {}).await.unwrap().into_inner();
    serde_json::from_str(&bundle.jwks_json).unwrap()
}

/// A JWKS's keys, ordered by key id.
fn keys(jwks: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut keys = jwks["keys"].as_array().unwrap().clone();
    keys.sort_by_key(|k| k["kid"].as_str().unwrap().to_owned());
    keys
}

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    let keys = keys(jwks);
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn mint(cp: &ControlPlane, node: &TestNode) -> String {
    let request = palisade_proto::identity::MintJwtSvidRequest {
        namespace: "shop".into(),
        workload: "orders-1".into(),
        audiences: vec![AUDIENCE.into()],
        ttl_seconds: 0,
    };
    let mut client = node.client(cp).await.unwrap();
    client
        .mint_jwt_svid(request)
        .await
        .unwrap()
        .into_inner()
        .token
}

/// Retires the old key as soon as the tokens it signed have expired: the
/// refusal names the second they stay valid until, which a fixed wait can
/// miss by the rounding of that second.
async fn retire_once_expired(admin: &mut Admin) -> pb::KeySet {
    let deadline = std::time::Instant::now() + Duration::from_secs(TTL_SECS + 10);
    loop {
        match rotate(admin, "retire").await {
            Ok(retired) => return retired,
            Err(refused) if std::time::Instant::now() < deadline => {
                assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(refused) => panic!("the old key never retired: {refused}"),
        }
    }
}

async fn rotate(admin: &mut Admin, step: &str) -> Result<pb::KeySet, tonic::Status> {
    let kind = pb::KeyKind::Jwt as i32;
    let reply = match step {
        "prepare" => admin.prepare_key(pb::PrepareKeyRequest { kind }).await,
        "activate" => {
            // Forced: the test does not wait out the publication window.
            let request = pb::ActivateKeyRequest {
                kind,
                force: true,
                ..Default::default()
            };
            admin.activate_key(request).await
        }
        _ => {
            let request = pb::RetireKeyRequest {
                kind,
                ..Default::default()
            };
            admin.retire_key(request).await
        }
    };
    reply.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_in_pyjwt_through_rotation_and_fail_once_their_key_retires() {
    let mut cp = ControlPlane::init(TD).unwrap();
    let ttl = TTL_SECS.to_string();
    cp.start_with(&["--jwt-svid-ttl-secs", &ttl, "--auto-rotate", "false"])
        .await
        .unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let token = join_token(&mut admin, "web-1", 0).await.unwrap();
    let node = TestNode::attest(&cp, "web-1", &token).await.unwrap();
    let verifier = Verifier::new(&cp);

    // One key: its token verifies; HTTPS and the Bundle call publish alike.
    let first = mint(&cp, &node).await;
    let seen = verifier.check(&[&first]);
    assert_eq!(seen.results, [SUBJECT]);
    let first_kid = seen.kids[0].clone();
    assert_eq!(keys(&seen.jwks), keys(&bundle_jwks(&cp).await));

    // Prepared: published over HTTPS and by the Bundle call, signing nothing.
    rotate(&mut admin, "prepare").await.unwrap();
    let while_prepared = mint(&cp, &node).await;
    let seen = verifier.check(&[&while_prepared]);
    assert_eq!(kids(&seen.jwks).len(), 2, "{}", seen.jwks);
    assert!(kids(&seen.jwks).contains(&first_kid), "{}", seen.jwks);
    assert_eq!(keys(&seen.jwks), keys(&bundle_jwks(&cp).await));
    assert_eq!(
        seen.kids,
        std::slice::from_ref(&first_kid),
        "the old key still signs"
    );
    assert_eq!(seen.results, [SUBJECT]);

    // Active: the new key signs, and the old key's token, minted moments
    // ago and valid for a while yet, still verifies.
    rotate(&mut admin, "activate").await.unwrap();
    let second = mint(&cp, &node).await;
    let seen = verifier.check(&[&while_prepared, &second]);
    assert_ne!(seen.kids[1], first_kid, "the new key signs");
    assert_eq!(
        seen.results,
        [SUBJECT, SUBJECT],
        "the old key stays published"
    );
    let early = rotate(&mut admin, "retire").await.unwrap_err();
    assert_eq!(
        early.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        early.message()
    );

    // Retired: the old key's tokens name a key no longer published.
    let retired = retire_once_expired(&mut admin).await;
    let jwks: serde_json::Value = serde_json::from_str(&retired.published).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let third = mint(&cp, &node).await;
    let seen = verifier.check(&[&first, &while_prepared, &third]);
    let unknown = "error unknown-kid";
    assert_eq!(seen.results, [unknown, unknown, SUBJECT]);
    assert_eq!(kids(&seen.jwks), [seen.kids[2].clone()]);

    // Expired: the new key's first token fails once its time is up.
    let deadline = std::time::Instant::now() + Duration::from_secs(TTL_SECS + 5);
    let mut seen = verifier.check(&[&second]);
    while seen.results == [SUBJECT] && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        seen = verifier.check(&[&second]);
    }
    assert_eq!(seen.results, ["error ExpiredSignatureError"]);
}
