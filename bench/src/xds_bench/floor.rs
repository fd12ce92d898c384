//! The floor under a reconnect storm: as many clients as the fleet has
//! agents resume bare TLS 1.3 sessions at once against a minimal server in
//! a process of its own, with no HTTP/2, gRPC or xDS above them, and each
//! exchanges one byte. Both sides do what every agent reconnecting to a
//! TLS-resuming control plane must: a TCP connection, an X25519 exchange
//! on each side, the ticket's decryption and a new ticket. What the storm
//! costs beyond this on the same machine is Palisade's own.
//!
//! The server is this binary again (`palisade-bench tls-floor-server`), so
//! that its file descriptors, threads and CPU time are its own, as the
//! control plane's are.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::agent_bench::process::cpu_of;
use crate::load::Latencies;

/// Clients priming their sessions at once, before the clock starts.
const PRIME_CONCURRENCY: usize = 64;
/// The name in the server's certificate.
const SERVER_NAME: &str = "floor.palisade.invalid";

/// What the bare resumptions cost.
#[derive(Debug, Default)]
pub struct Floor {
    pub clients: usize,
    /// From the release until the last client had its byte back.
    pub all_done: Duration,
    /// From the release to each client's byte.
    pub done: Latencies,
    /// Connections the server resumed rather than handshook in full.
    pub resumed: usize,
    /// CPU time from the release until the last byte: the server's, and
    /// the clients' (this process).
    pub server_cpu: Duration,
    pub client_cpu: Duration,
}

/// Runs `clients` resumptions at once in `dir`, a directory of its own.
pub async fn run(clients: usize, dir: &Path, timeout: Duration) -> anyhow::Result<Floor> {
    // Certificates, the server, and one TLS client per simulated agent.
    let material = Material::create(dir)?;
    let mut server = spawn_server(dir).await?;
    let configs: Vec<Arc<ClientConfig>> = (0..clients)
        .map(|_| material.client_config())
        .collect::<anyhow::Result<_>>()?;

    // Every client holds a ticket before the clock starts.
    prime(&configs, server.address).await?;

    // All at once.
    let (release, released) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for config in configs {
        let mut released = released.clone();
        let address = server.address;
        tasks.spawn(async move {
            let _ = released.wait_for(|go| *go).await;
            exchange(config, address).await
        });
    }
    tokio::task::yield_now().await;
    let cpu_before = (cpu_of(server.pid)?, cpu_of(std::process::id())?);
    let started = Instant::now();
    release.send_replace(true);
    let mut floor = Floor {
        clients,
        ..Floor::default()
    };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while let Some(joined) = tokio::select! {
        joined = tasks.join_next() => joined,
        () = &mut deadline => bail!("the bare resumptions took longer than {timeout:?}"),
    } {
        let kind = joined.context("a floor client panicked")??;
        floor.done.record(started.elapsed());
        floor.resumed += usize::from(kind == Some(HandshakeKind::Resumed));
    }
    floor.all_done = started.elapsed();
    let cpu_after = (cpu_of(server.pid)?, cpu_of(std::process::id())?);
    floor.server_cpu = cpu_after.0.saturating_sub(cpu_before.0);
    floor.client_cpu = cpu_after.1.saturating_sub(cpu_before.1);

    server.child.kill().await.ok();
    println!(
        "bare TLS resumptions: {clients} clients done {:.2} s after release ({} resumed)",
        floor.all_done.as_secs_f64(),
        floor.resumed
    );
    Ok(floor)
}

/// Serves the floor's TLS endpoint from the certificates in `dir`, printing
/// its address, until killed.
pub async fn serve(dir: &Path) -> anyhow::Result<()> {
    let config = Material::load(dir)?.server_config()?;
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);

    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut byte = [0u8; 1];
            if tls.read_exact(&mut byte).await.is_ok() && tls.write_all(&byte).await.is_ok() {
                let _ = tls.read(&mut byte).await;
            }
        });
    }
}

/// One connection: handshake, one byte each way, close. Gives how the
/// handshake went.
async fn exchange(
    config: Arc<ClientConfig>,
    address: SocketAddr,
) -> anyhow::Result<Option<HandshakeKind>> {
    let tcp = TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(SERVER_NAME)?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;

    tls.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await?;
    let kind = tls.get_ref().1.handshake_kind();
    tls.shutdown().await.ok();
    Ok(kind)
}

/// A full handshake for every client, so each holds a ticket.
async fn prime(configs: &[Arc<ClientConfig>], address: SocketAddr) -> anyhow::Result<()> {
    let gate = Arc::new(Semaphore::new(PRIME_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for config in configs {
        let permit = gate.clone().acquire_owned().await?;
        let config = config.clone();
        tasks.spawn(async move {
            let _permit = permit;
            exchange(config, address).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a floor client panicked")??;
    }
    Ok(())
}

/// The running server process.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    address: SocketAddr,
}

async fn spawn_server(dir: &Path) -> anyhow::Result<Server> {
    let binary = std::env::current_exe().context("locating palisade-bench")?;
    let mut child = tokio::process::Command::new(binary)
        .arg("tls-floor-server")
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the floor's TLS server")?;
    let pid = child.id().context("the floor's TLS server has no pid")?;

    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await?;
    let address = line
        .trim()
        .parse()
        .with_context(|| format!("the floor's TLS server said {line:?}"))?;
    Ok(Server {
        child,
        pid,
        address,
    })
}

/// A CA, the server's certificate and a client certificate, as DER files.
struct Material {
    ca: CertificateDer<'static>,
    server: (CertificateDer<'static>, Vec<u8>),
    client: (CertificateDer<'static>, Vec<u8>),
}

const FILES: [&str; 5] = [
    "ca.der",
    "server.der",
    "server.key",
    "client.der",
    "client.key",
];

impl Material {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key)?.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |san: SanType| -> anyhow::Result<(CertificateDer<'static>, Vec<u8>)> {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.subject_alt_names.push(san);
            let certificate = params.signed_by(&key, &issuer)?;
            Ok((certificate.der().clone(), key.serialize_der()))
        };
        let material = Self {
            ca,
            server: leaf(SanType::DnsName(SERVER_NAME.try_into()?))?,
            client: leaf(SanType::URI("spiffe://floor.invalid/node/n".try_into()?))?,
        };

        let contents: [&[u8]; 5] = [
            &material.ca,
            &material.server.0,
            &material.server.1,
            &material.client.0,
            &material.client.1,
        ];
        for (name, bytes) in FILES.iter().zip(contents) {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(material)
    }

    fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path: PathBuf = dir.join(name);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(Self {
            ca: read(FILES[0])?.into(),
            server: (read(FILES[1])?.into(), read(FILES[2])?),
            client: (read(FILES[3])?.into(), read(FILES[4])?),
        })
    }

    fn roots(&self) -> anyhow::Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    /// TLS 1.3, client certificates verified, resumption by one ticket per
    /// connection: what the control plane's listener does.
    fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let verifier = rustls::server::WebPkiClientVerifier::builder(self.roots()?).build()?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server.1.clone()));
        let mut config = ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server.0.clone()], key)?;
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        config.send_tls13_tickets = 1;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Arc::new(config))
    }

    /// A client of its own, with its own session memory, as each agent has.
    fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.client.1.clone()));
        let config = ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(vec![self.client.0.clone()], key)?;
        Ok(Arc::new(config))
    }
}
