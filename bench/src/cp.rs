//! One `palisade-cp` process for the benchmarks: a fresh data directory made
//! with `palisade-cp init`, `serve` on a loopback port (a new one, or the
//! same one again after a restart), mTLS clients with the first admin's
//! credentials, and the process's memory as the kernel counts it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use palisade_proto::admin::ApplyRequest;
use palisade_proto::admin::admin_client::AdminClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The binary this module runs.
const BINARY: &str = "palisade-cp";
/// The trust domain of every control plane the benchmarks start.
pub const TRUST_DOMAIN: &str = "bench.example";
/// The server certificate's name, as clients verify it.
pub const SERVER_NAME: &str = "localhost";
/// Where a server listens unless told to keep its address.
const ANY_LOOPBACK_PORT: &str = "127.0.0.1:0";
/// The service whose health means the admin API is ready.
const ADMIN_SERVICE: &str = "palisade.admin.v1.Admin";
/// How long a start or a stop may take.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a starting server is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// Responses as large as the server sends (a List of 10,000 resources).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The longest any one call may take before the benchmark gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An admin API client.
pub type Admin = AdminClient<Channel>;

/// Errors running the control plane.
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error("{0} not found; build it first with `cargo build --release --workspace --bins`")]
    MissingBinary(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("palisade-cp init failed: {0}")]
    Init(String),
    #[error("palisade-cp exited while starting ({status}); log:\n{log}")]
    Exited { status: String, log: String },
    #[error("palisade-cp did not {0} within {PROCESS_TIMEOUT:?}")]
    Timeout(&'static str),
    #[error("palisade-cp is not running")]
    NotRunning,
    #[error("connecting to the admin API: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("/proc/{0}/status lacks VmRSS or VmHWM")]
    Memory(u32),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CpError {
    let what = what.into();
    move |source| CpError::Io { what, source }
}

/// The first admin's TLS material, read once.
struct Credentials {
    ca: String,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident now (VmRSS).
    pub rss_kib: u64,
    /// The most ever resident (VmHWM).
    pub peak_kib: u64,
}

/// A control plane with its own temporary data directory.
pub struct ControlPlane {
    binary: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    master_key: PathBuf,
    credentials: Credentials,
    /// `serve` flags beyond the ones every start passes.
    serve_args: Vec<String>,
    /// The `--listen` address of the next start.
    listen: String,
    child: Option<Child>,
    address: Option<SocketAddr>,
}

impl ControlPlane {
    /// Finds `palisade-cp` next to the running executable.
    pub fn locate() -> Result<PathBuf, CpError> {
        let exe = std::env::current_exe().map_err(io("finding the bench executable"))?;
        let binary = exe.with_file_name(BINARY);
        match binary.is_file() {
            true => Ok(binary),
            false => Err(CpError::MissingBinary(binary)),
        }
    }

    /// Runs `palisade-cp init` into `root`, which it creates.
    pub fn init(binary: PathBuf, root: &Path) -> Result<Self, CpError> {
        let root = root.to_owned();
        let data_dir = root.join("data");
        let master_key = root.join("master.key");
        std::fs::create_dir_all(&root).map_err(io("creating the control plane directory"))?;

        let output = Command::new(&binary)
            .arg("init")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--trust-domain", TRUST_DOMAIN])
            .arg("--master-key-file")
            .arg(&master_key)
            .output()
            .map_err(io("running palisade-cp init"))?;
        if !output.status.success() {
            return Err(CpError::Init(
                String::from_utf8_lossy(&output.stderr).into(),
            ));
        }

        let credentials = read_credentials(&data_dir.join("admin"))?;
        Ok(Self {
            binary,
            root,
            data_dir,
            master_key,
            credentials,
            serve_args: Vec::new(),
            listen: ANY_LOOPBACK_PORT.into(),
            child: None,
            address: None,
        })
    }

    /// Passes `args` to every later `serve`, after the flags every start
    /// passes.
    pub fn set_serve_args(&mut self, args: &[&str]) {
        self.serve_args = args.iter().map(|a| (*a).to_owned()).collect();
    }

    /// Makes every later start listen on the address the server has now, so
    /// that clients can reconnect to the same address after a restart.
    pub fn keep_address(&mut self) -> Result<SocketAddr, CpError> {
        let address = self.address()?;
        self.listen = address.to_string();
        Ok(address)
    }

    /// Starts `palisade-cp serve` and returns how long it took, from spawn
    /// until the health service answered SERVING for the admin API.
    pub async fn start(&mut self) -> Result<Duration, CpError> {
        let addr_file = self.data_dir.join("admin.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("opening cp.log"))?;

        let started = Instant::now();
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--master-key-file")
            .arg(&self.master_key)
            .args(["--listen", &self.listen, "--jwks-listen", "127.0.0.1:0"])
            .args(&self.serve_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("spawning palisade-cp serve"))?;
        self.child = Some(child);

        let address = self.wait_until_serving(&addr_file, started).await?;
        self.address = Some(address);
        Ok(started.elapsed())
    }

    async fn wait_until_serving(
        &mut self,
        addr_file: &Path,
        started: Instant,
    ) -> Result<SocketAddr, CpError> {
        loop {
            self.check_alive()?;
            if let Some(address) = read_address(addr_file)
                && self.is_serving(address).await
            {
                return Ok(address);
            }
            if started.elapsed() > PROCESS_TIMEOUT {
                return Err(CpError::Timeout("start"));
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    fn check_alive(&mut self) -> Result<(), CpError> {
        let child = self.child.as_mut().ok_or(CpError::NotRunning)?;
        match child.try_wait().map_err(io("polling palisade-cp"))? {
            None => Ok(()),
            Some(status) => Err(CpError::Exited {
                status: status.to_string(),
                log: std::fs::read_to_string(self.log_path()).unwrap_or_default(),
            }),
        }
    }

    async fn is_serving(&self, address: SocketAddr) -> bool {
        let Ok(channel) = self.connect(address).await else {
            return false;
        };
        let request = HealthCheckRequest {
            service: ADMIN_SERVICE.into(),
        };
        let reply = HealthClient::new(channel).check(request).await;
        matches!(reply, Ok(r) if r.get_ref().status == 1)
    }

    /// Stops the server with SIGTERM, letting it drain and flush.
    pub async fn stop(&mut self) -> Result<(), CpError> {
        let mut child = self.child.take().ok_or(CpError::NotRunning)?;
        self.address = None;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(io("sending SIGTERM"))?;

        let deadline = Instant::now() + PROCESS_TIMEOUT;
        while Instant::now() < deadline {
            if child
                .try_wait()
                .map_err(io("waiting for palisade-cp"))?
                .is_some()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(CpError::Timeout("stop"))
    }

    /// The address the running server listens on.
    pub fn address(&self) -> Result<SocketAddr, CpError> {
        self.address.ok_or(CpError::NotRunning)
    }

    /// The trust bundle the server publishes, as PEM.
    pub fn bundle_pem(&self) -> Result<String, CpError> {
        let path = self.data_dir.join("ca.pem");
        std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))
    }

    /// The server's resident memory now and at its peak.
    /// The running process's id.
    pub fn pid(&self) -> Result<u32, CpError> {
        Ok(self.child.as_ref().ok_or(CpError::NotRunning)?.id())
    }

    pub fn memory(&self) -> Result<Memory, CpError> {
        let pid = self.child.as_ref().ok_or(CpError::NotRunning)?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(io(format!("reading /proc/{pid}/status")))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss_kib), Some(peak_kib)) => Ok(Memory { rss_kib, peak_kib }),
            _ => Err(CpError::Memory(pid)),
        }
    }

    /// A new admin API client on its own connection.
    pub async fn admin(&self) -> Result<Admin, CpError> {
        let address = self.address.ok_or(CpError::NotRunning)?;
        let channel = self.connect(address).await?;
        Ok(AdminClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES))
    }

    /// An endpoint of the running server with `tls`, without a call
    /// deadline (streams last as long as they like); connecting is up to
    /// the caller.
    pub fn endpoint(&self, tls: ClientTlsConfig) -> Result<Endpoint, CpError> {
        let address = self.address()?;
        let endpoint = Channel::from_shared(format!("https://{address}"))
            .expect("a socket address makes a valid URI")
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(10));
        Ok(endpoint)
    }

    async fn connect(&self, address: SocketAddr) -> Result<Channel, CpError> {
        let credentials = &self.credentials;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&credentials.ca))
            .identity(Identity::from_pem(&credentials.cert, &credentials.key))
            .domain_name(SERVER_NAME);

        let channel = Channel::from_shared(format!("https://{address}"))
            .expect("a socket address makes a valid URI")
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .connect()
            .await?;
        Ok(channel)
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("cp.log")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Applies `content` (documents) in one call, named `source` in the audit
/// log; returns the revision it was written at.
pub async fn apply(admin: &mut Admin, source: &str, content: String) -> Result<u64, tonic::Status> {
    let request = ApplyRequest {
        source: source.into(),
        content,
        dry_run: false,
    };
    Ok(admin.apply(request).await?.into_inner().revision)
}

fn read_credentials(admin: &Path) -> Result<Credentials, CpError> {
    let read = |name: &str| {
        let path = admin.join(name);
        std::fs::read(&path).map_err(io(format!("reading {}", path.display())))
    };
    Ok(Credentials {
        ca: String::from_utf8_lossy(&read("ca.pem")?).into_owned(),
        cert: read("admin.pem")?,
        key: read("admin-key.pem")?,
    })
}

fn read_address(addr_file: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(addr_file).ok()?.trim().parse().ok()
}
