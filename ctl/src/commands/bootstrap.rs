//! `palisadectl bootstrap envoy|grpc`: the JSON bootstrap that an Envoy
//! sidecar or a proxyless gRPC application starts from to fetch its
//! configuration over xDS as one workload's proxy.
//!
//! The bootstrap names the node (`<namespace>/<workload>`, the identity the
//! control plane serves), the ADS server and how to reach it over mTLS with
//! the workload's certificate, and where certificates come from. Names that
//! the control plane's Envoy resources refer to (the certificate provider
//! `palisade`, the certificates `default` and `ROOTCA`, the SDS cluster
//! `palisade_agent`) are fixed on both sides and must agree.
//!
//! The command reads the Workload from the admin API, so that a typo fails
//! here rather than as an empty configuration later, and so that the node's
//! cluster (`<service>.<namespace>`) and locality (its node) are real.

mod envoy;
mod grpc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use palisade_model::{Document, Kind, Spec};
use palisade_proto::admin::GetRequest;
use serde_json::{Value, json};
use thiserror::Error;

use crate::cli::ConnectionArgs;
use crate::client::Server;
use crate::config::Settings;
use crate::error::RpcError;
use crate::output;

/// Where the agent keeps each workload's files, as `<root>/<ns>/<name>`.
const DEFAULT_CERT_ROOT: &str = "/var/run/palisade";

/// The agent's Unix socket that serves SDS to a co-located Envoy.
const DEFAULT_SDS_SOCKET: &str = "/var/run/palisade/agent.sock";

/// The files the agent writes in the certificate directory.
const CERTIFICATE_FILE: &str = "svid.pem";
const KEY_FILE: &str = "svid-key.pem";
const BUNDLE_FILE: &str = "bundle.pem";

/// How often gRPC re-reads those files.
const REFRESH_INTERVAL: &str = "60s";

/// The region of every locality the control plane names.
const REGION: &str = "palisade";

/// Flags of `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The client the bootstrap is for.
    #[arg(value_enum)]
    client: Client,

    /// The workload the client acts for.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_workload)]
    workload: Workload,

    /// The control plane's xDS address [default: the host and port of
    /// --server].
    #[arg(long, value_name = "HOST:PORT")]
    xds_server: Option<String>,

    /// The directory with the workload's certificate (svid.pem), key
    /// (svid-key.pem) and trust bundle (bundle.pem) [default:
    /// /var/run/palisade/NS/NAME].
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,

    /// Talks to the control plane in plaintext, for a development server
    /// (implied when --server is http:// and --xds-server is not given).
    #[arg(long)]
    insecure: bool,

    /// The agent's SDS socket (Envoy only).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SDS_SOCKET)]
    sds_socket: PathBuf,
}

/// The kind of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Client {
    /// An Envoy sidecar: certificates over SDS from the host agent.
    Envoy,
    /// A proxyless gRPC application: certificates from files the agent
    /// writes.
    Grpc,
}

/// `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Workload {
    namespace: String,
    name: String,
}

/// Why a bootstrap cannot be written.
#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("no workload {0} exists")]
    NoSuchWorkload(String),

    #[error("the control plane returned a Workload document that does not parse: {0}")]
    BadDocument(String),

    #[error("cannot tell the xDS address from the server URL {0:?}; pass --xds-server HOST:PORT")]
    NoXdsAddress(String),
}

/// Everything a bootstrap is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    workload: Workload,
    /// The workload's Service.
    service: String,
    /// The Node the workload runs on.
    node: String,
    /// `host:port` of the ADS server.
    xds_server: String,
    insecure: bool,
    cert_dir: PathBuf,
    sds_socket: PathBuf,
}

pub async fn run(
    server: &Server,
    connection: &ConnectionArgs,
    args: BootstrapArgs,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(connection)?;
    let (xds_server, insecure) = match &args.xds_server {
        Some(address) => (address.clone(), args.insecure),
        None => (
            xds_address(&settings.server)?,
            args.insecure || settings.is_plaintext(),
        ),
    };
    let (service, node) = workload_placement(server, &args.workload).await?;

    let inputs = Inputs {
        cert_dir: args
            .cert_dir
            .unwrap_or_else(|| default_cert_dir(&args.workload)),
        workload: args.workload,
        service,
        node,
        xds_server,
        insecure,
        sds_socket: args.sds_socket,
    };
    let bootstrap = match args.client {
        Client::Envoy => envoy::bootstrap(&inputs),
        Client::Grpc => grpc::bootstrap(&inputs),
    };

    output::print(&format!("{}\n", serde_json::to_string_pretty(&bootstrap)?))?;
    Ok(ExitCode::SUCCESS)
}

/// The workload's Service and Node, read from the admin API.
async fn workload_placement(
    server: &Server,
    workload: &Workload,
) -> anyhow::Result<(String, String)> {
    let request = GetRequest {
        kind: Kind::Workload.to_string(),
        namespace: workload.namespace.clone(),
        name: workload.name.clone(),
    };

    let mut admin = server.connect().await?;
    let resource = match admin.get(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Err(BootstrapError::NoSuchWorkload(workload.to_string()).into());
        }
        Err(status) => return Err(RpcError::of("get")(status).into()),
    };

    let document = Document::from_json(&resource.document)
        .map_err(|error| BootstrapError::BadDocument(error.to_string()))?;
    match document.spec {
        Spec::Workload(spec) => Ok((spec.service, spec.node)),
        _ => Err(BootstrapError::BadDocument("not a Workload".to_owned()).into()),
    }
}

/// `host:port` of an admin URL such as `https://cp.example:7443/`, with the
/// scheme's port when it names none.
fn xds_address(url: &str) -> Result<String, BootstrapError> {
    let unusable = || BootstrapError::NoXdsAddress(url.to_owned());
    let (rest, default_port) = match url.split_once("://") {
        Some(("https", rest)) => (rest, 443),
        Some(("http", rest)) => (rest, 80),
        _ => return Err(unusable()),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(unusable());
    }

    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    Ok(match has_port {
        true => authority.to_owned(),
        false => format!("{authority}:{default_port}"),
    })
}

fn default_cert_dir(workload: &Workload) -> PathBuf {
    Path::new(DEFAULT_CERT_ROOT)
        .join(&workload.namespace)
        .join(&workload.name)
}

fn parse_workload(text: &str) -> Result<Workload, String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Inputs {
    /// The node both kinds of client present: the workload as its id, the
    /// Service as its cluster, the Node as its zone (gRPC-js refuses a node
    /// without a locality).
    fn node(&self, client: Client) -> Value {
        let flavor = match client {
            Client::Envoy => "envoy",
            Client::Grpc => "grpc",
        };
        json!({
            "id": self.workload.to_string(),
            "cluster": format!("{}.{}", self.service, self.workload.namespace),
            "locality": {"region": REGION, "zone": self.node},
            "metadata": {
                "namespace": self.workload.namespace,
                "workload": self.workload.name,
                "service": self.service,
                "flavor": flavor,
            },
        })
    }

    /// A file in the certificate directory, as text for the JSON.
    fn file(&self, name: &str) -> String {
        self.cert_dir.join(name).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn inputs() -> Inputs {
        Inputs {
            workload: parse_workload("shop/orders-1").unwrap(),
            service: "orders".into(),
            node: "web-1".into(),
            xds_server: "cp.example:7443".into(),
            insecure: false,
            cert_dir: PathBuf::from("/run/certs"),
            sds_socket: PathBuf::from(DEFAULT_SDS_SOCKET),
        }
    }

    #[test]
    fn workload_is_namespace_slash_name() {
        assert_eq!(
            parse_workload("shop/orders-1"),
            Ok(Workload {
                namespace: "shop".into(),
                name: "orders-1".into()
            })
        );
        for bad in ["orders-1", "/orders-1", "shop/", "a/b/c"] {
            assert!(parse_workload(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xds_address_is_the_servers_host_and_port() {
        assert_eq!(
            xds_address("https://cp.example:7443").unwrap(),
            "cp.example:7443"
        );
        assert_eq!(
            xds_address("http://127.0.0.1:7443/").unwrap(),
            "127.0.0.1:7443"
        );
        assert_eq!(xds_address("https://[::1]:7443").unwrap(), "[::1]:7443");
        assert_eq!(xds_address("https://cp.example").unwrap(), "cp.example:443");
        assert_eq!(xds_address("https://[::1]").unwrap(), "[::1]:443");
        assert!(xds_address("cp.example:7443").is_err());
    }

    #[test]
    fn cert_dir_defaults_under_the_agents_run_directory() {
        let workload = parse_workload("shop/orders-1").unwrap();

        assert_eq!(
            default_cert_dir(&workload),
            PathBuf::from("/var/run/palisade/shop/orders-1")
        );
    }

    #[test]
    fn node_names_the_workload_its_service_and_a_locality() {
        let node = inputs().node(Client::Grpc);

        assert_eq!(node["id"], "shop/orders-1");
        assert_eq!(node["cluster"], "orders.shop");
        assert_eq!(node["locality"]["region"], "palisade");
        assert_eq!(node["locality"]["zone"], "web-1");
        assert_eq!(node["metadata"]["flavor"], "grpc");
    }
}
