//! xDS test clients: state-of-the-world and delta ADS streams over a real
//! tonic channel, with timeouts so a test fails instead of hanging.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

pub mod envoy;
pub mod shop;

/// How long a test waits for a response it expects.
pub const EXPECT: Duration = Duration::from_secs(10);
/// How long a test waits to be sure nothing comes.
pub const QUIET: Duration = Duration::from_millis(700);

/// The type URLs of Palisade's agent resources.
pub mod types {
    pub const WORKLOAD: &str = "type.googleapis.com/palisade.xds.v1.Workload";
    pub const AUTHORIZATION: &str = "type.googleapis.com/palisade.xds.v1.Authorization";
    pub const ENDPOINTS: &str = "type.googleapis.com/palisade.xds.v1.Endpoints";
    pub const TRUST_BUNDLE: &str = "type.googleapis.com/palisade.xds.v1.TrustBundle";
    pub const DENY_LIST: &str = "type.googleapis.com/palisade.xds.v1.DenyList";
    pub const JWT_RULES: &str = "type.googleapis.com/palisade.xds.v1.JwtRules";
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

    /// Every type an agent subscribes to.
    pub const AGENT: [&str; 6] = [
        WORKLOAD,
        AUTHORIZATION,
        ENDPOINTS,
        JWT_RULES,
        TRUST_BUNDLE,
        DENY_LIST,
    ];
}

/// A node as an xDS client names itself.
pub fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        user_agent_name: "palisade-test".into(),
        ..Default::default()
    }
}

/// A node as Envoy names itself.
pub fn envoy_node(id: &str) -> Node {
    Node {
        id: id.into(),
        user_agent_name: "envoy".into(),
        ..Default::default()
    }
}

/// An ADS stream that sends `Req` requests and receives `Resp` responses.
pub struct AdsStream<Req, Resp> {
    tx: mpsc::Sender<Req>,
    rx: Streaming<Resp>,
}

/// A state-of-the-world stream.
pub type Sotw = AdsStream<DiscoveryRequest, DiscoveryResponse>;

/// A delta stream.
pub type Delta = AdsStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

/// What the call that opens a stream returns.
type Opened<Resp> = Result<tonic::Response<Streaming<Resp>>, tonic::Status>;

impl<Req, Resp> AdsStream<Req, Resp> {
    /// Queues `first`, then makes the `call` that opens the stream with the
    /// requests.
    pub(crate) async fn start(
        first: Req,
        call: impl AsyncFnOnce(ReceiverStream<Req>) -> Opened<Resp>,
    ) -> Result<Self, tonic::Status> {
        let (tx, requests) = mpsc::channel(16);
        tx.send(first).await.expect("queueing the first request");
        let rx = call(ReceiverStream::new(requests)).await?.into_inner();
        Ok(AdsStream { tx, rx })
    }

    pub async fn send(&self, request: Req) {
        self.tx.send(request).await.expect("the stream is open");
    }

    /// Sends `request` and waits for the next response.
    pub async fn ask(&mut self, request: Req) -> Result<Resp, tonic::Status> {
        self.send(request).await;
        self.recv().await
    }

    /// A sender of requests on the stream, for a task of its own.
    pub fn sender(&self) -> mpsc::Sender<Req> {
        self.tx.clone()
    }

    /// The next response, or an error status, within [`EXPECT`].
    pub async fn recv(&mut self) -> Result<Resp, tonic::Status> {
        match tokio::time::timeout(EXPECT, self.rx.message()).await {
            Ok(Ok(Some(response))) => Ok(response),
            Ok(Ok(None)) => Err(tonic::Status::cancelled("stream ended")),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("no response within {EXPECT:?}"),
        }
    }

    /// Whether no response arrives within [`QUIET`].
    pub async fn quiet(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.rx.message())
            .await
            .is_err()
    }
}

impl Sotw {
    /// Opens a stream whose first request is `first`.
    pub async fn open(channel: Channel, first: DiscoveryRequest) -> Result<Sotw, tonic::Status> {
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        Sotw::start(first, async |requests| {
            client.stream_aggregated_resources(requests).await
        })
        .await
    }
}

/// The status of a stream the server had to refuse, whether it refused to
/// open it or ended it in place of its first answer.
pub async fn refusal<Req, Resp: std::fmt::Debug>(
    opened: Result<AdsStream<Req, Resp>, tonic::Status>,
) -> tonic::Status {
    match opened {
        Ok(mut stream) => stream.recv().await.expect_err("the stream was answered"),
        Err(status) => status,
    }
}

/// Checks that `status` has `code` and a message that contains `says`.
pub fn assert_status(status: &tonic::Status, code: tonic::Code, says: &str) {
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(status.message().contains(says), "{}", status.message());
}

/// A SotW request for `type_url` naming `names`.
pub fn sotw_request(node_id: Option<&str>, type_url: &str, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node_id.map(node),
        type_url: type_url.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

/// The ACK of `response`, keeping the subscription `names`.
pub fn sotw_ack(response: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: response.version_info.clone(),
        response_nonce: response.nonce.clone(),
        type_url: response.type_url.clone(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

/// The NACK of `response`, with the previous accepted version, keeping the
/// subscription `names`.
pub fn sotw_nack(
    response: &DiscoveryResponse,
    names: &[&str],
    previous: &str,
    error: &str,
) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: previous.into(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: error.into(),
            details: Vec::new(),
        }),
        ..sotw_ack(response, names)
    }
}

impl Delta {
    /// Opens a stream whose first request is `first`.
    pub async fn open(
        channel: Channel,
        first: DeltaDiscoveryRequest,
    ) -> Result<Delta, tonic::Status> {
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        Delta::start(first, async |requests| {
            client.delta_aggregated_resources(requests).await
        })
        .await
    }

    /// Acknowledges every response until none comes for [`QUIET`]; returns
    /// what came.
    pub async fn ack_until_quiet(&mut self) -> Vec<DeltaDiscoveryResponse> {
        let mut received = Vec::new();
        while let Ok(message) = tokio::time::timeout(QUIET, self.rx.message()).await {
            let response = message
                .expect("the stream stays healthy")
                .expect("the stream stays open");
            self.send(delta_ack(&response)).await;
            received.push(response);
        }
        received
    }
}

/// A delta request subscribing and unsubscribing names.
pub fn delta_request(
    node_id: Option<&str>,
    type_url: &str,
    subscribe: &[&str],
    unsubscribe: &[&str],
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: node_id.map(node),
        type_url: type_url.into(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

/// The ACK of a delta response.
pub fn delta_ack(response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        ..Default::default()
    }
}

/// The NACK of a delta response.
pub fn delta_nack(response: &DeltaDiscoveryResponse, error: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: error.into(),
            details: Vec::new(),
        }),
        ..delta_ack(response)
    }
}

/// The names in a delta response.
pub fn names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(|r| r.name.clone()).collect()
}

/// The two ADS methods.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    StateOfTheWorld,
    Delta,
}

impl Method {
    fn path(self) -> &'static str {
        match self {
            Method::StateOfTheWorld => {
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
            }
            Method::Delta => {
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
            }
        }
    }
}

/// Sends `bytes` as the first message of an ADS stream, as a client that
/// speaks something else would, and returns the status the server ends the
/// call with.
pub async fn send_garbage(channel: Channel, bytes: Vec<u8>) -> tonic::Status {
    let (_tx, opened) = open_raw(channel, Method::StateOfTheWorld, bytes).await;
    match opened {
        Err(status) => status,
        Ok(mut stream) => next_status(&mut stream).await,
    }
}

/// Opens an ADS stream with `first` (an encoded request), waits for its
/// answer, then sends `then` as the next message and returns the status the
/// server ends the call with.
pub async fn send_after_first(
    channel: Channel,
    method: Method,
    first: Vec<u8>,
    then: Vec<u8>,
) -> tonic::Status {
    let (tx, stream) = open_raw(channel, method, first).await;
    let mut stream = stream.expect("the stream opens");
    let answer = tokio::time::timeout(EXPECT, stream.message()).await;
    assert!(
        matches!(answer, Ok(Ok(Some(_)))),
        "the first request was not answered: {answer:?}"
    );

    tx.send(then).await.expect("the stream is open");
    next_status(&mut stream).await
}

async fn open_raw(
    channel: Channel,
    method: Method,
    first: Vec<u8>,
) -> (
    mpsc::Sender<Vec<u8>>,
    Result<Streaming<Vec<u8>>, tonic::Status>,
) {
    use tonic::codegen::http::uri::PathAndQuery;

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("the channel is ready");
    let (tx, requests) = mpsc::channel(4);
    tx.send(first).await.expect("queueing the first message");
    let path = PathAndQuery::from_static(method.path());
    let request = tonic::Request::new(ReceiverStream::new(requests));
    let opened = grpc.streaming(request, path, raw::RawCodec).await;
    (tx, opened.map(tonic::Response::into_inner))
}

/// The status a stream ends with; panics if it sends anything else.
async fn next_status(stream: &mut Streaming<Vec<u8>>) -> tonic::Status {
    match tokio::time::timeout(EXPECT, stream.message()).await {
        Ok(Err(status)) => status,
        other => panic!("the stream did not end with an error: {other:?}"),
    }
}

/// A codec that moves bytes as they are.
mod raw {
    use bytes::Bytes;
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Clone, Copy, Debug, Default)]
    pub struct RawCodec;

    #[derive(Clone, Copy, Debug, Default)]
    pub struct Raw;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;

        fn encoder(&mut self) -> Raw {
            Raw
        }

        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;

        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
            use bytes::BufMut;
            buf.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;

        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            use bytes::Buf;
            let bytes: Bytes = buf.copy_to_bytes(buf.remaining());
            Ok(Some(bytes.to_vec()))
        }
    }
}
