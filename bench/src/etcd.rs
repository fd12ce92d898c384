//! etcd as the benchmarks' peer: found on PATH (or installed from Debian's
//! `etcd-server` package), started as a one-member cluster on loopback in a
//! temporary data directory, and killed when dropped. It keeps its default
//! durability: every committed write is fsynced to its log.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

/// The slice of etcd's KV API the benchmarks call.
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

pub use pb::kv_client::KvClient;

/// How long etcd may take to answer its first put.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest any one call may take before the benchmark gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors finding, installing or running etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd is not on PATH and `apt-get install -y etcd-server` failed: {0}")]
    Install(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("etcd exited while starting ({status}); log:\n{log}")]
    Exited { status: String, log: String },
    #[error("etcd did not answer within {START_TIMEOUT:?}")]
    Timeout,
    #[error("connecting to etcd: {0}")]
    Connect(#[from] tonic::transport::Error),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> EtcdError {
    move |source| EtcdError::Io { what, source }
}

/// A running single-member etcd.
pub struct Etcd {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Etcd {
    /// Finds the etcd binary, installing the Debian package if needed.
    pub fn locate(configured: Option<&Path>) -> Result<PathBuf, EtcdError> {
        if let Some(path) = configured {
            return Ok(path.to_owned());
        }
        if let Some(path) = on_path("etcd") {
            return Ok(path);
        }

        println!("etcd is not on PATH; running apt-get install -y etcd-server");
        let output = Command::new("apt-get")
            .args(["install", "-y", "etcd-server"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| EtcdError::Install(e.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(EtcdError::Install(stderr.trim().to_owned()));
        }
        on_path("etcd").ok_or_else(|| EtcdError::Install("no etcd binary after install".into()))
    }

    /// The first line of `etcd --version`, e.g. "etcd Version: 3.4.23".
    pub fn version(binary: &Path) -> String {
        Command::new(binary)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "etcd (unknown version)".into())
    }

    /// Starts etcd with its data and log under `root/etcd` and waits until
    /// it takes a put.
    pub async fn start(binary: &Path, root: &Path) -> Result<Self, EtcdError> {
        let dir = root.join("etcd");
        std::fs::create_dir_all(&dir).map_err(io("creating the etcd directory"))?;
        let [client_port, peer_port] = free_ports()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = dir.join("etcd.log");
        let log_file = std::fs::File::create(&log).map_err(io("creating etcd.log"))?;

        let child = Command::new(binary)
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(io("spawning etcd"))?;

        let mut etcd = Self {
            child,
            endpoint: client_url,
            log,
        };
        etcd.wait_until_ready().await?;
        Ok(etcd)
    }

    async fn wait_until_ready(&mut self) -> Result<(), EtcdError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(io("polling etcd"))? {
                return Err(EtcdError::Exited {
                    status: status.to_string(),
                    log: std::fs::read_to_string(&self.log).unwrap_or_default(),
                });
            }
            if self.answers().await {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(EtcdError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn answers(&self) -> bool {
        let Ok(mut client) = self.client().await else {
            return false;
        };
        let request = pb::PutRequest {
            key: b"bench/ready".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        };
        client.put(request).await.is_ok()
    }

    /// A new KV client on its own (plaintext) connection.
    pub async fn client(&self) -> Result<KvClient<Channel>, EtcdError> {
        let channel = Channel::from_shared(self.endpoint.clone())
            .expect("a loopback URL is a valid URI")
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .connect()
            .await?;
        Ok(KvClient::new(channel))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Two loopback ports that were free a moment ago, held together so that
/// they differ.
fn free_ports() -> Result<[u16; 2], EtcdError> {
    let first = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    let second = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    let port = |listener: &TcpListener| -> Result<u16, EtcdError> {
        let address = listener.local_addr().map_err(io("finding a free port"))?;
        Ok(address.port())
    };
    Ok([port(&first)?, port(&second)?])
}
