//! Two agents on hosts of their own: each in a network namespace that this
//! test makes, with its own loopback and a veth pair between the two
//! hosts, so that nothing but the veth link joins them. The control plane
//! stays in the test's namespace, reached over a second veth pair per
//! host. Where the machine does not allow network namespaces, the test
//! says so and proves nothing; the bed of `palisade_tests::bed` covers the
//! same ground on loopback addresses.
//!
//! ```text
//!   control plane 10.251.1.1 ──veth── host a 10.251.1.2
//!                 10.251.2.1 ──veth── host b 10.251.2.2
//!   host a (node-a) 10.251.3.1 ──veth── 10.251.3.2 host b (node-b)
//!     web-1, batch-1                       orders-1 -> app at 127.0.0.1:8080
//! ```
//!
//! The application behind orders-1, and the clients of web-1 and batch-1,
//! are small Python programs run inside the namespaces, since a
//! namespace's 127.0.0.1 is its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_tests::identity::join_token;
use palisade_tests::{ControlPlane, apply, binary};

const TRUST_DOMAIN: &str = "netns.test";
/// The control plane's address, on host a's control link.
const CONTROL_PLANE: &str = "10.251.1.1";
const NODE_A: &str = "10.251.3.1";
const NODE_B: &str = "10.251.3.2";
/// The orders Service's port: where web-1's and batch-1's outbound
/// listeners for it are, on their own host.
const ORDERS_PORT: u16 = 9000;
const ORDERS_INBOUND: u16 = 15008;
const ORDERS_APP: u16 = 8080;
/// How long an agent may take to reach a state the test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// Echoes each connection's bytes, the PROXY header first, up to the
/// first newline, and logs a line per connection to the file it is given.
const APP: &str = r#"
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(16)
log = open(sys.argv[2], "a", buffering=1)
while True:
    conn, _ = server.accept()
    log.write("connection\n")
    conn.settimeout(10)
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        conn.sendall(data)
    except OSError:
        pass
    conn.close()
"#;

/// Sends `ping\n` to the address it is given and prints, in hex, what
/// comes back before the connection ends.
const CLIENT: &str = r#"
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
conn.sendall(b"ping\n")
data = b""
try:
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError as error:
    sys.stderr.write(repr(error))
sys.stdout.write(data.hex())
"#;

fn resources() -> String {
    let service = |name: &str, port: u16| {
        format!(
            "kind: Service\nmetadata: {{name: {name}, namespace: shop}}\n\
             spec: {{ports: [{{port: {port}, protocol: tcp}}]}}\n---\n"
        )
    };
    let workload = |name: &str, service: &str, node: &str, extra: &str| {
        format!(
            "kind: Workload\nmetadata: {{name: {name}, namespace: shop}}\n\
             spec: {{service: {service}, node: {node}, {extra}}}\n---\n"
        )
    };
    [
        format!("kind: Node\nmetadata: {{name: node-a}}\nspec: {{address: {NODE_A}}}\n---\n"),
        format!("kind: Node\nmetadata: {{name: node-b}}\nspec: {{address: {NODE_B}}}\n---\n"),
        service("orders", ORDERS_PORT),
        service("web", 9001),
        service("batch", 9002),
        workload(
            "orders-1",
            "orders",
            "node-b",
            &format!("appPort: {ORDERS_APP}, inboundPort: {ORDERS_INBOUND}"),
        ),
        workload(
            "web-1",
            "web",
            "node-a",
            "appPort: 8081, inboundPort: 15006",
        ),
        // batch-1 has a loopback address of its own on host a, so that its
        // outbound listener for orders does not take web-1's.
        workload(
            "batch-1",
            "batch",
            "node-a",
            "appPort: 8082, inboundPort: 15007, address: 127.0.5.2",
        ),
        format!(
            "kind: AuthorizationPolicy\nmetadata: {{name: orders-callers, namespace: shop}}\n\
             spec:\n  targetService: orders\n  rules:\n    - from: [{{namespaces: [shop]}}]\n---\n\
             kind: AuthorizationPolicy\nmetadata: {{name: orders-not-batch, namespace: shop}}\n\
             spec:\n  targetService: orders\n  action: DENY\n  rules:\n    \
             - from: [{{identities: [\"spiffe://{TRUST_DOMAIN}/ns/shop/sa/batch\"]}}]\n"
        ),
    ]
    .concat()
}

/// Runs `ip` with `args`; `Err` with its output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("ip: {error}")),
    }
}

/// The two hosts' namespaces and the links between them; removed, with
/// their interfaces, when dropped.
struct Hosts {
    a: String,
    b: String,
}

impl Hosts {
    /// Makes the namespaces and links, or says why the machine does not
    /// allow it.
    fn create() -> Result<Hosts, String> {
        remove_stale();
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("palisade-{id}-a"), format!("palisade-{id}-b"));
        ip(&["netns", "add", &a])?;
        let hosts = Hosts { a, b };
        ip(&["netns", "add", &hosts.b])?;
        hosts.link(id)?;
        Ok(hosts)
    }

    fn link(&self, id: u32) -> Result<(), String> {
        let (a, b) = (self.a.as_str(), self.b.as_str());
        let (control_a, control_b) = (format!("pc{id}a"), format!("pc{id}b"));
        let (data_a, data_b) = (format!("pd{id}a"), format!("pd{id}b"));

        for (ns, control, root, host) in [
            (a, &control_a, "10.251.1.1/30", "10.251.1.2/30"),
            (b, &control_b, "10.251.2.1/30", "10.251.2.2/30"),
        ] {
            let inside = format!("{control}n");
            ip(&[
                "link", "add", control, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", ns])?;
            ip(&["addr", "add", root, "dev", control])?;
            ip(&["link", "set", control, "up"])?;
            ip(&["-n", ns, "addr", "add", host, "dev", &inside])?;
            ip(&["-n", ns, "link", "set", &inside, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // Host b reaches the control plane's address through its own link.
        ip(&[
            "-n",
            b,
            "route",
            "add",
            "10.251.1.1/32",
            "via",
            "10.251.2.1",
        ])?;

        ip(&[
            "link", "add", &data_a, "type", "veth", "peer", "name", &data_b,
        ])?;
        for (ns, data, address) in [(a, &data_a, NODE_A), (b, &data_b, NODE_B)] {
            ip(&["link", "set", data, "netns", ns])?;
            let address = format!("{address}/30");
            ip(&["-n", ns, "addr", "add", &address, "dev", data])?;
            ip(&["-n", ns, "link", "set", data, "up"])?;
        }
        Ok(())
    }

    /// `program` with `args`, run inside `namespace`.
    fn command(namespace: &str, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .arg(program)
            .args(args);
        command
    }
}

/// Removes the namespaces, and with them the links, of earlier runs that
/// were killed before they could: a link left behind would hold the same
/// addresses as this run's.
fn remove_stale() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    let stale = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("palisade-"));
    for name in stale {
        let _ = ip(&["netns", "del", name]);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A process inside a namespace, killed when dropped.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line with `text`.
    async fn wait_for_log(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited with {status} before {text:?}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} in {WAIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, log: PathBuf) -> Running {
    let file = std::fs::File::create(&log).unwrap();
    let child = command
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("starting a process in a namespace");
    Running { child, log }
}

/// Starts the agent of `node` inside `namespace`.
fn agent(cp: &ControlPlane, namespace: &str, node: &str, bind: &str) -> Running {
    let root = cp.root.path();
    let control_plane = format!("{CONTROL_PLANE}:{}", cp.address().port());
    let data_dir = root.join(node);
    let token = root.join(format!("{node}.token"));
    let bundle = cp.data_dir.join("ca.pem");
    let args = [
        "run",
        "--control-plane",
        &control_plane,
        "--server-name",
        "localhost",
        "--node",
        node,
        "--join-token-file",
        token.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--trust-bundle",
        bundle.to_str().unwrap(),
        "--bind-address",
        bind,
        "--proxy-protocol",
        "--drain-timeout-secs",
        "1",
    ];
    let command = Hosts::command(namespace, &binary("palisade-agent"), &args);
    spawn(command, root.join(format!("{node}.log")))
}

/// Runs [`CLIENT`] inside `namespace` against `host:port`; what came back,
/// and what the client said on stderr.
fn call(namespace: &str, host: &str, port: u16) -> (Vec<u8>, String) {
    let port = port.to_string();
    let args = ["-c", CLIENT, host, &port];
    let Output { stdout, stderr, .. } = Hosts::command(namespace, Path::new("python3"), &args)
        .output()
        .expect("running the client");
    let hex = String::from_utf8_lossy(&stdout).trim().to_owned();
    let bytes = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    (bytes, String::from_utf8_lossy(&stderr).into_owned())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn connections(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_hosts_of_their_own_enforce_identity_and_policy_between_them() {
    let hosts = match Hosts::create() {
        Ok(hosts) => hosts,
        Err(why) => {
            eprintln!("skipped: the machine does not allow network namespaces: {why}");
            return;
        }
    };

    // The control plane on the control link, and what it holds.
    let mut cp = ControlPlane::init(TRUST_DOMAIN).unwrap();
    let listen: SocketAddr = format!("{CONTROL_PLANE}:0").parse().unwrap();
    cp.start_on_with(listen, &[]).await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, &resources()).await.unwrap();
    let root = cp.root.path().to_owned();
    for node in ["node-a", "node-b"] {
        let token = join_token(&mut admin, node, 600).await.unwrap();
        std::fs::write(root.join(format!("{node}.token")), token).unwrap();
    }

    // orders' application, and both agents, each on its host.
    let app_log = root.join("orders-app.connections");
    let app_args = [
        "-c",
        APP,
        &ORDERS_APP.to_string(),
        app_log.to_str().unwrap(),
    ]
    .map(String::from);
    let app_args: Vec<&str> = app_args.iter().map(String::as_str).collect();
    let python = Path::new("python3");
    let _app = spawn(
        Hosts::command(&hosts.b, python, &app_args),
        root.join("app.log"),
    );
    let mut agent_a = agent(&cp, &hosts.a, "node-a", NODE_A);
    let mut agent_b = agent(&cp, &hosts.b, "node-b", NODE_B);
    agent_a
        .wait_for_log(&format!("listening address=127.0.0.1:{ORDERS_PORT} "))
        .await;
    agent_a
        .wait_for_log(&format!("listening address=127.0.5.2:{ORDERS_PORT} "))
        .await;
    agent_b
        .wait_for_log(&format!("listening address={NODE_B}:{ORDERS_INBOUND} "))
        .await;

    // web -> orders across the link; batch -> orders, which a DENY policy
    // refuses; and a stranger on host a straight to orders' inbound port.
    let (web, web_said) = call(&hosts.a, "127.0.0.1", ORDERS_PORT);
    let reached = connections(&app_log);
    let (batch, batch_said) = call(&hosts.a, "127.0.5.2", ORDERS_PORT);
    let (stranger, _) = call(&hosts.a, NODE_B, ORDERS_INBOUND);
    let reached_after = connections(&app_log);

    let web_id = format!("spiffe://{TRUST_DOMAIN}/ns/shop/sa/web");
    assert!(
        contains(&web, &web_id) && web.ends_with(b"ping\n"),
        "web -> orders: {web:?} {web_said}\n{}\n{}",
        agent_a.log(),
        agent_b.log()
    );
    assert_eq!(reached, 1);
    assert!(batch.is_empty(), "batch -> orders: {batch:?} {batch_said}");
    // Plaintext gets a TLS alert record (content type 21) at most.
    let alert_only = stranger.is_empty() || (stranger[0] == 21 && stranger.len() <= 7);
    assert!(alert_only, "stranger -> orders: {stranger:?}");
    assert_eq!(reached_after, reached, "a refused call reached orders");
    // The PROXY v2 header's source address, after its 16 fixed bytes, is
    // the caller's host.
    assert_eq!(web.get(16..20), Some(&[10, 251, 3, 1][..]), "{web:?}");
    agent_b.wait_for_log("rule=orders-not-batch/0").await;
    let batch_id = format!("caller=spiffe://{TRUST_DOMAIN}/ns/shop/sa/batch");
    assert!(agent_b.log().contains(&batch_id), "{}", agent_b.log());
}
