//! JWT-SVIDs verify in an independent library: PyJWT fetches the JWKS from
//! the control plane's HTTPS endpoint and checks the token. A prepared key
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

/// Fetches the JWKS over HTTPS (trusting only the bundle) and verifies the
/// token with PyJWT; prints the subject, or the error's type.
const VERIFY: &str = r#"
import json, ssl, sys, urllib.request
import jwt
url, cafile, token, audience = sys.argv[1:5]
context = ssl.create_default_context(cafile=cafile)
with urllib.request.urlopen(url, context=context, timeout=10) as response:
    jwks = jwt.PyJWKSet.from_dict(json.load(response))
kid = jwt.get_unverified_header(token)["kid"]
try:
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=audience)
    print("ok", claims["sub"])
except StopIteration:
    print("error unknown-kid")
except jwt.PyJWTError as error:
    print("error", type(error).__name__)
"#;

/// Fetches the JWKS over HTTPS (trusting only the bundle) and prints it.
const FETCH: &str = r#"
import json, ssl, sys, urllib.request
url, cafile = sys.argv[1:3]
context = ssl.create_default_context(cafile=cafile)
with urllib.request.urlopen(url, context=context, timeout=10) as response:
    print(json.dumps(json.load(response)))
"#;

/// Prints the `kid` of a token's header.
const KID: &str = r#"
import sys
import jwt
print(jwt.get_unverified_header(sys.argv[1])["kid"])
"#;

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

    fn verify(&self, token: &str) -> String {
        self.run(
            Command::new(&self.python)
                .args(["-c", VERIFY, &self.url])
                .arg(&self.cafile)
                .args([token, AUDIENCE]),
        )
    }

    /// The JWKS served over HTTPS.
    fn jwks(&self) -> serde_json::Value {
        let text = self.run(
            Command::new(&self.python)
                .args(["-c", FETCH, &self.url])
                .arg(&self.cafile),
        );
        serde_json::from_str(&text).unwrap()
    }

    /// The key id a token names.
    fn kid(&self, token: &str) -> String {
        self.run(Command::new(&self.python).args(["-c", KID, token]))
    }

    fn run(&self, command: &mut Command) -> String {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
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
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
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
    cp.start_with(&["--jwt-svid-ttl-secs", "3", "--auto-rotate", "false"])
        .await
        .unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let token = join_token(&mut admin, "web-1", 0).await.unwrap();
    let node = TestNode::attest(&cp, "web-1", &token).await.unwrap();
    let verifier = Verifier::new(&cp);
    let subject = "ok spiffe://jwt.test/ns/shop/sa/orders";

    let first = mint(&cp, &node).await;
    assert_eq!(verifier.verify(&first), subject);
    let first_kid = verifier.kid(&first);
    assert_eq!(keys(&verifier.jwks()), keys(&bundle_jwks(&cp).await));

    // Prepared: published over HTTPS and by the Bundle call, signing nothing.
    rotate(&mut admin, "prepare").await.unwrap();
    let published = verifier.jwks();
    assert_eq!(kids(&published).len(), 2, "{published}");
    assert!(kids(&published).contains(&first_kid), "{published}");
    assert_eq!(keys(&published), keys(&bundle_jwks(&cp).await));
    let while_prepared = mint(&cp, &node).await;
    assert_eq!(verifier.kid(&while_prepared), first_kid);
    assert_eq!(verifier.verify(&while_prepared), subject);

    rotate(&mut admin, "activate").await.unwrap();
    let second = mint(&cp, &node).await;
    assert_ne!(verifier.kid(&second), first_kid, "the new key signs");
    assert_eq!(
        verifier.verify(&first),
        subject,
        "the old key stays published"
    );
    assert_eq!(verifier.verify(&second), subject, "the new key signs");
    let early = rotate(&mut admin, "retire").await.unwrap_err();
    assert_eq!(
        early.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        early.message()
    );

    let retired = retire_once_expired(&mut admin).await;
    let jwks: serde_json::Value = serde_json::from_str(&retired.published).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(verifier.verify(&first), "error unknown-kid");
    let third = mint(&cp, &node).await;
    assert_eq!(verifier.verify(&third), subject);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while verifier.verify(&second) == subject && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(verifier.verify(&second), "error ExpiredSignatureError");
}
