//! The Palisade side of the agent benchmarks: a control plane, two nodes
//! on their own loopback addresses with an agent each, and the resources
//! that connect them, applied through the admin API as a user would.
//!
//! ```text
//!   client node 127.0.0.21            server node 127.0.0.22
//!   bench/client-1                    bench/echo-1, bench/sink-1 (the loads)
//!   outbound :echo, :sink  --mTLS-->  inbound listeners -> 127.0.0.1:app
//!                                     bench/svc-0000-1 ... (idle, policy each)
//! ```
//!
//! The client workload may call `echo` and `sink`, so its agent opens an
//! outbound listener for each on the client node's address. The server
//! node also runs `--workloads` more workloads, each of a Service of its
//! own with an AuthorizationPolicy naming callers that do not run
//! anywhere: their listeners, certificates and rules are the idle agent's
//! thousand workloads' worth of policy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use palisade_proto::admin::CreateJoinTokenRequest;

use super::process::{Process, sibling};
use crate::cp::{ControlPlane, TRUST_DOMAIN, apply};

/// The client node's address.
pub const CLIENT_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);
/// The server node's address.
pub const SERVER_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 22);
/// The namespace of every resource.
const NAMESPACE: &str = "bench";
/// How long the agents may take to serve everything.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The port every idle Service declares; nothing calls it.
const IDLE_SERVICE_PORT: u16 = 8080;

/// Where the applications listen.
#[derive(Clone, Copy, Debug)]
pub struct Apps {
    pub echo: SocketAddr,
    pub sink: SocketAddr,
}

/// A running control plane and its two agents.
pub struct Mesh {
    /// The client side's agent, then the server side's.
    pub client: Process,
    pub server: Process,
    /// The client workload's outbound listeners.
    pub echo: SocketAddr,
    pub sink: SocketAddr,
    /// Where the agents write the workloads' certificate files.
    pub cert_dir: PathBuf,
    pub workloads: usize,
    _cp: ControlPlane,
}

/// Ports chosen for the resources.
struct Ports {
    echo_service: u16,
    sink_service: u16,
    client_inbound: u16,
    /// Inbound ports on the server node: echo, sink, then the idle ones.
    server_inbound: Vec<u16>,
}

impl Mesh {
    /// Starts the control plane and both agents under `root` and waits
    /// until the client reaches both applications through them.
    pub async fn start(root: &Path, apps: Apps, idle: usize) -> anyhow::Result<Mesh> {
        let binary = ControlPlane::locate()?;
        let mut cp = ControlPlane::init(binary, &root.join("cp"))?;
        cp.set_serve_args(&["--auto-rotate", "false"]);
        cp.start().await.context("starting palisade-cp")?;
        let bundle = root.join("ca.pem");
        std::fs::write(&bundle, cp.bundle_pem()?).context("writing the trust bundle")?;

        let ports = choose_ports(
            idle,
            &[apps.echo.port(), apps.sink.port(), IDLE_SERVICE_PORT],
        )?;
        let mut admin = cp.admin().await?;
        apply(&mut admin, "bench", resources(&ports, apps))
            .await
            .context("applying the bench's resources")?;

        let cert_dir = root.join("certs");
        let agent = |node: &str, host: Ipv4Addr| -> anyhow::Result<Process> {
            let command = agent_command(root, node, host, cp.address()?, &bundle, &cert_dir)?;
            let log = root.join(format!("agent-{node}.log"));
            Process::spawn(&format!("agent {node}"), command, &log)
        };
        for node in ["client", "server"] {
            write_token(&mut admin, root, node).await?;
        }
        let mut mesh = Mesh {
            client: agent("client", CLIENT_HOST)?,
            server: agent("server", SERVER_HOST)?,
            echo: SocketAddr::new(CLIENT_HOST.into(), ports.echo_service),
            sink: SocketAddr::new(CLIENT_HOST.into(), ports.sink_service),
            cert_dir,
            workloads: idle + 2,
            _cp: cp,
        };
        mesh.wait_until_ready().await?;
        Ok(mesh)
    }

    /// Waits until the server agent listens for every workload and an echo
    /// comes back through the pair.
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let listening = format!("listening address={SERVER_HOST}:");
        loop {
            self.client.check_running()?;
            self.server.check_running()?;
            let listeners = self.server.log().matches(&listening).count();
            if listeners >= self.workloads && echoes(self.echo) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the agents were not ready in {READY_TIMEOUT:?} ({listeners} of {} \
                     inbound listeners); client log:\n{}",
                    self.workloads,
                    self.client.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether one byte sent to `address` comes back.
fn echoes(address: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};

    let attempt = || -> std::io::Result<()> {
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"x")?;
        stream.read_exact(&mut [0u8; 1])
    };
    attempt().is_ok()
}

fn agent_command(
    root: &Path,
    node: &str,
    host: Ipv4Addr,
    control_plane: SocketAddr,
    bundle: &Path,
    cert_dir: &Path,
) -> anyhow::Result<Command> {
    let mut command = Command::new(sibling("palisade-agent")?);
    command
        .arg("run")
        .args(["--control-plane", &control_plane.to_string()])
        .args(["--node", node])
        .arg("--join-token-file")
        .arg(root.join(format!("{node}.token")))
        .arg("--data-dir")
        .arg(root.join(format!("agent-{node}")))
        .arg("--trust-bundle")
        .arg(bundle)
        .args(["--bind-address", &host.to_string()])
        .args(["--outbound-address", &host.to_string()])
        .arg("--cert-dir")
        .arg(cert_dir);
    Ok(command)
}

async fn write_token(admin: &mut crate::cp::Admin, root: &Path, node: &str) -> anyhow::Result<()> {
    let request = CreateJoinTokenRequest {
        node: node.into(),
        ttl_seconds: 3600,
    };
    let token = admin
        .create_join_token(request)
        .await
        .with_context(|| format!("creating a join token for {node}"))?
        .into_inner()
        .token;
    std::fs::write(root.join(format!("{node}.token")), token).context("writing a join token")
}

/// Ports free now: the two services' on the client node (where the
/// outbound listeners go), inbound ones on each node; none of them is one
/// of `avoid` (the applications' ports, which a workload's inbound port
/// must differ from).
fn choose_ports(idle: usize, avoid: &[u16]) -> anyhow::Result<Ports> {
    let client = free_ports(CLIENT_HOST.into(), 3, avoid)?;
    Ok(Ports {
        echo_service: client[0],
        sink_service: client[1],
        client_inbound: client[2],
        server_inbound: free_ports(SERVER_HOST.into(), idle + 2, avoid)?,
    })
}

/// `count` distinct ports that nothing listens on at `ip`, none of them in
/// `avoid`.
fn free_ports(ip: IpAddr, count: usize, avoid: &[u16]) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..count + avoid.len())
        .map(|_| TcpListener::bind((ip, 0)))
        .collect::<Result<_, _>>()
        .with_context(|| format!("finding {count} free ports on {ip}"))?;
    let mut ports = Vec::with_capacity(count);
    for listener in &listeners {
        let port = listener.local_addr()?.port();
        if !avoid.contains(&port) && ports.len() < count {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Every document: the nodes, the services, their workloads and policies.
fn resources(ports: &Ports, apps: Apps) -> String {
    let mut yaml = String::new();
    for (node, host) in [("client", CLIENT_HOST), ("server", SERVER_HOST)] {
        yaml +=
            &format!("kind: Node\nmetadata: {{name: {node}}}\nspec: {{address: {host}}}\n---\n");
    }

    let client = spiffe_id(NAMESPACE, "client");
    yaml += &service(
        "client",
        IDLE_SERVICE_PORT,
        "client",
        IDLE_SERVICE_PORT,
        ports.client_inbound,
    );
    let loads = [
        ("echo", ports.echo_service, apps.echo.port()),
        ("sink", ports.sink_service, apps.sink.port()),
    ];
    for (index, (name, port, app)) in loads.into_iter().enumerate() {
        yaml += &service(name, port, "server", app, ports.server_inbound[index]);
        yaml += &policy(name, &format!("identities: [\"{client}\"]"));
    }

    for (index, inbound) in ports.server_inbound[2..].iter().enumerate() {
        let name = format!("svc-{index:04}");
        yaml += &service(
            &name,
            IDLE_SERVICE_PORT,
            "server",
            apps.echo.port(),
            *inbound,
        );
        let web = spiffe_id("frontend", "web");
        let caller = spiffe_id("frontend", &format!("caller-{index:04}"));
        let sources = format!(
            "identities: [\"{web}\", \"{caller}\"]}}, {{namespaces: [ops], ipBlocks: [10.0.0.0/8]"
        );
        yaml += &policy(&name, &sources);
    }
    yaml
}

/// A Service with one TCP port and its one workload, `<name>-1`.
fn service(name: &str, port: u16, node: &str, app_port: u16, inbound_port: u16) -> String {
    format!(
        "kind: Service\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n\
         spec: {{ports: [{{port: {port}, protocol: tcp}}]}}\n---\n\
         kind: Workload\nmetadata: {{name: {name}-1, namespace: {NAMESPACE}}}\n\
         spec: {{service: {name}, node: {node}, appPort: {app_port}, inboundPort: {inbound_port}}}\n---\n"
    )
}

/// An ALLOW policy for `target` with one rule whose first source is
/// `sources` (the inside of a flow mapping, more may follow).
fn policy(target: &str, sources: &str) -> String {
    format!(
        "kind: AuthorizationPolicy\nmetadata: {{name: {target}-callers, namespace: {NAMESPACE}}}\n\
         spec:\n  targetService: {target}\n  rules:\n    - from: [{{{sources}}}]\n---\n"
    )
}

fn spiffe_id(namespace: &str, service: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service}")
}
