//! Configuration of `palisade-agent run`: a TOML file, then the environment
//! (`PALISADE_AGENT_*`), then flags, each overriding the one before. Every
//! setting is declared once here with its default; the result is checked
//! into an [`AgentConfig`] before anything starts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::control::Address;

/// Where the agent keeps its keys, certificates and last known good.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/palisade-agent";
/// Where inbound listeners bind unless configured.
pub const DEFAULT_BIND_ADDRESS: &str = "0.0.0.0";
/// Where outbound listeners bind unless configured.
pub const DEFAULT_OUTBOUND_ADDRESS: &str = "127.0.0.1";
/// How long a TLS handshake on the data path may take.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// How many connections the data path holds at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How many TLS handshakes one inbound listener has in progress at once.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;
/// How many of those one source address may have.
pub const DEFAULT_MAX_HANDSHAKES_PER_SOURCE: usize = 64;
/// How long connections get to finish on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 10;
/// Threads that run the data path and the agent's tasks. One thread keeps
/// a forwarded request on one core from read to write, which is what keeps
/// latency low on small hosts; more threads add handshake capacity.
pub const DEFAULT_WORKER_THREADS: usize = 1;
/// The most worker threads accepted.
const MAX_WORKER_THREADS: usize = 256;
/// What the error for a missing trust bundle says.
const TRUST_BUNDLE_REQUIRED: &str = "required: the PEM file of the CAs that the control \
     plane's certificate chains to, which the agent trusts until the control plane sends its \
     own; copy the control plane's <data-dir>/ca.pem (or the output of `palisadectl ca status \
     --published`) to this host and pass it with --trust-bundle, PALISADE_AGENT_TRUST_BUNDLE \
     or trust_bundle in the config file";
/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The longest path a Unix socket may have (`sun_path` holds 108 bytes,
/// the last a NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Errors in configuration; the process exits with code 64 on any of them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("{setting}: {detail}")]
    Invalid {
        setting: &'static str,
        detail: String,
    },
}

fn invalid(setting: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        detail: detail.into(),
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// How the process logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Human lines or JSON.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `palisade_agent=debug`;
    /// `RUST_LOG` overrides it.
    pub level: String,
}

/// The settings a TOML file may hold, each as described on
/// [`AgentConfig`] (durations in seconds). Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub control_plane: Option<Vec<String>>,
    pub node: Option<String>,
    pub join_token_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub trust_bundle: Option<PathBuf>,
    pub server_name: Option<String>,
    pub bind_address: Option<String>,
    pub outbound_address: Option<String>,
    pub proxy_protocol: Option<bool>,
    pub handshake_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_handshakes: Option<usize>,
    pub max_handshakes_per_source: Option<usize>,
    pub drain_timeout_secs: Option<u64>,
    pub worker_threads: Option<usize>,
    pub sds_socket: Option<PathBuf>,
    pub cert_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

/// Settings given on the command line or in the environment (clap fills
/// both), as in [`FileConfig`]; `None` means not given.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub control_plane: Option<Vec<String>>,
    pub node: Option<String>,
    pub join_token_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub trust_bundle: Option<PathBuf>,
    pub server_name: Option<String>,
    pub bind_address: Option<String>,
    pub outbound_address: Option<String>,
    pub proxy_protocol: Option<bool>,
    pub handshake_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_handshakes: Option<usize>,
    pub max_handshakes_per_source: Option<usize>,
    pub drain_timeout_secs: Option<u64>,
    pub worker_threads: Option<usize>,
    pub sds_socket: Option<PathBuf>,
    pub cert_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

/// What the data path is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPathConfig {
    /// Where inbound listeners bind; when it is a specific address,
    /// connections to other nodes' endpoints leave from it too.
    pub bind_address: IpAddr,
    /// Where outbound listeners bind.
    pub outbound_address: IpAddr,
    /// Prefix forwarded inbound connections with a PROXY v2 header that
    /// carries the caller's SPIFFE ID.
    pub proxy_protocol: bool,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How many connections are held at once.
    pub max_connections: usize,
    /// How many TLS handshakes one inbound listener has in progress at
    /// once.
    pub max_handshakes: usize,
    /// How many of those one source address (an IPv6 /64) may have.
    pub max_handshakes_per_source: usize,
}

/// The effective configuration of `run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// The control plane's addresses, tried in order.
    pub control_plane: Vec<Address>,
    /// This node's name: its identity is `spiffe://<td>/node/<node>`.
    pub node: String,
    /// The file holding the one-time join token; read only to attest.
    pub join_token_file: Option<PathBuf>,
    /// Where keys, certificates and the last known good live.
    pub data_dir: PathBuf,
    /// The CA bundle that the control plane's certificate must chain to
    /// before the agent has received one from the control plane itself.
    pub trust_bundle: PathBuf,
    /// The name the control plane's certificate must carry, instead of each
    /// address's host.
    pub server_name: Option<String>,
    /// What the data path is told.
    pub data_path: DataPathConfig,
    /// How long the data path gets to drain on shutdown.
    pub drain_timeout: Duration,
    /// Threads of the runtime: with one, everything runs on a single
    /// thread; with more, tasks are spread over that many.
    pub worker_threads: usize,
    /// Where the agent serves Envoy's SDS to a co-located Envoy, e.g.
    /// `/var/run/palisade/agent.sock`; `None` (the default) serves none.
    pub sds_socket: Option<PathBuf>,
    /// Where the agent writes each workload's certificate, key and bundle
    /// for proxyless gRPC, as `<cert_dir>/<namespace>/<workload>/`, e.g.
    /// `/var/run/palisade`; `None` (the default) writes none.
    pub cert_dir: Option<PathBuf>,
    /// How the agent logs.
    pub log: LogConfig,
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let error = |detail: String| ConfigError::File {
            path: path.to_owned(),
            detail,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| error(e.to_string()))?
            .len();
        if size > MAX_CONFIG_BYTES {
            return Err(error(format!("larger than {MAX_CONFIG_BYTES} bytes")));
        }

        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(one_line(&text, &e)))
    }
}

/// A TOML error on one line: where in `text` it is, the setting on that
/// line when the message does not name it already, then what is wrong.
fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return message;
    };

    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    let setting = text
        .lines()
        .nth(line - 1)
        .and_then(|text| text.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && !message.contains(key));
    match setting {
        Some(setting) => format!("line {line}, column {column}: {setting}: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

impl AgentConfig {
    /// Merges file and overrides over the defaults, and checks the result.
    pub fn resolve(file: FileConfig, over: Overrides) -> Result<Self, ConfigError> {
        let data_path = DataPathConfig::resolve(&file, &over)?;
        let control_plane = addresses(over.control_plane.or(file.control_plane))?;
        let node = node_name(over.node.or(file.node))?;
        let trust_bundle = over
            .trust_bundle
            .or(file.trust_bundle)
            .ok_or_else(|| invalid("trust_bundle", TRUST_BUNDLE_REQUIRED))?;
        let server_name = over.server_name.or(file.server_name);
        if server_name.as_deref() == Some("") {
            return Err(invalid("server_name", "must not be empty"));
        }
        let worker_threads = worker_threads(over.worker_threads.or(file.worker_threads))?;
        let sds_socket = socket_path(over.sds_socket.or(file.sds_socket))?;
        let cert_dir = over.cert_dir.or(file.cert_dir);
        if cert_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(invalid("cert_dir", "must not be empty"));
        }

        Ok(Self {
            control_plane,
            node,
            join_token_file: over.join_token_file.or(file.join_token_file),
            data_dir: over
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            trust_bundle,
            server_name,
            data_path,
            drain_timeout: Duration::from_secs(
                over.drain_timeout_secs
                    .or(file.drain_timeout_secs)
                    .unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECS),
            ),
            worker_threads,
            sds_socket,
            cert_dir,
            log: LogConfig {
                format: over.log_format.or(file.log_format).unwrap_or_default(),
                level: over
                    .log_level
                    .or(file.log_level)
                    .unwrap_or_else(|| "info".into()),
            },
        })
    }
}

impl DataPathConfig {
    fn resolve(file: &FileConfig, over: &Overrides) -> Result<Self, ConfigError> {
        let bind = over.bind_address.as_ref().or(file.bind_address.as_ref());
        let outbound = over
            .outbound_address
            .as_ref()
            .or(file.outbound_address.as_ref());
        let timeout = over
            .handshake_timeout_secs
            .or(file.handshake_timeout_secs)
            .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT_SECS);
        if timeout == 0 {
            return Err(invalid("handshake_timeout_secs", "must be at least 1"));
        }
        let max_connections = at_least_one(
            "max_connections",
            over.max_connections.or(file.max_connections),
            DEFAULT_MAX_CONNECTIONS,
        )?;
        let max_handshakes = at_least_one(
            "max_handshakes",
            over.max_handshakes.or(file.max_handshakes),
            DEFAULT_MAX_HANDSHAKES,
        )?;
        let max_handshakes_per_source = at_least_one(
            "max_handshakes_per_source",
            over.max_handshakes_per_source
                .or(file.max_handshakes_per_source),
            DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
        )?;

        Ok(Self {
            bind_address: ip("bind_address", bind, DEFAULT_BIND_ADDRESS)?,
            outbound_address: outbound_ip(outbound)?,
            proxy_protocol: over.proxy_protocol.or(file.proxy_protocol).unwrap_or(false),
            handshake_timeout: Duration::from_secs(timeout),
            max_connections,
            max_handshakes,
            max_handshakes_per_source,
        })
    }
}

/// A count given or its default, refusing zero.
fn at_least_one(
    setting: &'static str,
    given: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match given.unwrap_or(default) {
        0 => Err(invalid(setting, "must be at least 1")),
        count => Ok(count),
    }
}

/// The worker thread count given or its default, from 1 to
/// [`MAX_WORKER_THREADS`].
fn worker_threads(given: Option<usize>) -> Result<usize, ConfigError> {
    let threads = at_least_one("worker_threads", given, DEFAULT_WORKER_THREADS)?;
    if threads > MAX_WORKER_THREADS {
        return Err(invalid(
            "worker_threads",
            format!("{threads} is more than {MAX_WORKER_THREADS}"),
        ));
    }
    Ok(threads)
}

/// The control plane's addresses; each entry may itself hold several
/// separated by commas.
fn addresses(given: Option<Vec<String>>) -> Result<Vec<Address>, ConfigError> {
    let setting = "control_plane";
    let entries: Vec<String> = given
        .unwrap_or_default()
        .iter()
        .flat_map(|entry| entry.split(','))
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect();
    if entries.is_empty() {
        return Err(invalid(setting, "required: at least one address"));
    }

    entries
        .iter()
        .map(|entry| Address::parse(entry).map_err(|detail| invalid(setting, detail)))
        .collect()
}

fn node_name(given: Option<String>) -> Result<String, ConfigError> {
    let name = given.ok_or_else(|| invalid("node", "required: this node's name"))?;
    if !palisade_model::is_dns1123_subdomain(&name) {
        return Err(invalid(
            "node",
            format!("{name:?} is not a DNS-1123 name (lowercase letters, digits, '-' and '.')"),
        ));
    }
    Ok(name)
}

/// The SDS socket's path, if any: not empty, and short enough to bind.
fn socket_path(given: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = given else {
        return Ok(None);
    };
    let length = path.as_os_str().len();
    if length == 0 {
        return Err(invalid("sds_socket", "must not be empty"));
    }
    if length > MAX_SOCKET_PATH_BYTES {
        return Err(invalid(
            "sds_socket",
            format!(
                "{} is longer than {MAX_SOCKET_PATH_BYTES} bytes",
                path.display()
            ),
        ));
    }
    Ok(Some(path))
}

/// Where outbound listeners bind: a loopback address only, since whoever
/// reaches an outbound listener speaks with its workload's identity.
fn outbound_ip(given: Option<&String>) -> Result<IpAddr, ConfigError> {
    let setting = "outbound_address";
    let address = ip(setting, given, DEFAULT_OUTBOUND_ADDRESS)?;
    if !address.is_loopback() {
        return Err(invalid(
            setting,
            format!(
                "{address} is not a loopback address; outbound listeners lend their workload's \
                 identity to whoever connects, so they bind to 127.0.0.0/8 or ::1 only"
            ),
        ));
    }
    Ok(address)
}

fn ip(setting: &'static str, given: Option<&String>, default: &str) -> Result<IpAddr, ConfigError> {
    let text = given.map_or(default, String::as_str);
    text.parse()
        .map_err(|_| invalid(setting, format!("{text:?} is not an IP address")))
}

#[cfg(test)]
mod tests;
