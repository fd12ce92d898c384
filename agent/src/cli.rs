//! The command line of `palisade-agent`: `run` and `check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigError, LogFormat, Overrides};

/// Exit code for bad configuration or usage.
const EXIT_CONFIG: u8 = 64;

/// The Palisade node agent.
#[derive(Debug, Parser)]
#[command(name = "palisade-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attest, follow the control plane and enforce what it says.
    Run(Box<RunArgs>),
    /// Check that a control plane is reachable, trusted and serving.
    Check {
        /// The control plane's admin address, e.g. https://127.0.0.1:7443.
        #[arg(long, env = "PALISADE_CONTROL_PLANE")]
        control_plane: String,
        /// The trust bundle (the control plane's ca.pem).
        #[arg(long, env = "PALISADE_CA")]
        ca: PathBuf,
        /// The server name in the control plane's certificate.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
}

/// Settings of `run`; a TOML file (`--config`) may hold each of them, and
/// these override it.
#[derive(Debug, Args)]
struct RunArgs {
    /// A TOML configuration file; environment and flags override it.
    #[arg(long, env = "PALISADE_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// The control plane's addresses, host:port or https://host:port,
    /// separated by commas; tried in order.
    #[arg(long, env = "PALISADE_AGENT_CONTROL_PLANE", value_delimiter = ',')]
    control_plane: Option<Vec<String>>,
    /// This node's name, as registered with the control plane.
    #[arg(long, env = "PALISADE_AGENT_NODE")]
    node: Option<String>,
    /// The file holding the join token; needed only until the node has
    /// attested.
    #[arg(long, env = "PALISADE_AGENT_JOIN_TOKEN_FILE")]
    join_token_file: Option<PathBuf>,
    /// Where keys, certificates and the last known good live
    /// [default: /var/lib/palisade-agent].
    #[arg(long, env = "PALISADE_AGENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The CAs (PEM) the control plane's certificate chains to: a copy of
    /// the control plane's <data-dir>/ca.pem, or the output of
    /// `palisadectl ca status --published`; trusted until the control
    /// plane sends its own bundle. Required.
    #[arg(long, env = "PALISADE_AGENT_TRUST_BUNDLE")]
    trust_bundle: Option<PathBuf>,
    /// The name the control plane's certificate must carry [default: each
    /// address's host].
    #[arg(long, env = "PALISADE_AGENT_SERVER_NAME")]
    server_name: Option<String>,
    /// Where inbound listeners bind; a specific address is also where
    /// connections to other nodes leave from [default: 0.0.0.0].
    #[arg(long, env = "PALISADE_AGENT_BIND_ADDRESS")]
    bind_address: Option<String>,
    /// Where outbound listeners bind [default: 127.0.0.1].
    #[arg(long, env = "PALISADE_AGENT_OUTBOUND_ADDRESS")]
    outbound_address: Option<String>,
    /// Prefix forwarded inbound connections with a PROXY v2 header carrying
    /// the caller's SPIFFE ID [default: false].
    #[arg(long, env = "PALISADE_AGENT_PROXY_PROTOCOL", num_args = 0..=1, default_missing_value = "true")]
    proxy_protocol: Option<bool>,
    /// Seconds a data-path TLS handshake may take [default: 10].
    #[arg(long, env = "PALISADE_AGENT_HANDSHAKE_TIMEOUT_SECS")]
    handshake_timeout_secs: Option<u64>,
    /// Connections one listener holds at once [default: 10000].
    #[arg(long, env = "PALISADE_AGENT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// TLS handshakes one inbound listener has in progress at once; a
    /// connection beyond them takes the oldest one's place [default: 1024].
    #[arg(long, env = "PALISADE_AGENT_MAX_HANDSHAKES")]
    max_handshakes: Option<usize>,
    /// Of those, how many one source address (an IPv6 /64) may have
    /// [default: 64].
    #[arg(long, env = "PALISADE_AGENT_MAX_HANDSHAKES_PER_SOURCE")]
    max_handshakes_per_source: Option<usize>,
    /// Seconds connections get to finish on shutdown [default: 10].
    #[arg(long, env = "PALISADE_AGENT_DRAIN_TIMEOUT_SECS")]
    drain_timeout_secs: Option<u64>,
    /// Threads of the runtime; one keeps latency lowest, more add
    /// handshake capacity [default: 1].
    #[arg(long, env = "PALISADE_AGENT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Serve Envoy's SDS on this Unix socket, e.g.
    /// /var/run/palisade/agent.sock [default: none].
    #[arg(long, env = "PALISADE_AGENT_SDS_SOCKET")]
    sds_socket: Option<PathBuf>,
    /// Write each workload's svid.pem, svid-key.pem and bundle.pem under
    /// DIR/NAMESPACE/WORKLOAD, e.g. /var/run/palisade [default: none].
    #[arg(long, env = "PALISADE_AGENT_CERT_DIR", value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    #[arg(long, env = "PALISADE_AGENT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// A tracing filter, e.g. info or palisade_agent=debug [default: info].
    #[arg(long, env = "PALISADE_AGENT_LOG")]
    log_level: Option<String>,
}

impl From<RunArgs> for Overrides {
    fn from(args: RunArgs) -> Self {
        Overrides {
            control_plane: args.control_plane,
            node: args.node,
            join_token_file: args.join_token_file,
            data_dir: args.data_dir,
            trust_bundle: args.trust_bundle,
            server_name: args.server_name,
            bind_address: args.bind_address,
            outbound_address: args.outbound_address,
            proxy_protocol: args.proxy_protocol,
            handshake_timeout_secs: args.handshake_timeout_secs,
            max_connections: args.max_connections,
            max_handshakes: args.max_handshakes,
            max_handshakes_per_source: args.max_handshakes_per_source,
            drain_timeout_secs: args.drain_timeout_secs,
            worker_threads: args.worker_threads,
            sds_socket: args.sds_socket,
            cert_dir: args.cert_dir,
            log_format: args.log_format,
            log_level: args.log_level,
        }
    }
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let result = match cli.command {
        Command::Run(mut args) => {
            let file = args.config.take();
            crate::run::configure(file.as_deref(), (*args).into()).and_then(|config| {
                runtime(config.worker_threads)?.block_on(crate::run::run(config))
            })
        }
        Command::Check {
            control_plane,
            ca,
            server_name,
        } => runtime(1).and_then(|runtime| {
            runtime.block_on(crate::check::check(&control_plane, &ca, &server_name))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// A runtime of `threads` threads: a single-threaded one for one, where
/// every task and its I/O run on the thread that blocks on it.
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .map_err(|error| anyhow::Error::new(error).context("starting the runtime"))
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    if error.downcast_ref::<ConfigError>().is_some() {
        return ExitCode::from(EXIT_CONFIG);
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, FileConfig};

    fn run_args(args: &[&str]) -> Overrides {
        let mut argv = vec!["palisade-agent", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => (*args).into(),
            Command::Check { .. } => panic!("not run"),
        }
    }

    #[test]
    fn flags_fill_the_overrides() {
        let over = run_args(&[
            "--control-plane",
            "cp-1:7443,cp-2:7443",
            "--node",
            "web-1",
            "--proxy-protocol",
        ]);

        assert_eq!(
            over.control_plane.unwrap(),
            ["cp-1:7443".to_owned(), "cp-2:7443".to_owned()]
        );
        assert_eq!(over.node.as_deref(), Some("web-1"));
        assert_eq!(over.proxy_protocol, Some(true));
        assert_eq!(over.bind_address, None);
    }

    #[test]
    fn local_apis_are_off_unless_given() {
        let required = [
            "--control-plane",
            "cp:7443",
            "--node",
            "web-1",
            "--trust-bundle",
            "ca.pem",
        ];
        let resolve = |extra: &[&str]| {
            let args: Vec<&str> = required.iter().chain(extra).copied().collect();
            AgentConfig::resolve(FileConfig::default(), run_args(&args))
        };

        let off = resolve(&[]).unwrap();
        let on = resolve(&["--sds-socket", "/run/p/agent.sock", "--cert-dir", "/run/p"]).unwrap();
        let long = format!("/{}", "s".repeat(200));

        assert_eq!((off.sds_socket, off.cert_dir), (None, None));
        assert_eq!(on.sds_socket, Some(PathBuf::from("/run/p/agent.sock")));
        assert_eq!(on.cert_dir, Some(PathBuf::from("/run/p")));
        assert!(resolve(&["--sds-socket", &long]).is_err());
    }

    #[test]
    fn a_boolean_flag_can_turn_a_file_setting_off() {
        let over = run_args(&["--proxy-protocol=false"]);

        assert_eq!(over.proxy_protocol, Some(false));
    }
}
