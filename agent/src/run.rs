//! `palisade-agent run`: loads the configuration, restores what the data
//! directory remembers, starts the tasks, and runs until SIGTERM or Ctrl-C.
//!
//! Tasks, each in its own span: `node-identity` (attest, renew),
//! `workload-certificates` (one SVID per local workload), `xds` (the ADS
//! stream), `data-path` (the proxies), `status` (the data path's counters
//! in the status file), and when configured `sds` (secrets for a
//! co-located Envoy) and `certificate-files` (files for gRPC). The
//! last known good is applied before any of them starts, so the agent
//! enforces it even when the control plane cannot be reached; with nothing
//! remembered, everything is refused until the control plane answers.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::cache::{DataDir, LastKnownGood, Source, Status};
use crate::config::{AgentConfig, FileConfig, LogConfig, LogFormat, Overrides};
use crate::control::ControlPlane;
use crate::files::{self, CertificateFiles};
use crate::identity::svid::{Certificates, WorkloadCertificates};
use crate::identity::workloads::{self, Workloads};
use crate::identity::{NodeIdentity, node, unix_now};
use crate::sds::SdsServer;
use crate::signals::ShutdownSignal;
use crate::state::State;
use crate::status::{self, StatusFile};
use crate::xds::{self, Applier, Resources};

/// How long the background tasks get to stop after the data path drained.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The effective configuration: `config_file` (if any), then `overrides`.
pub fn configure(config_file: Option<&Path>, overrides: Overrides) -> anyhow::Result<AgentConfig> {
    let file = match config_file {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    Ok(AgentConfig::resolve(file, overrides)?)
}

/// Runs the agent with `config` until a signal or a failure.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    // Logs, and the signals, caught before anything the agent does can be
    // seen from outside (a status file, a log line, a listener).
    init_tracing(&config.log);
    let signal = ShutdownSignal::register();
    log_config(&config);

    // What the data directory remembers: configuration, then certificates.
    let dir = DataDir::open(&config.data_dir).context("opening the data directory")?;
    let state = State::new();
    let (held, status_file) = restore(&dir, &config.node, &state);
    let node = NodeIdentity::load(&dir, &config.node, &config.trust_bundle, unix_now())
        .context("loading the node identity")?;
    let certificates = Certificates::default();
    restore_certificates(&dir, &state, &node, &certificates);
    let local = LocalApis::open(&config)?;

    // The control-plane tasks, then the data path.
    let (stop, shutdown) = watch::channel(false);
    let agent = Agent {
        config: &config,
        dir,
        state: state.clone(),
        node,
        certificates: certificates.clone(),
    };
    let mut tasks = agent.spawn_control_tasks(held, status_file.clone(), &shutdown);
    local.spawn(&state, &certificates, &shutdown, &mut tasks);
    let counters = crate::proxy::counters();
    let publish = status::publish_counters(status_file, counters, shutdown.clone());
    tasks.spawn(publish.instrument(tracing::info_span!("status")));
    let proxy = crate::proxy::run(state, certificates, settings(&config), shutdown);
    let mut data_path = tokio::spawn(proxy.instrument(tracing::info_span!("data-path")));
    tracing::info!(node = %config.node, "palisade-agent running");

    // Until a signal, or until the data path fails.
    let outcome = tokio::select! {
        signal = signal.recv() => {
            tracing::info!(signal, "shutting down: draining connections");
            Ok(())
        }
        ended = &mut data_path => Err(match ended {
            Ok(Ok(())) => anyhow::anyhow!("the data path stopped by itself"),
            Ok(Err(error)) => error.context("the data path failed"),
            Err(error) => anyhow::Error::new(error).context("the data path panicked"),
        }),
    };

    // Drain with a deadline, then stop everything else.
    stop.send_replace(true);
    if outcome.is_ok() {
        drain(data_path, config.drain_timeout).await;
    }
    stop_tasks(&mut tasks).await;
    tracing::info!("palisade-agent stopped");
    outcome
}

/// What the tasks share.
struct Agent<'a> {
    config: &'a AgentConfig,
    dir: DataDir,
    state: State,
    node: NodeIdentity,
    certificates: Certificates,
}

impl Agent<'_> {
    /// Spawns the node identity, workload certificate and xDS tasks, each
    /// in its span; `held` is what the state enforces now, as `status`
    /// says.
    fn spawn_control_tasks(
        self,
        held: Resources,
        status: StatusFile,
        shutdown: &watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let config = self.config;
        let control = ControlPlane::new(
            config.control_plane.clone(),
            config.server_name.clone(),
            self.node.watch(),
        );
        let mut tasks = JoinSet::new();

        let identity = node::maintain(
            self.node.clone(),
            control.clone(),
            config.join_token_file.clone(),
            shutdown.clone(),
        );
        tasks.spawn(identity.instrument(tracing::info_span!("node-identity")));

        let workloads = Workloads {
            state: self.state.clone(),
            control: control.clone(),
            certificates: self.certificates,
            dir: self.dir.clone(),
        };
        let workloads = workloads::maintain(workloads, shutdown.clone());
        tasks.spawn(workloads.instrument(tracing::info_span!("workload-certificates")));

        let applier = Applier::new(self.state, held, self.dir, self.node, status);
        let client = xds::Client {
            node: config.node.clone(),
            control,
            applier,
        };
        tasks.spawn(xds::run(client, shutdown.clone()).instrument(tracing::info_span!("xds")));
        tasks
    }
}

/// The APIs for local proxies and applications, bound before any task
/// starts so that a socket in use stops the start-up.
struct LocalApis {
    sds: Option<SdsServer>,
    files: Option<CertificateFiles>,
}

impl LocalApis {
    /// Binds the SDS socket and opens the certificate directory, each when
    /// configured.
    fn open(config: &AgentConfig) -> anyhow::Result<Self> {
        let sds = match &config.sds_socket {
            Some(path) => Some(SdsServer::bind(path).context("binding the SDS socket")?),
            None => None,
        };
        let files = match &config.cert_dir {
            Some(dir) => {
                Some(CertificateFiles::open(dir).context("opening the certificate directory")?)
            }
            None => None,
        };
        Ok(Self { sds, files })
    }

    /// Starts serving SDS and writing files, each in its span.
    fn spawn(
        self,
        state: &State,
        certificates: &Certificates,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        if let Some(server) = self.sds {
            tracing::info!(socket = %server.path().display(), "SDS listening");
            let served = server.serve(state.clone(), certificates.clone(), shutdown.clone());
            let task = async move {
                if let Err(error) = served.await {
                    tracing::error!(%error, "SDS stopped");
                }
            };
            tasks.spawn(task.instrument(tracing::info_span!("sds")));
        }

        if let Some(files) = self.files {
            tracing::info!(workloads = files.written().len(), "certificate files found");
            let writer =
                files::maintain(files, state.clone(), certificates.clone(), shutdown.clone());
            tasks.spawn(writer.instrument(tracing::info_span!("certificate-files")));
        }
    }
}

/// Waits briefly for the tasks to see the shutdown, then aborts the rest.
async fn stop_tasks(tasks: &mut JoinSet<()>) {
    let joined = tokio::time::timeout(TASK_STOP_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    });
    if joined.await.is_err() {
        tasks.abort_all();
    }
}

/// What the data path is told.
fn settings(config: &AgentConfig) -> crate::proxy::Settings {
    let given = &config.data_path;
    crate::proxy::Settings {
        bind_address: given.bind_address,
        outbound_address: given.outbound_address,
        proxy_protocol: given.proxy_protocol,
        handshake_timeout: given.handshake_timeout,
        max_connections: given.max_connections,
        max_handshakes: given.max_handshakes,
        max_handshakes_per_source: given.max_handshakes_per_source,
    }
}

/// Waits for the data path to drain, at most `deadline`.
async fn drain(data_path: tokio::task::JoinHandle<anyhow::Result<()>>, deadline: Duration) {
    let abort = data_path.abort_handle();
    match tokio::time::timeout(deadline, data_path).await {
        Ok(Ok(Ok(()))) => tracing::info!("data path drained"),
        Ok(Ok(Err(error))) => {
            tracing::warn!(error = %format!("{error:#}"), "data path stopped with an error")
        }
        Ok(Err(error)) => tracing::warn!(%error, "data path task failed"),
        Err(_) => {
            tracing::warn!(deadline = ?deadline, "data path did not drain in time; closing what is left");
            abort.abort();
        }
    }
}

/// Applies the last known good, if there is a usable one, and says so in
/// the status file; returns the resources now enforced, and the file.
fn restore(dir: &DataDir, node: &str, state: &State) -> (Resources, StatusFile) {
    let mut status = Status {
        node: node.to_owned(),
        ..Status::default()
    };
    let status_file = StatusFile::new(dir.clone(), status.clone());
    match LastKnownGood::load(dir) {
        Ok(Some(saved)) => match xds::snapshot::build(&saved.resources) {
            Ok(snapshot) => {
                let revision = snapshot.revision;
                state.apply(snapshot);
                status.source = Source::LastKnownGood;
                status.revision = revision;
                status.applied_at_unix = saved.saved_at_unix;
                status.resources = saved.resources.counts();
                tracing::info!(
                    revision,
                    saved_at_unix = saved.saved_at_unix,
                    "enforcing the last known good configuration until the control plane answers"
                );
                save_status(&status_file, &status);
                return (saved.resources, status_file);
            }
            Err(rejection) => {
                tracing::error!(%rejection, "the last known good configuration is invalid; ignoring it")
            }
        },
        Ok(None) => {}
        Err(error) => {
            tracing::error!(%error, "the last known good configuration is unreadable; ignoring it")
        }
    }

    tracing::warn!("no configuration yet: refusing all traffic until the control plane answers");
    save_status(&status_file, &status);
    (Resources::default(), status_file)
}

/// Publishes the stored certificates of the restored configuration's
/// workloads that are still valid.
fn restore_certificates(
    dir: &DataDir,
    state: &State,
    node: &NodeIdentity,
    certificates: &Certificates,
) {
    let Some(snapshot) = state.current() else {
        return;
    };
    let by_workload = workloads::load_cached(dir, &snapshot, unix_now());
    tracing::info!(
        workloads = snapshot.workloads.len(),
        certificates = by_workload.len(),
        "stored workload certificates loaded"
    );
    certificates.publish(WorkloadCertificates {
        by_workload,
        bundle_pem: workloads::bundle_pem(Some(&snapshot), &node.material()),
    });
}

fn save_status(file: &StatusFile, status: &Status) {
    if let Err(error) = file.save(status) {
        tracing::warn!(%error, "status file not written");
    }
}

/// Installs the global subscriber: human lines or JSON, on stderr.
/// `RUST_LOG`, when set, overrides the configured level.
fn init_tracing(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());

    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Logs the effective configuration. No setting holds a secret: the join
/// token is only named by its file.
fn log_config(config: &AgentConfig) {
    let addresses: Vec<&str> = config
        .control_plane
        .iter()
        .map(|a| a.uri.as_str())
        .collect();
    let data_path = &config.data_path;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node = %config.node,
        control_plane = ?addresses,
        server_name = ?config.server_name,
        data_dir = %config.data_dir.display(),
        trust_bundle = %config.trust_bundle.display(),
        join_token_file = ?config.join_token_file,
        bind_address = %data_path.bind_address,
        outbound_address = %data_path.outbound_address,
        proxy_protocol = data_path.proxy_protocol,
        handshake_timeout = ?data_path.handshake_timeout,
        max_connections = data_path.max_connections,
        max_handshakes = data_path.max_handshakes,
        max_handshakes_per_source = data_path.max_handshakes_per_source,
        drain_timeout = ?config.drain_timeout,
        worker_threads = config.worker_threads,
        sds_socket = ?config.sds_socket,
        cert_dir = ?config.cert_dir,
        "palisade-agent starting"
    );
}
