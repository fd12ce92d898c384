//! An SDS client on the agent's Unix socket, speaking as an Envoy on the
//! same host does: the node of its bootstrap (`palisadectl bootstrap
//! envoy`), one state-of-the-world stream per secret (`default`,
//! `ROOTCA`), and the secrets decoded to PEM.
//!
//! The agent identifies the caller by the kernel's credentials for the
//! connection, so a client made here speaks for this test process.

use std::collections::BTreeMap;
use std::path::Path;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::{DataSource, Locality, Node};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};
use hyper_util::rt::TokioIo;
use prost::Message as _;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::xds::{Delta, Sotw};

/// The workload's certificate chain and key.
pub const SVID: &str = "default";
/// The trust bundle.
pub const BUNDLE: &str = "ROOTCA";
/// The type of every SDS resource.
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The SDS client type.
pub type Client = SecretDiscoveryServiceClient<Channel>;

/// A client over the Unix socket at `path`.
pub async fn connect(path: &Path) -> Client {
    let path = path.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    });
    let channel = Endpoint::from_static("http://agent.sock")
        .connect_with_connector(connector)
        .await
        .expect("connecting to the SDS socket");
    SecretDiscoveryServiceClient::new(channel)
}

/// Where a workload runs: what Envoy's bootstrap names its node after.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'a> {
    pub namespace: &'a str,
    pub workload: &'a str,
    pub service: &'a str,
    pub node: &'a str,
}

/// The node Envoy's bootstrap gives the sidecar of `at`.
pub fn envoy_node(at: Placement<'_>) -> Node {
    let text = |text: &str| Value {
        kind: Some(value::Kind::StringValue(text.to_owned())),
    };
    let metadata = [
        ("namespace", at.namespace),
        ("workload", at.workload),
        ("service", at.service),
        ("flavor", "envoy"),
    ];
    Node {
        id: format!("{}/{}", at.namespace, at.workload),
        cluster: format!("{}.{}", at.service, at.namespace),
        locality: Some(Locality {
            region: "palisade".into(),
            zone: at.node.into(),
            ..Default::default()
        }),
        metadata: Some(Struct {
            fields: metadata.map(|(k, v)| (k.to_owned(), text(v))).into(),
        }),
        user_agent_name: "envoy".into(),
        ..Default::default()
    }
}

/// The first request of a state-of-the-world stream for `names`.
pub fn request(node: &Node, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(node.clone()),
        type_url: SECRET_TYPE.into(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

/// The first request of a delta stream subscribing to `names`.
pub fn delta_request(node: &Node, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node.clone()),
        type_url: SECRET_TYPE.into(),
        resource_names_subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

/// Opens a `StreamSecrets` stream whose first request is `first`.
pub async fn stream(client: &mut Client, first: DiscoveryRequest) -> Result<Sotw, tonic::Status> {
    Sotw::start(first, async |requests| {
        client.stream_secrets(requests).await
    })
    .await
}

/// Opens a `DeltaSecrets` stream whose first request is `first`.
pub async fn delta(
    client: &mut Client,
    first: DeltaDiscoveryRequest,
) -> Result<Delta, tonic::Status> {
    Delta::start(first, async |requests| client.delta_secrets(requests).await).await
}

/// The secrets of a response, by name.
pub fn secrets(response: &DiscoveryResponse) -> BTreeMap<String, Secret> {
    decode_all(&response.resources)
}

/// `resources`, each a `Secret`, by name.
pub fn decode_all<'a>(resources: impl IntoIterator<Item = &'a Any>) -> BTreeMap<String, Secret> {
    let decode = |any: &Any| {
        assert_eq!(any.type_url, SECRET_TYPE, "a resource of another type");
        let secret = Secret::decode(any.value.as_slice()).expect("a Secret");
        (secret.name.clone(), secret)
    };
    resources.into_iter().map(decode).collect()
}

/// The chain and private key of a TLS certificate secret, as PEM.
pub fn chain_and_key(secret: &Secret) -> (String, String) {
    let Some(secret::Type::TlsCertificate(tls)) = &secret.r#type else {
        panic!("{} is not a TLS certificate", secret.name);
    };
    (
        inline(tls.certificate_chain.as_ref()),
        inline(tls.private_key.as_ref()),
    )
}

/// The CA certificates of a validation context secret, as PEM.
pub fn trusted_ca(secret: &Secret) -> String {
    let Some(secret::Type::ValidationContext(context)) = &secret.r#type else {
        panic!("{} is not a validation context", secret.name);
    };
    inline(context.trusted_ca.as_ref())
}

fn inline(source: Option<&DataSource>) -> String {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::InlineString(text)) => text.clone(),
        other => panic!("not an inline string: {other:?}"),
    }
}
