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
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
}

/// A node as an xDS client names itself.
pub fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        user_agent_name: "palisade-test".into(),
        ..Default::default()
    }
}

/// A state-of-the-world stream.
pub struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    /// Opens a stream whose first request is `first`.
    pub async fn open(channel: Channel, first: DiscoveryRequest) -> Result<Sotw, tonic::Status> {
        let (tx, requests) = mpsc::channel(16);
        tx.send(first).await.expect("queueing the first request");
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(requests))
            .await?
            .into_inner();
        Ok(Sotw { tx, rx })
    }

    pub async fn send(&self, request: DiscoveryRequest) {
        self.tx.send(request).await.expect("the stream is open");
    }

    /// The next response, or an error status, within [`EXPECT`].
    pub async fn recv(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        match tokio::time::timeout(EXPECT, self.rx.message()).await {
            Ok(Ok(Some(response))) => Ok(response),
            Ok(Ok(None)) => Err(tonic::Status::cancelled("stream ended")),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("no response within {EXPECT:?}"),
        }
    }

    /// Whether a response arrives within [`QUIET`].
    pub async fn quiet(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.rx.message())
            .await
            .is_err()
    }
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

/// The NACK of `response`, with the previous accepted version.
pub fn sotw_nack(response: &DiscoveryResponse, previous: &str, error: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: previous.into(),
        response_nonce: response.nonce.clone(),
        type_url: response.type_url.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: error.into(),
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// A delta stream.
pub struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    pub async fn open(
        channel: Channel,
        first: DeltaDiscoveryRequest,
    ) -> Result<Delta, tonic::Status> {
        let (tx, requests) = mpsc::channel(16);
        tx.send(first).await.expect("queueing the first request");
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let rx = client
            .delta_aggregated_resources(ReceiverStream::new(requests))
            .await?
            .into_inner();
        Ok(Delta { tx, rx })
    }

    pub async fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx.send(request).await.expect("the stream is open");
    }

    pub async fn recv(&mut self) -> Result<DeltaDiscoveryResponse, tonic::Status> {
        match tokio::time::timeout(EXPECT, self.rx.message()).await {
            Ok(Ok(Some(response))) => Ok(response),
            Ok(Ok(None)) => Err(tonic::Status::cancelled("stream ended")),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("no response within {EXPECT:?}"),
        }
    }

    pub async fn quiet(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.rx.message())
            .await
            .is_err()
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

/// The names in a delta response.
pub fn names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(|r| r.name.clone()).collect()
}

/// Sends `bytes` as the first message of an ADS stream, as a client that
/// speaks something else would, and returns the status the server ends the
/// call with.
pub async fn send_garbage(channel: Channel, bytes: Vec<u8>) -> tonic::Status {
    use tonic::codegen::http::uri::PathAndQuery;

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("the channel is ready");
    let path = PathAndQuery::from_static(
        "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
    );
    let requests = tokio_stream::once(bytes);
    let outcome = grpc
        .streaming(tonic::Request::new(requests), path, raw::RawCodec)
        .await;
    match outcome {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            match tokio::time::timeout(EXPECT, stream.message()).await {
                Ok(Err(status)) => status,
                other => panic!("garbage was answered: {other:?}"),
            }
        }
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
