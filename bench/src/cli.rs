//! The command line: one subcommand per benchmark suite.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Palisade's load generators.
#[derive(Debug, Parser)]
#[command(name = "palisade-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The store and admin API: durable applies against etcd, a large apply,
    /// Get and List latency, and cold start with a large store.
    Store(StoreArgs),
    /// The identity API: the CA's raw signing rate, durable workload
    /// certificates from concurrent clients, and issuance latency at a
    /// fixed rate.
    Identity(IdentityArgs),
    /// xDS: a fleet of simulated agents; a push to all of them, a push to a
    /// few, memory per stream, and a reconnect storm.
    Xds(XdsArgs),
    /// The agent's data path: latency, bulk throughput and new mTLS
    /// connections through an outbound and inbound agent pair, beside
    /// direct TCP and an HAProxy mTLS pair, and the agents' memory.
    Agent(AgentArgs),
    /// The bare TLS server the xDS benchmarks' storm floor runs against.
    #[command(hide = true)]
    TlsFloorServer {
        /// Where its certificates are.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Settings of the store benchmarks. Every load stops at its count or its
/// time limit, whichever comes first.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// Concurrent clients of the apply loads, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Longest time each apply load runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub apply_secs: u64,
    /// Most applies (or etcd puts) each load sends.
    #[arg(long, default_value_t = 250_000)]
    pub apply_max: u64,
    /// Documents in the one-file apply, and resources in the timed List.
    #[arg(long, default_value_t = 10_000)]
    pub file_docs: usize,
    /// Get calls timed.
    #[arg(long, default_value_t = 2_000)]
    pub gets: usize,
    /// List calls timed.
    #[arg(long, default_value_t = 50)]
    pub lists: usize,
    /// Resources stored before the cold starts are timed.
    #[arg(long, default_value_t = 100_000)]
    pub stored: usize,
    /// Cold starts timed.
    #[arg(long, default_value_t = 3)]
    pub cold_starts: usize,
    /// The etcd binary; by default `etcd` on PATH, installed with
    /// `apt-get install -y etcd-server` if missing.
    #[arg(long)]
    pub etcd: Option<PathBuf>,
    /// Leave etcd out.
    #[arg(long)]
    pub skip_etcd: bool,
}

impl StoreArgs {
    pub fn apply_time(&self) -> Duration {
        Duration::from_secs(self.apply_secs)
    }
}

/// Settings of the identity benchmarks.
#[derive(Clone, Debug, Args)]
pub struct IdentityArgs {
    /// How long each raw signing loop runs, in seconds.
    #[arg(long, default_value_t = 5)]
    pub raw_secs: u64,
    /// Threads of the raw signing loops, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub raw_threads: Vec<usize>,
    /// Concurrent clients of the SignWorkload loads, comma-separated; each
    /// is a node of its own.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub clients: Vec<usize>,
    /// Longest time each SignWorkload load runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub sign_secs: u64,
    /// Most calls each SignWorkload load sends.
    #[arg(long, default_value_t = 250_000)]
    pub sign_max: u64,
    /// CSRs made beforehand per client and reused round-robin.
    #[arg(long, default_value_t = 16)]
    pub csr_pool: usize,
    /// Calls per second of the open-loop load.
    #[arg(long, default_value_t = 1_000.0)]
    pub paced_rate: f64,
    /// How long the open-loop load sends, in seconds.
    #[arg(long, default_value_t = 10)]
    pub paced_secs: u64,
    /// Lifetime of the workload certificates, in seconds (the server's
    /// `--workload-ttl-secs`, and the raw loop's).
    #[arg(long, default_value_t = 3600)]
    pub workload_ttl_secs: u64,
}

impl IdentityArgs {
    /// `--raw-secs` as a duration.
    pub fn raw_time(&self) -> Duration {
        Duration::from_secs(self.raw_secs)
    }

    /// `--sign-secs` as a duration.
    pub fn sign_time(&self) -> Duration {
        Duration::from_secs(self.sign_secs)
    }

    /// `--paced-secs` as a duration.
    pub fn paced_time(&self) -> Duration {
        Duration::from_secs(self.paced_secs)
    }

    /// `--workload-ttl-secs` as a duration.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.workload_ttl_secs)
    }
}

/// Settings of the xDS benchmarks. Each fleet size runs every step against
/// a control plane of its own.
#[derive(Clone, Debug, Args)]
pub struct XdsArgs {
    /// Simulated agents, one run per number, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub agents: Vec<usize>,
    /// Attestations (and first connections) in flight while the fleet is
    /// set up.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
    /// Policy changes timed in the fleet push.
    #[arg(long, default_value_t = 3)]
    pub pushes: usize,
    /// Streams connected at the first memory reading (the second is with
    /// every agent connected).
    #[arg(long, default_value_t = 1_000)]
    pub memory_checkpoint: usize,
    /// Seconds the fleet idles before each memory reading.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// Longest wait for any one step to complete, in seconds.
    #[arg(long, default_value_t = 120)]
    pub step_timeout_secs: u64,
    /// Leave out the reconnect storm (and its floor).
    #[arg(long)]
    pub skip_storm: bool,
    /// The control plane's `--log-level`, e.g.
    /// `info,palisade_control_plane::xds::feed=debug` to log how long each
    /// change took to compile.
    #[arg(long, default_value = "info")]
    pub cp_log_level: String,
    /// Keep each run's temporary directory (data, `cp.log`) and print
    /// where it is.
    #[arg(long)]
    pub keep_temp: bool,
}

impl XdsArgs {
    /// `--settle-secs` as a duration.
    pub fn settle(&self) -> Duration {
        Duration::from_secs(self.settle_secs)
    }

    /// `--step-timeout-secs` as a duration.
    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_secs)
    }
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Store(args) => crate::store_bench::run(&args).await,
            Command::Identity(args) => crate::identity_bench::run(&args).await,
            Command::Xds(args) => crate::xds_bench::run(&args).await,
            Command::Agent(args) => crate::agent_bench::run(&args).await,
            Command::TlsFloorServer { dir } => crate::xds_bench::floor::serve(&dir).await,
        }
    }
}

/// Settings of the agent benchmarks. Every load stops at its count or its
/// time limit.
#[derive(Clone, Debug, Args)]
pub struct AgentArgs {
    /// Requests per second of the open-loop latency runs.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long each path's latency run sends in all, in seconds.
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
    /// Rounds each latency run is cut into, interleaved across the paths,
    /// so that a passing disturbance of the machine falls on all of them.
    #[arg(long, default_value_t = 5)]
    pub latency_rounds: u32,
    /// Connections the latency requests are spread over, round-robin.
    #[arg(long, default_value_t = 16)]
    pub latency_connections: usize,
    /// How long each bulk transfer sends, in seconds.
    #[arg(long, default_value_t = 4)]
    pub bulk_secs: u64,
    /// Bulk transfers per path, interleaved; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub bulk_rounds: usize,
    /// How long each new-connection run lasts, in seconds.
    #[arg(long, default_value_t = 5)]
    pub connect_secs: u64,
    /// Concurrent clients of the new-connection runs.
    #[arg(long, default_value_t = 8)]
    pub connect_clients: usize,
    /// Workloads on the server's node, each with a Service and a policy of
    /// its own, besides the two the loads call.
    #[arg(long, default_value_t = 1000)]
    pub workloads: usize,
    /// Idle time before the idle memory is read, in seconds.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// The haproxy binary; by default `haproxy` on PATH, installed with
    /// `apt-get install -y haproxy` if missing.
    #[arg(long)]
    pub haproxy: Option<PathBuf>,
    /// Leave HAProxy out.
    #[arg(long)]
    pub skip_haproxy: bool,
    /// Keep the temporary directory (data, logs, HAProxy's configuration)
    /// and print where it is.
    #[arg(long)]
    pub keep_temp: bool,
}

impl AgentArgs {
    /// `--latency-secs` as a duration.
    pub fn latency_time(&self) -> Duration {
        Duration::from_secs(self.latency_secs)
    }

    /// How long one round of a latency run sends.
    pub fn latency_round_time(&self) -> Duration {
        self.latency_time() / self.latency_rounds.max(1)
    }

    /// `--bulk-secs` as a duration.
    pub fn bulk_time(&self) -> Duration {
        Duration::from_secs(self.bulk_secs)
    }

    /// `--connect-secs` as a duration.
    pub fn connect_time(&self) -> Duration {
        Duration::from_secs(self.connect_secs)
    }

    /// `--settle-secs` as a duration.
    pub fn settle(&self) -> Duration {
        Duration::from_secs(self.settle_secs)
    }
}
