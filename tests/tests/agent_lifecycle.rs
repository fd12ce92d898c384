//! A real `palisade-agent run` against a real control plane: it attests
//! with a join token, syncs every agent type over one delta stream, keeps
//! its keys and certificates in its data directory, goes on to the next
//! control plane address when one is dead, and, restarted while the
//! control plane is gone, enforces its last known good; with none it can
//! use, it listens nowhere and says why. Its settings may come from a TOML
//! file that flags override; a bad file stops it with one line.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use palisade_tests::bed::{self, Bed, Limits, allowed, denied};
use palisade_tests::identity::join_token;
use palisade_tests::x509::{first_der, spiffe_id};
use palisade_tests::{Admin, ControlPlane, apply, binary, pb};

/// How long the agent may take to reach a state a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// The six agent types.
const TYPES: [&str; 6] = [
    "type.googleapis.com/palisade.xds.v1.Workload",
    "type.googleapis.com/palisade.xds.v1.Authorization",
    "type.googleapis.com/palisade.xds.v1.Endpoints",
    "type.googleapis.com/palisade.xds.v1.JwtRules",
    "type.googleapis.com/palisade.xds.v1.TrustBundle",
    "type.googleapis.com/palisade.xds.v1.DenyList",
];

fn shop(inbound_port: u16, app_port: u16) -> String {
    format!(
        r#"
kind: Node
metadata: {{name: web-1}}
spec: {{address: 127.0.0.1}}
---
kind: Service
metadata: {{name: orders, namespace: shop}}
spec: {{ports: [{{port: 9090, protocol: tcp}}]}}
---
kind: Workload
metadata: {{name: orders-1, namespace: shop}}
spec: {{service: orders, node: web-1, appPort: {app_port}, inboundPort: {inbound_port}}}
---
kind: AuthorizationPolicy
metadata: {{name: orders-from-shop, namespace: shop}}
spec:
  targetService: orders
  rules:
    - from: [{{namespaces: [shop]}}]
"#
    )
}

/// Ports of [`shop_with_upstream`]: orders-1's inbound port and app port,
/// and the port of payments, which orders may call.
#[derive(Clone, Copy, Debug)]
struct Ports {
    inbound: u16,
    app: u16,
    payments: u16,
}

impl Ports {
    fn free() -> Self {
        let [inbound, app, payments] = free_ports();
        Self {
            inbound,
            app,
            payments,
        }
    }

    /// Where the agent of web-1 serves orders-1's callers.
    fn inbound(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.inbound))
    }

    /// Where the agent of web-1 takes orders-1's calls to payments.
    fn outbound(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.payments))
    }
}

/// [`shop`], and payments on another node, which orders may call: the
/// agent of web-1 listens on orders-1's inbound port, and on a loopback
/// port for orders-1's calls to payments.
fn shop_with_upstream(ports: Ports) -> String {
    let payments = format!(
        r#"
---
kind: Node
metadata: {{name: web-2}}
spec: {{address: 127.0.0.2}}
---
kind: Service
metadata: {{name: payments, namespace: shop}}
spec: {{ports: [{{port: {}, protocol: tcp}}]}}
---
kind: Workload
metadata: {{name: payments-1, namespace: shop}}
spec: {{service: payments, node: web-2, appPort: 8080, inboundPort: 15008}}
---
kind: AuthorizationPolicy
metadata: {{name: payments-from-orders, namespace: shop}}
spec:
  targetService: payments
  rules:
    - from: [{{identities: ["spiffe://agent.test/ns/shop/sa/orders"]}}]
"#,
        ports.payments
    );
    shop(ports.inbound, ports.app) + &payments
}

/// A control plane started with `serve_flags` and holding `resources`,
/// with web-1's join token in `<root>/join-token`, and an admin client.
async fn control_plane_holding(serve_flags: &[&str], resources: &str) -> (ControlPlane, Admin) {
    let mut cp = ControlPlane::init("agent.test").unwrap();
    cp.start_with(serve_flags).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, resources).await.unwrap();
    let token = join_token(&mut admin, "web-1", 0).await.unwrap();
    std::fs::write(cp.root.path().join("join-token"), token).unwrap();
    (cp, admin)
}

/// Whether nothing listens at `address`: the connection is refused.
async fn nothing_listens(address: SocketAddr) -> Result<(), String> {
    let connect = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(address));
    match connect.await {
        Err(_) => Err(format!("{address}: connect timed out")),
        Ok(Ok(_)) => Err(format!("{address}: a listener took the connection")),
        Ok(Err(error)) if error.kind() == ErrorKind::ConnectionRefused => Ok(()),
        Ok(Err(error)) => Err(format!("{address}: {error}")),
    }
}

/// Loopback ports that were free a moment ago, all different: each is
/// held until all are chosen.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: [TcpListener; N] = std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    held.map(|listener| listener.local_addr().unwrap().port())
}

/// One `palisade-agent run` process, killed when dropped.
struct Agent {
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(root: &Path, control_plane: &str, trust_bundle: &Path, run: &str) -> Agent {
        let data_dir = root.join("agent-data");
        let log = root.join(format!("agent-{run}.log"));
        let child = Command::new(binary("palisade-agent"))
            .arg("run")
            .args(["--control-plane", control_plane, "--node", "web-1"])
            .arg("--join-token-file")
            .arg(root.join("join-token"))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--trust-bundle")
            .arg(trust_bundle)
            .args(["--bind-address", "127.0.0.1", "--drain-timeout-secs", "2"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting palisade-agent");
        Agent {
            child: Some(child),
            data_dir,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read(self.data_dir.join("status.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Waits until the status file says `source`, and returns it.
    async fn wait_for_source(&mut self, source: &str) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.status().filter(|s| s["source"] == source) {
                return status;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "the agent never reported {source}; status {:?}\n{}",
                self.status(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `path` exists under the data directory.
    async fn wait_for_file(&mut self, path: &str) -> PathBuf {
        let full = self.data_dir.join(path);
        let deadline = Instant::now() + WAIT;
        while !full.exists() {
            self.assert_running();
            assert!(Instant::now() < deadline, "no {path}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        full
    }

    /// Waits until the log holds `text`.
    async fn wait_for_log(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(text) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the agent was started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited with {status}:\n{}", self.log());
        }
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the agent is running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the agent did not stop after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn agent_stream(admin: &mut Admin) -> Option<pb::XdsStream> {
    let request = pb::FleetStatusRequest {
        node: "web-1".into(),
        resources: true,
    };
    let status = admin.fleet_status(request).await.unwrap().into_inner();
    status.streams.into_iter().find(|s| s.client == "agent")
}

/// Waits until the agent's stream acknowledged every type without a NACK.
async fn wait_for_acks(admin: &mut Admin, agent: &mut Agent) -> pb::XdsStream {
    let deadline = Instant::now() + WAIT;
    loop {
        let stream = agent_stream(admin).await;
        let acked = |stream: &pb::XdsStream| {
            TYPES.iter().all(|type_url| {
                stream.types.iter().any(|t| {
                    t.type_url == *type_url && t.acked_revision > 0 && t.last_nack_error.is_empty()
                })
            })
        };
        if let Some(stream) = stream.filter(acked) {
            return stream;
        }
        agent.assert_running();
        assert!(Instant::now() < deadline, "no full ACK:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn agent_attests_syncs_and_restarts_from_its_last_known_good() {
    let [inbound_port, app_port] = free_ports();
    let (mut cp, mut admin) = control_plane_holding(&[], &shop(inbound_port, app_port)).await;
    let root = cp.root.path().to_owned();
    let bundle = cp.data_dir.join("ca.pem");
    let address = cp.address().to_string();

    // First run: attest, sync, get the workload's certificate.
    let mut agent = Agent::start(&root, &address, &bundle, "first");
    let stream = wait_for_acks(&mut admin, &mut agent).await;
    agent.wait_for_source("control-plane").await;
    let workload_key = agent.wait_for_file("workloads/shop/orders-1/key.pem").await;
    let workload_cert = agent
        .wait_for_file("workloads/shop/orders-1/cert.pem")
        .await;

    assert_eq!(stream.protocol, "delta");
    let workloads = stream
        .types
        .iter()
        .find(|t| t.type_url == TYPES[0])
        .unwrap();
    assert_eq!(workloads.held[0].name, "shop/orders-1");
    assert_eq!(mode(&agent.data_dir.join("node/key.pem")), 0o600);
    let node_cert = std::fs::read_to_string(agent.data_dir.join("node/cert.pem")).unwrap();
    assert_eq!(
        spiffe_id(&first_der(&node_cert)).unwrap(),
        "spiffe://agent.test/node/web-1"
    );
    assert_eq!(mode(&workload_key), 0o600);
    let chain = std::fs::read_to_string(&workload_cert).unwrap();
    assert_eq!(
        spiffe_id(&first_der(&chain)).unwrap(),
        "spiffe://agent.test/ns/shop/sa/orders"
    );
    assert!(agent.data_dir.join("last-known-good.json").exists());
    assert!(agent.terminate().success(), "{}", agent.log());
    let last = agent.status().unwrap();

    // Second run, with the control plane gone and the token used up.
    cp.kill();
    std::fs::remove_file(root.join("join-token")).unwrap();
    let mut restarted = Agent::start(&root, &address, &bundle, "second");
    let restored = restarted.wait_for_source("last-known-good").await;

    assert_eq!(restored["revision"], last["revision"]);
    assert!(restored["revision"].as_u64().unwrap() > 0);
    assert_eq!(restored["resources"]["Workload"], 1);
    assert!(
        restarted
            .log()
            .contains("enforcing the last known good configuration"),
        "{}",
        restarted.log()
    );
    assert!(restarted.terminate().success(), "{}", restarted.log());
}

/// Waits until the file at `path` holds something other than `before`.
async fn wait_for_change(agent: &mut Agent, path: &Path, before: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if !now.is_empty() && now != before {
            return now;
        }
        agent.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} never changed:\n{}",
            path.display(),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn agent_renews_its_certificates_at_half_life_and_reconnects_with_the_new_one() {
    let [inbound_port, app_port] = free_ports();
    let short_lived = ["--node-ttl-secs", "10", "--workload-ttl-secs", "6"];
    let (cp, mut admin) = control_plane_holding(&short_lived, &shop(inbound_port, app_port)).await;
    let root = cp.root.path().to_owned();
    let address = cp.address().to_string();
    let mut agent = Agent::start(&root, &address, &cp.data_dir.join("ca.pem"), "renewing");
    let first_stream = wait_for_acks(&mut admin, &mut agent).await;
    let workload_cert = agent
        .wait_for_file("workloads/shop/orders-1/cert.pem")
        .await;
    let node_cert = agent.data_dir.join("node/cert.pem");
    let first_workload = std::fs::read_to_string(&workload_cert).unwrap();
    let first_node = std::fs::read_to_string(&node_cert).unwrap();

    wait_for_change(&mut agent, &workload_cert, &first_workload).await;
    wait_for_change(&mut agent, &node_cert, &first_node).await;
    let deadline = Instant::now() + WAIT;
    let second_stream = loop {
        let stream = wait_for_acks(&mut admin, &mut agent).await;
        if stream.id != first_stream.id {
            break stream;
        }
        assert!(Instant::now() < deadline, "no new stream:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(second_stream.protocol, "delta");
    let log = agent.log();
    assert!(log.contains("node certificate renewed"), "{log}");
    assert!(log.contains("TLS material changed; reconnecting"), "{log}");
    let issued = log.matches("workload certificate issued").count();
    assert!(
        (2..=8).contains(&issued),
        "{issued} issuances in a few seconds:\n{log}"
    );
    assert!(agent.terminate().success(), "{}", agent.log());
}

#[tokio::test]
async fn agent_attests_and_syncs_through_the_next_address_when_the_first_is_dead() {
    let [inbound_port, app_port, dead_port] = free_ports();
    let (cp, mut admin) = control_plane_holding(&[], &shop(inbound_port, app_port)).await;
    let root = cp.root.path().to_owned();
    let dead = format!("127.0.0.1:{dead_port}");
    let live = cp.address().to_string();

    let addresses = format!("{dead},{live}");
    let mut agent = Agent::start(&root, &addresses, &cp.data_dir.join("ca.pem"), "failover");
    let stream = wait_for_acks(&mut admin, &mut agent).await;
    let status = agent.wait_for_source("control-plane").await;
    let workload_cert = agent
        .wait_for_file("workloads/shop/orders-1/cert.pem")
        .await;

    assert_eq!(stream.protocol, "delta");
    assert_eq!(status["connected_to"], format!("https://{live}"));
    let node_cert = std::fs::read_to_string(agent.data_dir.join("node/cert.pem")).unwrap();
    assert_eq!(
        spiffe_id(&first_der(&node_cert)).unwrap(),
        "spiffe://agent.test/node/web-1"
    );
    assert!(workload_cert.exists());
    let log = agent.log();
    let skipped = format!("no xDS stream; reconnecting address=https://{dead}");
    assert!(log.contains(&skipped), "{log}");
    assert!(agent.terminate().success(), "{}", agent.log());
}

/// What an agent with nothing to enforce logs.
const REFUSING_ALL: &str =
    "no configuration yet: refusing all traffic until the control plane answers";

#[tokio::test]
async fn agent_with_no_configuration_and_no_control_plane_refuses_everything() {
    // The control plane knows of orders-1, but is gone before the agent
    // could ask it.
    let ports = Ports::free();
    let (mut cp, _) = control_plane_holding(&[], &shop_with_upstream(ports)).await;
    let root = cp.root.path().to_owned();
    let address = cp.address().to_string();
    cp.kill();

    let mut agent = Agent::start(&root, &address, &cp.data_dir.join("ca.pem"), "alone");
    let status = agent.wait_for_source("none").await;
    agent.wait_for_log(REFUSING_ALL).await;

    assert_eq!(status["revision"], 0);
    nothing_listens(ports.inbound()).await.unwrap();
    nothing_listens(ports.outbound()).await.unwrap();
    agent.assert_running();
    assert!(agent.terminate().success(), "{}", agent.log());
}

/// The last known good's Workload, with bytes that are no protobuf.
fn undecodable(last_known_good: &str) -> String {
    let mut saved: serde_json::Value = serde_json::from_str(last_known_good).unwrap();
    let workloads = &mut saved["resources"][TYPES[0]];
    workloads["shop/orders-1"]["value"] = "/////w==".into();
    saved.to_string()
}

#[tokio::test]
async fn agent_ignores_a_last_known_good_it_cannot_use_and_refuses_everything() {
    let ports = Ports::free();
    let (mut cp, _) = control_plane_holding(&[], &shop_with_upstream(ports)).await;
    let root = cp.root.path().to_owned();
    let (address, bundle) = (cp.address().to_string(), cp.data_dir.join("ca.pem"));

    // A first run enforces the configuration and saves it: it listens
    // where orders-1 is called and where it calls payments.
    let mut agent = Agent::start(&root, &address, &bundle, "configured");
    agent.wait_for_source("control-plane").await;
    for listener in [ports.inbound(), ports.outbound()] {
        agent
            .wait_for_log(&format!("listening address={listener} "))
            .await;
    }
    assert!(agent.terminate().success(), "{}", agent.log());
    cp.kill();
    let path = agent.data_dir.join("last-known-good.json");
    let saved = std::fs::read_to_string(&path).unwrap();

    // Restarted with the control plane gone and the file damaged, it
    // says why it ignores the file, and listens nowhere.
    let damaged = [
        (
            "garbage",
            "{\"format\": 1, \"revis".to_owned(),
            "is unreadable",
        ),
        ("undecodable", undecodable(&saved), "is invalid"),
    ];
    for (run, contents, why) in damaged {
        std::fs::write(&path, contents).unwrap();
        let mut restarted = Agent::start(&root, &address, &bundle, run);
        let status = restarted.wait_for_source("none").await;
        restarted.wait_for_log(REFUSING_ALL).await;

        let ignored = format!("the last known good configuration {why}; ignoring it");
        assert!(
            restarted.log().contains(&ignored),
            "{run}:\n{}",
            restarted.log()
        );
        assert_eq!(status["revision"], 0, "{run}");
        nothing_listens(ports.inbound()).await.unwrap();
        nothing_listens(ports.outbound()).await.unwrap();
        restarted.assert_running();
        assert!(restarted.terminate().success(), "{}", restarted.log());
    }
}

#[test]
fn agent_with_bad_configuration_exits_64_with_one_line() {
    let output = Command::new(binary("palisade-agent"))
        .args(["run", "--node", "web-1", "--trust-bundle", "/nonexistent"])
        .env_remove("PALISADE_AGENT_CONTROL_PLANE")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: control_plane: required: at least one address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_configured_by_a_file_attests_syncs_and_enforces_with_a_flag_over_the_file() {
    let started = SystemTime::now();
    let mut bed = Bed::start_with_config_file(Limits::default(), "node-c").await;
    let streams = bed.wait_for_fleet_in_sync(started).await;

    // payments-1 on node-c answers with its caller's identity, which only
    // the PROXY header the flag turned on can have told it.
    let calls = [
        allowed("orders", "payments"),
        allowed("ledger", "payments"),
        denied("web", "payments", "payments-not-web/0"),
    ];
    bed.check(&calls).await.unwrap();

    let agent = bed.agent("node-c");
    let log = agent.log();
    let node_id = format!("spiffe://{}/node/node-c", bed::TRUST_DOMAIN);
    assert!(
        log.contains(&format!("node attested spiffe_id=\"{node_id}\"")),
        "{log}"
    );
    let node_cert = std::fs::read_to_string(agent.data_dir.join("node/cert.pem")).unwrap();
    assert_eq!(spiffe_id(&first_der(&node_cert)).unwrap(), node_id);
    assert_eq!(streams["node-c"].protocol, "delta");
    let starting = log
        .lines()
        .find(|l| l.contains("palisade-agent starting"))
        .unwrap();
    let data_dir = format!("data_dir={} ", agent.data_dir.display());
    for setting in [
        data_dir.as_str(),
        "proxy_protocol=true ",
        "max_connections=1000 ",
    ] {
        assert!(starting.contains(setting), "{setting}: {starting}");
    }
}

/// A config file that would do, with `line` added.
fn config_file_with(root: &Path, line: &str) -> PathBuf {
    let path = root.join("agent.toml");
    let text = format!(
        "control_plane = [\"127.0.0.1:7443\"]\nnode = \"web-1\"\n\
         trust_bundle = \"/etc/palisade/ca.pem\"\n{line}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn agent_with_a_bad_config_file_exits_64_with_one_line_naming_the_setting() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        ("node_name = \"web-2\"", "unknown field `node_name`"),
        (
            "max_connections = \"many\"",
            "max_connections: invalid type",
        ),
        (
            "outbound_address = \"10.0.0.1\"",
            "outbound_address: 10.0.0.1 is not a loopback",
        ),
    ];

    for (line, expected) in cases {
        let file = config_file_with(root.path(), line);
        let output = Command::new(binary("palisade-agent"))
            .arg("run")
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{line}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{line}: {stderr}");
        assert!(stderr.starts_with("error: "), "{line}: {stderr}");
        assert!(stderr.contains(expected), "{line}: {stderr}");
    }
}
