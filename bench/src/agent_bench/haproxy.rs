//! HAProxy as the agents' peer: two processes doing the agent pair's job
//! with the same certificates. The client side takes plain TCP on its own
//! loopback address and opens mTLS to the server side, which terminates
//! it and forwards to the same applications. Both sides speak TLS 1.3
//! only, with the cipher suite and key exchange group the agents
//! negotiate (TLS_AES_128_GCM_SHA256, X25519), require and verify the
//! peer's certificate against the same trust bundle, and never resume a
//! session, so every connection is a full handshake, as with the agents.
//! Unlike the agents, HAProxy checks no SPIFFE ID and no policy.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::process::Process;
use super::setup::Apps;

/// The client side's address.
const CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 31);
/// The server side's address.
const SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 32);
/// The ports both sides listen on: echo, then sink.
const PORTS: [u16; 2] = [15001, 15002];
/// How long a side may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings both sides share.
const GLOBAL: &str = "\
global
    maxconn 8000
    nbthread 2
    tune.ssl.cachesize 0
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
    ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256
    ssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
";

/// The running pair.
pub struct HaproxyPair {
    pub client: Process,
    pub server: Process,
    /// The client side's listeners.
    pub echo: SocketAddr,
    pub sink: SocketAddr,
    pub version: String,
}

/// Where a workload's certificate files are (the agent writes them).
pub struct WorkloadFiles {
    /// Certificate chain, then key, in one file, as HAProxy takes them.
    pub combined: PathBuf,
    pub bundle: PathBuf,
}

impl WorkloadFiles {
    /// Reads the files the agents wrote for `workload` in namespace
    /// `bench` under `cert_dir` and writes the combined file under `root`.
    pub fn prepare(cert_dir: &Path, workload: &str, root: &Path) -> anyhow::Result<Self> {
        let dir = cert_dir.join("bench").join(workload);
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let combined = root.join(format!("{workload}.pem"));
        let contents = format!("{}\n{}", read("svid.pem")?, read("svid-key.pem")?);
        std::fs::write(&combined, contents).context("writing a certificate for HAProxy")?;
        Ok(Self {
            combined,
            bundle: dir.join("bundle.pem"),
        })
    }
}

impl HaproxyPair {
    /// Starts both sides; `client` and `servers` (echo, sink) are the
    /// certificates each side presents.
    pub fn start(
        binary: &Path,
        root: &Path,
        apps: Apps,
        client: &WorkloadFiles,
        servers: [&WorkloadFiles; 2],
    ) -> anyhow::Result<Self> {
        let client_config = client_side(client);
        let server_config = server_side(servers, apps);
        let version = version(binary);
        let client = spawn(binary, root, "client", &client_config)?;
        let server = spawn(binary, root, "server", &server_config)?;

        let mut pair = Self {
            client,
            server,
            echo: SocketAddr::new(CLIENT_SIDE.into(), PORTS[0]),
            sink: SocketAddr::new(CLIENT_SIDE.into(), PORTS[1]),
            version,
        };
        pair.wait_until_listening()?;
        Ok(pair)
    }

    fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let addresses: Vec<SocketAddr> = [CLIENT_SIDE, SERVER_SIDE]
            .iter()
            .flat_map(|ip| PORTS.map(|port| SocketAddr::new((*ip).into(), port)))
            .collect();
        loop {
            self.client.check_running()?;
            self.server.check_running()?;
            let listening = addresses
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok());
            if listening {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("haproxy did not listen within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn client_side(certificate: &WorkloadFiles) -> String {
    let mut config = GLOBAL.to_owned();
    for (name, port) in ["echo", "sink"].iter().zip(PORTS) {
        config += &format!(
            "\nlisten {name}\n    bind {CLIENT_SIDE}:{port}\n    \
             server {name} {SERVER_SIDE}:{port} ssl crt {} ca-file {} verify required \
             no-ssl-reuse\n",
            certificate.combined.display(),
            certificate.bundle.display()
        );
    }
    config
}

fn server_side(certificates: [&WorkloadFiles; 2], apps: Apps) -> String {
    let mut config = GLOBAL.to_owned();
    let names = ["echo", "sink"];
    let targets = [apps.echo, apps.sink];
    for index in 0..2 {
        let certificate = certificates[index];
        config += &format!(
            "\nlisten {name}\n    bind {SERVER_SIDE}:{port} ssl crt {} ca-file {} \
             verify required curves X25519\n    server app {}\n",
            certificate.combined.display(),
            certificate.bundle.display(),
            targets[index],
            name = names[index],
            port = PORTS[index],
        );
    }
    config
}

fn spawn(binary: &Path, root: &Path, side: &str, config: &str) -> anyhow::Result<Process> {
    let path = root.join(format!("haproxy-{side}.cfg"));
    std::fs::write(&path, config).context("writing an HAProxy configuration")?;
    let check = Command::new(binary)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()?;
    if !check.status.success() {
        bail!(
            "haproxy rejects {}: {}",
            path.display(),
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }

    let mut command = Command::new(binary);
    command.arg("-db").arg("-f").arg(&path);
    let log = root.join(format!("haproxy-{side}.log"));
    Process::spawn(&format!("haproxy {side}"), command, &log)
}

/// Finds haproxy, installing the Debian package if needed.
pub fn locate(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = configured {
        return Ok(path.to_owned());
    }
    if let Some(path) = on_path("haproxy") {
        return Ok(path);
    }

    println!("haproxy is not on PATH; running apt-get install -y haproxy");
    let output = Command::new("apt-get")
        .args(["install", "-y", "haproxy"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .context("running apt-get")?;
    if !output.status.success() {
        bail!(
            "apt-get install -y haproxy failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // The package starts a system service; the bench runs its own.
    let _ = Command::new("systemctl").args(["stop", "haproxy"]).output();
    on_path("haproxy").context("no haproxy binary after installing it")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The first line of `haproxy -v`.
fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "HAProxy (unknown version)".into())
}
