//! SDS served on a temporary socket to a tonic client in this process: the
//! caller is this test process, identified by its own uid.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use palisade_proto::xds as pb;
use prost::Message as _;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Streaming};

use super::*;
use crate::identity::svid::{Svid, WorkloadCertificates};
use crate::identity::testing::{ca_pem, svid};
use crate::state::Snapshot;

const WORKLOAD: &str = "shop/orders-1";
const SPIFFE_ID: &str = "spiffe://example.org/ns/shop/sa/orders";
const WAIT: Duration = Duration::from_secs(10);

/// The uid this test process runs as, which the server sees as the caller's.
fn own_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn workload(selectors: pb::Selectors) -> Snapshot {
    let workload = pb::Workload {
        namespace: "shop".into(),
        name: "orders-1".into(),
        spiffe_id: SPIFFE_ID.into(),
        selectors: Some(selectors),
        ..Default::default()
    };
    Snapshot {
        workloads: [(WORKLOAD.to_owned(), workload)].into(),
        ..Snapshot::default()
    }
}

fn by_uid(uid: u32) -> pb::Selectors {
    pb::Selectors {
        unix_uid: Some(uid),
        ..Default::default()
    }
}

fn certificates(svid: &Arc<Svid>, bundle_pem: &str) -> WorkloadCertificates {
    WorkloadCertificates {
        by_workload: [(WORKLOAD.to_owned(), svid.clone())].into(),
        bundle_pem: bundle_pem.to_owned(),
    }
}

/// A server on a temporary socket, with what it serves from.
struct Harness {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    state: State,
    certificates: Certificates,
    svid: Arc<Svid>,
    bundle_pem: String,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), SdsError>>,
}

impl Harness {
    async fn start(snapshot: Snapshot) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let state = State::new();
        state.apply(snapshot);
        let svid = Arc::new(svid(SPIFFE_ID, 0, 4_000_000_000));
        let bundle_pem = ca_pem();
        let certificates = Certificates::default();
        certificates.publish(self::certificates(&svid, &bundle_pem));

        let (stop, shutdown) = watch::channel(false);
        let server = SdsServer::bind(&socket).unwrap();
        let server = tokio::spawn(server.serve(state.clone(), certificates.clone(), shutdown));
        Self {
            _dir: dir,
            socket,
            state,
            certificates,
            svid,
            bundle_pem,
            stop,
            server,
        }
    }

    /// A renewed SVID, published.
    fn renew(&self) -> Arc<Svid> {
        let renewed = Arc::new(svid(SPIFFE_ID, 0, 4_000_000_001));
        self.certificates
            .publish(certificates(&renewed, &self.bundle_pem));
        renewed
    }

    async fn client(&self) -> SecretDiscoveryServiceClient<Channel> {
        SecretDiscoveryServiceClient::new(connect(&self.socket).await)
    }
}

/// A channel over the Unix socket at `path`.
async fn connect(path: &Path) -> Channel {
    let path = path.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .unwrap()
}

fn request(names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: secrets::type_url(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// Opens a state-of-the-world stream; the sender sends its next requests.
async fn open(
    client: &mut SecretDiscoveryServiceClient<Channel>,
    first: DiscoveryRequest,
) -> Result<(mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>), tonic::Status> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(first).await.unwrap();
    let response = client.stream_secrets(ReceiverStream::new(rx)).await?;
    Ok((tx, response.into_inner()))
}

async fn next<T>(stream: &mut Streaming<T>) -> Result<T, tonic::Status> {
    let message = tokio::time::timeout(WAIT, stream.message()).await;
    message
        .expect("a response in time")?
        .ok_or_else(|| panic!("the stream ended"))
}

fn decode(response: &DiscoveryResponse) -> Vec<Secret> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, secrets::type_url());
            Secret::decode(any.value.as_slice()).unwrap()
        })
        .collect()
}

fn inline(source: Option<&envoy_types::pb::envoy::config::core::v3::DataSource>) -> &str {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::InlineString(text)) => text,
        other => panic!("not an inline string: {other:?}"),
    }
}

/// The chain and key of a `default` secret.
fn chain_and_key(secret: &Secret) -> (&str, &str) {
    assert_eq!(secret.name, SVID_SECRET);
    let Some(secret::Type::TlsCertificate(tls)) = &secret.r#type else {
        panic!("default is not a TLS certificate");
    };
    (
        inline(tls.certificate_chain.as_ref()),
        inline(tls.private_key.as_ref()),
    )
}

fn trusted_ca(secret: &Secret) -> &str {
    assert_eq!(secret.name, BUNDLE_SECRET);
    let Some(secret::Type::ValidationContext(context)) = &secret.r#type else {
        panic!("ROOTCA is not a validation context");
    };
    inline(context.trusted_ca.as_ref())
}

#[tokio::test]
async fn default_and_rootca_reach_the_workload_that_selects_the_caller() {
    let harness = Harness::start(workload(by_uid(own_uid()))).await;
    let mut client = harness.client().await;

    let (_tx, mut stream) = open(&mut client, request(&[SVID_SECRET, BUNDLE_SECRET], ""))
        .await
        .unwrap();
    let response = next(&mut stream).await.unwrap();

    let secrets = decode(&response);
    assert_eq!(secrets.len(), 2);
    assert_eq!(trusted_ca(&secrets[0]), harness.bundle_pem);
    let (chain, key) = chain_and_key(&secrets[1]);
    assert_eq!(chain, harness.svid.chain_pem);
    assert_eq!(key, harness.svid.key_pem.expose());
    assert!(!response.version_info.is_empty());
    assert!(!response.nonce.is_empty());
}

#[tokio::test]
async fn fetch_answers_once_with_what_exists() {
    let harness = Harness::start(workload(by_uid(own_uid()))).await;
    let mut client = harness.client().await;

    let response = client
        .fetch_secrets(request(&[BUNDLE_SECRET, "unknown"], ""))
        .await
        .unwrap()
        .into_inner();

    let secrets = decode(&response);
    assert_eq!(secrets.len(), 1);
    assert_eq!(trusted_ca(&secrets[0]), harness.bundle_pem);
}

#[tokio::test]
async fn the_process_path_selects_the_caller() {
    let path = std::env::current_exe().unwrap();
    let selectors = pb::Selectors {
        unix_uid: Some(own_uid()),
        process_path: path.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let harness = Harness::start(workload(selectors)).await;
    let mut client = harness.client().await;

    let response = client.fetch_secrets(request(&[SVID_SECRET], "")).await;

    assert_eq!(decode(&response.unwrap().into_inner()).len(), 1);
}

#[tokio::test]
async fn a_caller_that_no_workload_selects_is_refused() {
    let harness = Harness::start(workload(by_uid(own_uid().wrapping_add(1)))).await;
    let mut client = harness.client().await;

    let streamed = open(&mut client, request(&[SVID_SECRET], "")).await;
    let fetched = client.fetch_secrets(request(&[SVID_SECRET], "")).await;

    let status = streamed.expect_err("the stream is refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("no local workload selects the caller")
    );
    assert_eq!(fetched.unwrap_err().code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_renewal_pushes_a_new_version_on_the_open_stream() {
    let harness = Harness::start(workload(by_uid(own_uid()))).await;
    let mut client = harness.client().await;
    let (tx, mut stream) = open(&mut client, request(&[SVID_SECRET], ""))
        .await
        .unwrap();
    let first = next(&mut stream).await.unwrap();
    let mut ack = request(&[SVID_SECRET], &first.nonce);
    ack.version_info = first.version_info.clone();
    tx.send(ack).await.unwrap();

    let renewed = harness.renew();
    let second = next(&mut stream).await.unwrap();

    assert_ne!(second.version_info, first.version_info);
    assert_ne!(second.nonce, first.nonce);
    let secrets = decode(&second);
    let (chain, key) = chain_and_key(&secrets[0]);
    assert_eq!(chain, renewed.chain_pem);
    assert_eq!(key, renewed.key_pem.expose());
}

#[tokio::test]
async fn a_caller_whose_workload_goes_away_loses_its_stream() {
    let harness = Harness::start(workload(by_uid(own_uid()))).await;
    let mut client = harness.client().await;
    let (_tx, mut stream) = open(&mut client, request(&[], "")).await.unwrap();
    next(&mut stream).await.unwrap();

    harness.state.apply(Snapshot::default());
    let ended = next(&mut stream).await;

    assert_eq!(ended.unwrap_err().code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_delta_stream_sends_only_what_changed() {
    let harness = Harness::start(workload(by_uid(own_uid()))).await;
    let mut client = harness.client().await;
    let (tx, rx) = mpsc::channel(4);
    let subscribe = DeltaDiscoveryRequest {
        type_url: secrets::type_url(),
        ..Default::default()
    };
    tx.send(subscribe).await.unwrap();
    let mut stream = client
        .delta_secrets(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    let first: DeltaDiscoveryResponse = next(&mut stream).await.unwrap();
    harness.renew();
    let second = next(&mut stream).await.unwrap();

    let names = |r: &DeltaDiscoveryResponse| -> Vec<String> {
        r.resources.iter().map(|r| r.name.clone()).collect()
    };
    assert_eq!(names(&first), [BUNDLE_SECRET, SVID_SECRET]);
    assert_eq!(names(&second), [SVID_SECRET]);
    assert_ne!(first.resources[1].version, second.resources[0].version);
}

#[tokio::test]
async fn shutdown_ends_streams_and_removes_the_socket() {
    let harness = Harness::start(workload(by_uid(own_uid()))).await;
    let mut client = harness.client().await;
    let (_tx, mut stream) = open(&mut client, request(&[], "")).await.unwrap();
    next(&mut stream).await.unwrap();

    harness.stop.send_replace(true);
    let ended = next(&mut stream).await;

    assert_eq!(ended.unwrap_err().code(), Code::Unavailable);
    drop((stream, client));
    let served = tokio::time::timeout(WAIT, harness.server).await;
    served.expect("the server stops").unwrap().unwrap();
    assert!(!harness.socket.exists());
}
