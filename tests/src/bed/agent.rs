//! One `palisade-agent run` process of the bed: its flags, its data
//! directory, a log file per run, and waits on what it reports.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::network::Site;
use crate::binary;

/// How long an agent may take to reach a state a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// The agent's log filter: lifecycle at info, plus one line per xDS
/// response with how many resources it carried.
const LOG_FILTER: &str = "info,palisade_agent::xds::stream=debug";

/// Data-path settings the bed passes to every agent.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--handshake-timeout-secs`.
    pub handshake_timeout_secs: u64,
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--max-handshakes`.
    pub max_handshakes: usize,
    /// `--max-handshakes-per-source`.
    pub max_handshakes_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout_secs: 5,
            max_connections: 1000,
            max_handshakes: 256,
            max_handshakes_per_source: 64,
        }
    }
}

/// Where an agent runs, and the addresses it binds.
#[derive(Clone, Debug)]
pub struct Place {
    /// Where its process runs: its host's namespace, or the test's.
    pub site: Site,
    /// Its host address: where it binds inbound listeners, and where its
    /// connections to other nodes leave from.
    pub address: Ipv4Addr,
    /// A loopback address of its host: where it binds the outbound
    /// listeners of workloads without an address of their own.
    pub outbound: Ipv4Addr,
}

/// One agent; killed when dropped.
pub struct Agent {
    /// Its Node's name.
    pub node: String,
    /// Its host address.
    pub address: Ipv4Addr,
    pub data_dir: PathBuf,
    /// Where its process runs.
    site: Site,
    root: PathBuf,
    args: Vec<OsString>,
    child: Option<Child>,
    runs: usize,
}

impl Agent {
    /// Starts the agent of `node` at `place`, following the control plane
    /// at `control_plane`, with its files under `root`.
    pub fn start(
        root: &Path,
        node: &str,
        place: Place,
        control_plane: SocketAddr,
        trust_bundle: &Path,
        limits: Limits,
    ) -> Agent {
        let data_dir = root.join(node);
        let args: Vec<OsString> = [
            "run".into(),
            "--control-plane".into(),
            control_plane.to_string().into(),
            "--node".into(),
            node.into(),
            "--join-token-file".into(),
            root.join(format!("{node}.token")).into(),
            "--data-dir".into(),
            data_dir.clone().into(),
            "--trust-bundle".into(),
            trust_bundle.into(),
            "--bind-address".into(),
            place.address.to_string().into(),
            "--outbound-address".into(),
            place.outbound.to_string().into(),
            "--proxy-protocol".into(),
            "--handshake-timeout-secs".into(),
            limits.handshake_timeout_secs.to_string().into(),
            "--max-connections".into(),
            limits.max_connections.to_string().into(),
            "--max-handshakes".into(),
            limits.max_handshakes.to_string().into(),
            "--max-handshakes-per-source".into(),
            limits.max_handshakes_per_source.to_string().into(),
            "--drain-timeout-secs".into(),
            "2".into(),
        ]
        .into_iter()
        .collect();

        Self::launch(root, node, place, args)
    }

    /// Starts the agent of `node` as [`start`](Self::start) does, with
    /// its settings in a TOML file, `<root>/<node>.toml`, named by
    /// `--config`. The file turns the PROXY header off and the flag
    /// `--proxy-protocol` turns it on, as a flag overrides the file.
    pub fn start_from_file(
        root: &Path,
        node: &str,
        place: Place,
        control_plane: SocketAddr,
        trust_bundle: &Path,
        limits: Limits,
    ) -> Agent {
        let file = root.join(format!("{node}.toml"));
        let settings = format!(
            "control_plane = [\"{control_plane}\"]\n\
             node = \"{node}\"\n\
             join_token_file = {token:?}\n\
             data_dir = {data_dir:?}\n\
             trust_bundle = {trust_bundle:?}\n\
             bind_address = \"{address}\"\n\
             outbound_address = \"{outbound}\"\n\
             proxy_protocol = false\n\
             handshake_timeout_secs = {}\n\
             max_connections = {}\n\
             max_handshakes = {}\n\
             max_handshakes_per_source = {}\n\
             drain_timeout_secs = 2\n",
            limits.handshake_timeout_secs,
            limits.max_connections,
            limits.max_handshakes,
            limits.max_handshakes_per_source,
            token = root.join(format!("{node}.token")),
            data_dir = root.join(node),
            address = place.address,
            outbound = place.outbound,
        );
        std::fs::write(&file, settings).expect("writing the agent's config file");

        let args = [
            "run".into(),
            "--config".into(),
            file.into(),
            "--proxy-protocol".into(),
        ];
        Self::launch(root, node, place, args.into())
    }

    fn launch(root: &Path, node: &str, place: Place, args: Vec<OsString>) -> Agent {
        let mut agent = Agent {
            node: node.to_owned(),
            address: place.address,
            data_dir: root.join(node),
            site: place.site,
            root: root.to_owned(),
            args,
            child: None,
            runs: 0,
        };
        agent.spawn();
        agent
    }

    /// Gives `flag` the value `value` from the next start on, adding it
    /// if the agent was started without it.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        let at = self.args.iter().position(|arg| arg == flag);
        match at {
            Some(at) => self.args[at + 1] = value.into(),
            None => self.args.extend([flag.into(), value.into()]),
        }
    }

    /// Starts the process again, with the same flags and data directory
    /// and a new log file.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.node);
        self.spawn();
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("creating the agent log");
        let mut command = match self.site.namespace() {
            None => Command::new(binary("palisade-agent")),
            Some(namespace) => {
                // `ip netns exec` runs the agent in place of itself, so the
                // child is the agent, and signals reach it.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]);
                command.arg(binary("palisade-agent"));
                command
            }
        };
        let child = command
            .args(&self.args)
            .env("RUST_LOG", LOG_FILTER)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting palisade-agent");
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.root
            .join(format!("agent-{}-run-{}.log", self.node, self.runs))
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// What `<data-dir>/status.json` says now.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read(self.data_dir.join("status.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The revision the status file reports, 0 without one.
    pub fn revision(&self) -> u64 {
        self.status()
            .and_then(|s| s["revision"].as_u64())
            .unwrap_or(0)
    }

    /// The data-path counter `name` in the status file, 0 without one.
    pub fn counter(&self, name: &str) -> u64 {
        self.status()
            .and_then(|s| s["counters"][name].as_u64())
            .unwrap_or(0)
    }

    /// Waits until the status file reports the counter `name` at
    /// `at_least` or more, and returns it.
    pub async fn wait_for_counter(&mut self, name: &str, at_least: u64) -> u64 {
        let what = format!("counter {name} reaching {at_least}");
        self.wait_until(&what, |agent| agent.counter(name) >= at_least)
            .await;
        self.counter(name)
    }

    /// The newest revision the data path of this run applied.
    pub fn data_path_revision(&self) -> Option<u64> {
        self.log()
            .lines()
            .filter_map(|line| {
                line.split_once("data path applied revision=")?
                    .1
                    .split(' ')
                    .next()
            })
            .filter_map(|revision| revision.parse().ok())
            .max()
    }

    /// How many lines of this run's log hold every one of `parts`.
    pub fn lines_with(&self, parts: &[&str]) -> usize {
        let log = self.log();
        let matching = log
            .lines()
            .filter(|line| parts.iter().all(|p| line.contains(p)));
        matching.count()
    }

    /// Waits until at least `count` lines of this run's log hold every one
    /// of `parts`, and returns how many do. A line can lag behind what the
    /// peer saw: a refused TLS client may read the alert before the agent
    /// logs the refusal.
    pub async fn wait_for_lines(&mut self, parts: &[&str], count: usize) -> usize {
        let what = format!("{count} log lines with {parts:?}");
        self.wait_until(&what, |agent| agent.lines_with(parts) >= count)
            .await;
        self.lines_with(parts)
    }

    /// Whether this run opened a listener on `address`.
    pub fn listens_on(&self, address: SocketAddr) -> bool {
        self.log()
            .contains(&format!("listening address={address} "))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Panics, with the log, if the process has exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the agent was started");
        if let Some(status) = child.try_wait().expect("checking on the agent") {
            panic!("agent {} exited with {status}:\n{}", self.node, self.log());
        }
    }

    /// Polls `ready` until it holds, panicking after [`WAIT`] with `what`
    /// and the log, or if the process exits.
    pub async fn wait_until(&mut self, what: &str, ready: impl Fn(&Agent) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(self) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "agent {}: {what} did not happen in {WAIT:?}; status {:?}\n{}",
                self.node,
                self.status(),
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the status file reports `source` (`control-plane`,
    /// `last-known-good` or `none`).
    pub async fn wait_for_source(&mut self, source: &str) {
        let what = format!("reporting source {source}");
        self.wait_until(&what, |agent| {
            agent.status().is_some_and(|s| s["source"] == source)
        })
        .await;
    }

    /// Waits until the status file reports at least `revision` and the
    /// data path enforces it.
    pub async fn wait_for_revision(&mut self, revision: u64) {
        let what = format!("enforcing revision {revision}");
        self.wait_until(&what, |agent| {
            agent.revision() >= revision
                && agent.data_path_revision().is_some_and(|r| r >= revision)
        })
        .await;
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("the agent is running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
    }

    /// Waits for the process to exit, at most `within`, and returns how.
    /// Polls without blocking the test's runtime, whose tasks (the
    /// services, the callers) may be what the agent waits for.
    pub async fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().expect("the agent is running");
            if let Some(status) = child.try_wait().expect("checking on the agent") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent {} did not exit within {within:?}:\n{}",
                self.node,
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the agent is running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("checking on the agent") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("agent {} ignored SIGTERM:\n{}", self.node, self.log());
            }
            std::thread::sleep(POLL);
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
