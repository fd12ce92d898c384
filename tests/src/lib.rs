//! Support for Palisade's end-to-end tests: real `palisade-cp` processes on
//! loopback, in temporary data directories, and real mTLS gRPC clients.
//!
//! Binaries are built on first use with the same cargo that runs the tests,
//! so `cargo test --workspace` is all a developer needs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use palisade_proto::admin::admin_client::AdminClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub use palisade_proto::admin as pb;

pub mod bed;
pub mod identity;
pub mod local;
pub mod mtls;
pub mod raw;
pub mod sds;
pub mod system;
pub mod x509;
pub mod xds;

/// The admin API client type.
pub type Admin = AdminClient<Channel>;

/// How long a control plane may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags that tests' `serve` gets unless a test passes them itself.
const SERVE_DEFAULTS: [(&str, &str); 2] = [
    ("--drain-timeout-secs", "5"),
    ("--jwks-listen", "127.0.0.1:0"),
];

fn serve_defaults(extra: &[&str]) -> Vec<&'static str> {
    SERVE_DEFAULTS
        .iter()
        .filter(|(flag, _)| !extra.contains(flag))
        .flat_map(|(flag, value)| [*flag, *value])
        .collect()
}

/// The path of a workspace binary. The first call in a test process builds
/// every workspace binary in one cargo invocation, so that all tests share
/// one build whatever order they run in.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--bins"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the workspace binaries failed");
    });
    target_dir().join(name)
}

pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_owned()
}

/// A client's TLS material.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// One control plane: its data directory and, while running, its process.
pub struct ControlPlane {
    pub root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub master_key: PathBuf,
    pub trust_domain: String,
    child: Option<Child>,
    address: Option<SocketAddr>,
}

impl ControlPlane {
    /// Runs `palisade-cp init` into a new temporary directory.
    pub fn init(trust_domain: &str) -> anyhow::Result<Self> {
        Self::init_with(trust_domain, &[])
    }

    /// Runs `palisade-cp init` with extra flags.
    pub fn init_with(trust_domain: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let data_dir = root.path().join("data");
        let master_key = root.path().join("master.key");

        let output = Command::new(binary("palisade-cp"))
            .arg("init")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--trust-domain")
            .arg(trust_domain)
            .arg("--master-key-file")
            .arg(&master_key)
            .args(extra)
            .output()?;
        if !output.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&output.stderr));
        }

        Ok(Self {
            root,
            data_dir,
            master_key,
            trust_domain: trust_domain.to_owned(),
            child: None,
            address: None,
        })
    }

    /// Starts `palisade-cp serve` on a free loopback port and waits until its
    /// health service answers SERVING.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.start_with(&[]).await
    }

    /// Starts with extra `serve` flags; those it names replace the harness's
    /// defaults (a 5 s drain, the JWKS on a free loopback port).
    pub async fn start_with(&mut self, extra: &[&str]) -> anyhow::Result<()> {
        self.serve("127.0.0.1:0", extra).await
    }

    /// Starts again on `address`, where it listened before, so that
    /// clients given that address find it.
    pub async fn start_on(&mut self, address: SocketAddr) -> anyhow::Result<()> {
        self.start_on_with(address, &[]).await
    }

    /// Starts again on `address` with extra `serve` flags.
    pub async fn start_on_with(
        &mut self,
        address: SocketAddr,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        self.serve(&address.to_string(), extra).await
    }

    async fn serve(&mut self, listen: &str, extra: &[&str]) -> anyhow::Result<()> {
        let addr_file = self.data_dir.join("admin.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("cp.log"))?;

        let child = Command::new(binary("palisade-cp"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--master-key-file")
            .arg(&self.master_key)
            .args(["--listen", listen])
            .args(serve_defaults(extra))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);

        let address = self.wait_for_address(&addr_file).await?;
        self.address = Some(address);
        Ok(())
    }

    async fn wait_for_address(&mut self, addr_file: &Path) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "palisade-cp exited with {status} while starting:\n{}",
                    self.log()
                );
            }
            if let Ok(text) = std::fs::read_to_string(addr_file)
                && let Ok(address) = text.trim().parse::<SocketAddr>()
                && self.health(address).await
            {
                return Ok(address);
            }
            if Instant::now() > deadline {
                bail!("palisade-cp did not start in time:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn health(&self, address: SocketAddr) -> bool {
        let Ok(channel) = self.channel_to(address, &self.admin_credentials()).await else {
            return false;
        };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest {
            service: "palisade.admin.v1.Admin".into(),
        };
        matches!(health.check(request).await, Ok(r) if r.get_ref().status == 1)
    }

    /// The address the admin API listens on.
    pub fn address(&self) -> SocketAddr {
        self.address.expect("control plane is running")
    }

    /// The control plane's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("cp.log")).unwrap_or_default()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.send_sigterm()?;
        self.wait_for_exit()
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_sigterm(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("not running")?;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        Ok(())
    }

    /// Waits for the process to exit, for at most 30 s, and reaps it.
    pub fn wait_for_exit(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("palisade-cp did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first admin's credentials, written by init.
    pub fn admin_credentials(&self) -> Credentials {
        let admin = self.data_dir.join("admin");
        Credentials {
            ca: admin.join("ca.pem"),
            cert: Some(admin.join("admin.pem")),
            key: Some(admin.join("admin-key.pem")),
        }
    }

    /// Issues another admin certificate; the control plane must be stopped.
    pub fn issue_admin(&self, name: &str) -> anyhow::Result<Credentials> {
        self.issue_admin_with(name, &[])
    }

    /// Issues another admin certificate with extra `admin-cert` flags.
    pub fn issue_admin_with(&self, name: &str, extra: &[&str]) -> anyhow::Result<Credentials> {
        let out = self.root.path().join(format!("creds-{name}"));
        let output = Command::new(binary("palisade-cp"))
            .arg("admin-cert")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--master-key-file")
            .arg(&self.master_key)
            .args(["--name", name])
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()?;
        if !output.status.success() {
            bail!(
                "admin-cert failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(Credentials {
            ca: out.join("ca.pem"),
            cert: Some(out.join(format!("{name}.pem"))),
            key: Some(out.join(format!("{name}-key.pem"))),
        })
    }

    /// Writes a `palisadectl` config file for the first admin and returns its
    /// path.
    pub fn ctl_config(&self) -> PathBuf {
        let credentials = self.admin_credentials();
        let path = self.root.path().join("palisadectl.toml");
        let text = format!(
            "server = \"https://{}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
            self.address(),
            credentials.ca,
            credentials.cert.expect("admin certificate"),
            credentials.key.expect("admin key")
        );
        std::fs::write(&path, text).expect("writing the palisadectl config");
        path
    }

    /// An admin API client for the first admin.
    pub async fn admin(&self) -> anyhow::Result<AdminClient<Channel>> {
        self.client(&self.admin_credentials()).await
    }

    /// An admin API client with the given credentials.
    pub async fn client(&self, credentials: &Credentials) -> anyhow::Result<AdminClient<Channel>> {
        let channel = self.channel_to(self.address(), credentials).await?;
        Ok(AdminClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
    }

    /// A raw channel to the admin address.
    pub async fn channel(&self, credentials: &Credentials) -> anyhow::Result<Channel> {
        self.channel_to(self.address(), credentials).await
    }

    async fn channel_to(
        &self,
        address: SocketAddr,
        credentials: &Credentials,
    ) -> anyhow::Result<Channel> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca = std::fs::read_to_string(&credentials.ca)?;
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        if let (Some(cert), Some(key)) = (&credentials.cert, &credentials.key) {
            let identity = Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
            tls = tls.identity(identity);
        }

        let channel = Channel::from_shared(format!("https://{address}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(channel)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `palisadectl` with a config file from [`ControlPlane::ctl_config`].
pub fn palisadectl(config: &Path, args: &[&str]) -> Output {
    Command::new(binary("palisadectl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PALISADECTL_SERVER")
        .output()
        .expect("running palisadectl")
}

/// Applies YAML text as the client's identity.
pub async fn apply(
    client: &mut AdminClient<Channel>,
    content: &str,
) -> Result<pb::ApplyResponse, tonic::Status> {
    let request = pb::ApplyRequest {
        source: "test".into(),
        content: content.into(),
        dry_run: false,
    };
    client.apply(request).await.map(tonic::Response::into_inner)
}

/// Every resource of `kind` in every namespace.
pub async fn list_all(
    client: &mut AdminClient<Channel>,
    kind: &str,
) -> Result<Vec<pb::Resource>, tonic::Status> {
    let request = pb::ListRequest {
        kind: kind.into(),
        limit: 10_000,
        ..Default::default()
    };
    Ok(client.list(request).await?.into_inner().resources)
}

/// The store's current revision, as a List reports it.
pub async fn revision(client: &mut AdminClient<Channel>) -> Result<u64, tonic::Status> {
    let request = pb::ListRequest {
        kind: "Node".into(),
        limit: 1,
        ..Default::default()
    };
    Ok(client.list(request).await?.into_inner().revision)
}

/// The newest entry of the audit log.
pub async fn last_audit(client: &mut AdminClient<Channel>) -> pb::AuditEntry {
    let probe = pb::ListAuditRequest {
        after_sequence: u64::MAX - 1,
        ..Default::default()
    };
    let head = client
        .list_audit(probe)
        .await
        .expect("listing the audit log")
        .into_inner()
        .head_sequence;
    let request = pb::ListAuditRequest {
        after_sequence: head - 1,
        limit: 1,
        ..Default::default()
    };
    let mut entries = client
        .list_audit(request)
        .await
        .expect("listing the audit log")
        .into_inner()
        .entries;
    entries.pop().expect("an audit entry")
}
