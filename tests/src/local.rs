//! One host whose agent serves the local APIs: a control plane, the Node
//! [`NODE`] at 127.0.0.1 with the workloads a test gives it, and one
//! `palisade-agent run` with `--sds-socket` and `--cert-dir`, configured
//! through the admin API as an admin would. Everything lives in the
//! control plane's temporary directory:
//!
//! ```text
//! <root>/web-1/            the agent's data directory
//! <root>/run/agent.sock    the SDS socket; the agent makes run/
//! <root>/certs/            the certificate directory for proxyless gRPC
//! <root>/agent.log         the agent's log
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::identity::join_token;
use crate::{Admin, ControlPlane, apply, binary};

/// The host's Node.
pub const NODE: &str = "web-1";
/// The namespace of every workload.
pub const NAMESPACE: &str = "shop";
/// The control plane's trust domain.
pub const TRUST_DOMAIN: &str = "local.test";
/// How long the agent may take to reach a state a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The SPIFFE ID of the workloads of `service`.
pub fn id(service: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{service}")
}

/// A Service and its one Workload on [`NODE`], on ports chosen once.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub service: &'static str,
    pub workload: &'static str,
    port: u16,
    app_port: u16,
    inbound_port: u16,
}

impl Member {
    /// `workload` of `service`, on free ports.
    pub fn new(service: &'static str, workload: &'static str) -> Self {
        let free = || crate::bed::ports::free_on(&[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        Self {
            service,
            workload,
            port: free(),
            app_port: free(),
            inbound_port: free(),
        }
    }

    /// The Service and Workload documents, the Workload with `selectors`
    /// (a YAML flow mapping such as `{unixUid: 0}`).
    pub fn yaml(&self, selectors: &str) -> String {
        let Self {
            service, workload, ..
        } = self;
        format!(
            "kind: Service\nmetadata: {{name: {service}, namespace: {NAMESPACE}}}\n\
             spec: {{ports: [{{port: {}, protocol: tcp}}]}}\n---\n\
             kind: Workload\nmetadata: {{name: {workload}, namespace: {NAMESPACE}}}\n\
             spec: {{service: {service}, node: {NODE}, appPort: {}, inboundPort: {}, \
             selectors: {selectors}}}\n---\n",
            self.port, self.app_port, self.inbound_port
        )
    }

    /// Where the agent writes the workload's certificate files under
    /// `cert_dir`.
    pub fn files_in(&self, cert_dir: &Path) -> PathBuf {
        cert_dir.join(NAMESPACE).join(self.workload)
    }
}

/// The host; the agent is killed when it is dropped.
pub struct Host {
    agent: Child,
    pub sds_socket: PathBuf,
    pub cert_dir: PathBuf,
    pub data_dir: PathBuf,
    log: PathBuf,
    admin: Admin,
    /// The control plane; its directory holds the agent's too.
    pub cp: ControlPlane,
}

impl Host {
    /// Starts the control plane with `serve_flags`, applies the Node and
    /// `resources`, and starts the agent; waits until it enforces what the
    /// control plane sent and serves SDS.
    pub async fn start(serve_flags: &[&str], resources: &str) -> Host {
        // The control plane and what it holds.
        let mut cp = ControlPlane::init(TRUST_DOMAIN).expect("palisade-cp init");
        cp.start_with(serve_flags)
            .await
            .expect("starting palisade-cp");
        let mut admin = cp.admin().await.expect("an admin client");
        let node =
            format!("kind: Node\nmetadata: {{name: {NODE}}}\nspec: {{address: 127.0.0.1}}\n");
        apply(&mut admin, &format!("{node}---\n{resources}"))
            .await
            .expect("applying the host's resources");

        // The agent, with both local APIs on.
        let root = cp.root.path().to_owned();
        let token = join_token(&mut admin, NODE, 600)
            .await
            .expect("a join token");
        std::fs::write(root.join("join-token"), token).expect("writing the join token");
        let sds_socket = root.join("run/agent.sock");
        let cert_dir = root.join("certs");
        let data_dir = root.join(NODE);
        let log = root.join("agent.log");
        let agent = Command::new(binary("palisade-agent"))
            .arg("run")
            .args(["--control-plane", &cp.address().to_string(), "--node", NODE])
            .arg("--join-token-file")
            .arg(root.join("join-token"))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--trust-bundle")
            .arg(cp.data_dir.join("ca.pem"))
            .args(["--bind-address", "127.0.0.1", "--drain-timeout-secs", "1"])
            .arg("--sds-socket")
            .arg(&sds_socket)
            .arg("--cert-dir")
            .arg(&cert_dir)
            .env("RUST_LOG", "info,palisade_agent::sds=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the agent log"))
            .spawn()
            .expect("starting palisade-agent");

        let mut host = Host {
            agent,
            sds_socket,
            cert_dir,
            data_dir,
            log,
            admin,
            cp,
        };
        host.wait_until("enforcing the control plane's configuration", |host| {
            host.status()
                .is_some_and(|s| s["source"] == "control-plane")
        })
        .await;
        host.wait_until("serving SDS", |host| host.log().contains("SDS listening"))
            .await;
        host
    }

    /// Applies `yaml` through the admin API and waits until the agent
    /// enforces it; returns the revision.
    pub async fn apply(&mut self, yaml: &str) -> u64 {
        let applied = apply(&mut self.admin, yaml).await;
        let revision = applied.expect("applying").revision;
        self.wait_until(&format!("enforcing revision {revision}"), |host| {
            host.status()
                .and_then(|s| s["revision"].as_u64())
                .is_some_and(|r| r >= revision)
        })
        .await;
        revision
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What `<data-dir>/status.json` says now.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read(self.data_dir.join("status.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Polls `ready` until it holds, panicking after [`WAIT`] with `what`
    /// and the agent's log, or at once if the agent exited.
    pub async fn wait_until(&mut self, what: &str, ready: impl Fn(&Host) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(self) {
            if let Some(status) = self.agent.try_wait().expect("checking on the agent") {
                panic!("the agent exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in {WAIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}
