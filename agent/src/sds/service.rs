//! The `SecretDiscoveryService` itself: identifies the caller of every call
//! and hands each stream to its protocol's loop, in a span of its own.

use std::pin::Pin;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryService;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use super::caller::Caller;
use super::feed::Feed;
use super::secrets::{self, Names};
use super::{delta, sotw};
use crate::identity::svid::Certificates;
use crate::state::State;

/// How many responses wait for a slow client; the loop then waits too, and
/// meanwhile only the newest secrets are kept.
const RESPONSE_BUFFER: usize = 4;

type ResponseStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// SDS for the workloads of this host.
#[derive(Debug)]
pub struct SecretService {
    state: State,
    certificates: Certificates,
    shutdown: watch::Receiver<bool>,
}

impl SecretService {
    pub fn new(state: State, certificates: Certificates, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            state,
            certificates,
            shutdown,
        }
    }

    /// The caller of `request` and its workload, or why it gets nothing.
    fn identify<T>(&self, request: &Request<T>) -> Result<Feed, Status> {
        let caller = Caller::from_connection(request.extensions().get::<UdsConnectInfo>());
        let bound = caller.and_then(|caller| {
            let workload = caller.workload(self.state.current().as_deref())?;
            Ok((caller, workload))
        });

        match bound {
            Ok((caller, workload)) => Ok(Feed {
                caller,
                workload,
                state: self.state.watch(),
                certificates: self.certificates.watch(),
                shutdown: self.shutdown.clone(),
            }),
            Err(error) => {
                tracing::warn!(%error, "SDS caller refused");
                Err(Status::permission_denied(error.to_string()))
            }
        }
    }
}

/// The span a stream runs in.
fn stream_span(feed: &Feed, protocol: &'static str) -> tracing::Span {
    let caller = &feed.caller;
    tracing::info_span!(
        "sds-stream",
        workload = %feed.workload,
        uid = caller.uid,
        pid = caller.pid,
        protocol
    )
}

#[tonic::async_trait]
impl SecretDiscoveryService for SecretService {
    type StreamSecretsStream = ResponseStream<DiscoveryResponse>;

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let feed = self.identify(&request)?;
        let span = stream_span(&feed, "sotw");
        span.in_scope(|| tracing::info!("SDS stream opened"));

        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(sotw::run(feed, request.into_inner(), tx).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type DeltaSecretsStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn delta_secrets(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        let feed = self.identify(&request)?;
        let span = stream_span(&feed, "delta");
        span.in_scope(|| tracing::info!("SDS stream opened"));

        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(delta::run(feed, request.into_inner(), tx).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let feed = self.identify(&request)?;
        let request = request.into_inner();
        sotw::check_type(&request.type_url)?;

        let secrets = feed.secrets(&Names::of_request(&request.resource_names));
        tracing::info!(
            workload = %feed.workload,
            uid = feed.caller.uid,
            pid = feed.caller.pid,
            version = %secrets::version_of(&secrets),
            "SDS fetch answered"
        );
        Ok(Response::new(sotw::response(&secrets, String::new())))
    }
}
