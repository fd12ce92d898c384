//! Interoperability with a real xDS client nobody on this team wrote:
//! Python's grpcio resolves `xds:///orders.shop` through the Listener,
//! RouteConfiguration, Cluster and ClusterLoadAssignment that Palisade
//! serves over mTLS, and completes a health check against the workload
//! registered for the service.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade_tests::identity::{TestNode, join_token};
use palisade_tests::{ControlPlane, apply, palisadectl};

const PACKAGES: [&str; 2] = ["grpcio", "grpcio-health-checking"];
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/xds");

fn shop(backend_port: u16) -> String {
    format!(
        r#"
kind: Node
metadata: {{name: web-1}}
spec: {{address: 127.0.0.1}}
---
kind: Service
metadata: {{name: orders, namespace: shop}}
spec: {{ports: [{{port: 9090, protocol: grpc}}]}}
---
kind: Service
metadata: {{name: storefront, namespace: shop}}
spec: {{ports: [{{port: 8080, protocol: http}}]}}
---
kind: Workload
metadata: {{name: orders-1, namespace: shop}}
spec: {{service: orders, node: web-1, appPort: 9090, inboundPort: {backend_port}}}
---
kind: Workload
metadata: {{name: storefront-1, namespace: shop}}
spec: {{service: storefront, node: web-1, appPort: 8080, inboundPort: 15008}}
---
kind: AuthorizationPolicy
metadata: {{name: orders-from-storefront, namespace: shop}}
spec:
  targetService: orders
  rules:
    - from: [{{identities: ["spiffe://interop.test/ns/shop/sa/storefront"]}}]
"#
    )
}

/// A process killed when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes what the agent would: the workload's certificate, key and bundle.
async fn write_svid(cp: &ControlPlane, node: &TestNode, dir: &Path) {
    let (key, issued) = node
        .sign(
            cp,
            "shop",
            "storefront-1",
            "spiffe://interop.test/ns/shop/sa/storefront",
        )
        .await
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("svid.pem"), issued.certificate_chain_pem).unwrap();
    std::fs::write(dir.join("svid-key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(
        dir.join("bundle.pem"),
        issued.bundle.unwrap().x509_authorities_pem,
    )
    .unwrap();
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the backend never listened on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_resolves_a_service_through_palisade_and_calls_its_workload() {
    let python = palisade_tests::system::python_with(&PACKAGES);
    let mut cp = ControlPlane::init("interop.test").unwrap();
    cp.start().await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    let backend_port = free_port();
    apply(&mut admin, &shop(backend_port)).await.unwrap();

    // The backend, and what an agent would have written for the client.
    let backend = Command::new(&python)
        .arg(format!("{SCRIPTS}/health_server.py"))
        .args(["--host", "127.0.0.1", "--port", &backend_port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _backend = Killed(backend);
    wait_for_port(backend_port).await;
    let token = join_token(&mut admin, "web-1", 0).await.unwrap();
    let node = TestNode::attest(&cp, "web-1", &token).await.unwrap();
    let certs = cp.root.path().join("storefront-1");
    write_svid(&cp, &node, &certs).await;

    // The bootstrap, as palisadectl prints it.
    let bootstrap = palisadectl(
        &cp.ctl_config(),
        &[
            "bootstrap",
            "grpc",
            "--workload",
            "shop/storefront-1",
            "--cert-dir",
            certs.to_str().unwrap(),
        ],
    );
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    let bootstrap_file = cp.root.path().join("bootstrap.json");
    std::fs::write(&bootstrap_file, &bootstrap.stdout).unwrap();

    // The call.
    let output = Command::new(&python)
        .arg(format!("{SCRIPTS}/grpc_client.py"))
        .args(["--target", "xds:///orders.shop", "--timeout", "30"])
        .env("GRPC_XDS_BOOTSTRAP", &bootstrap_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("SERVING"),
        "grpc client failed:\n{stdout}\n{}\ncontrol plane log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        cp.log()
    );
}
