//! The ADS server: Envoy's aggregated discovery service, state of the world
//! and delta, on the control plane's TLS port.
//!
//! The client certificate decides whom a stream speaks for: a node
//! certificate speaks for that node's agent, a workload's SVID for that
//! workload's proxy. The node id the client claims must agree, and a
//! stream only ever sees its own client's view.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::compile::Compiler;
use super::fleet::{Fleet, Protocol};
use super::stream::{self, Context, Limits};
use super::view::{ClientKey, Flavor};
use super::world::World;
use crate::tls::{Peer, PeerVerifier};

/// Responses queued per stream before the stream waits for its client.
const RESPONSE_BUFFER: usize = 2;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The ADS service.
#[derive(Clone)]
pub struct AdsService {
    compiler: Arc<Mutex<Compiler>>,
    fleet: Arc<Fleet>,
    /// `None` on the plaintext development listener: the claimed node id is
    /// believed.
    peers: Option<PeerVerifier>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
}

impl AdsService {
    pub fn new(
        compiler: Arc<Mutex<Compiler>>,
        fleet: Arc<Fleet>,
        peers: Option<PeerVerifier>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            compiler,
            fleet,
            peers,
            limits,
            shutdown,
        }
    }

    /// Reads the first request, names the client and registers the stream.
    async fn open<T: prost::Message + Default + 'static>(
        &self,
        request: Request<Streaming<T>>,
        node_of: fn(&T) -> Option<&Node>,
        protocol: Protocol,
    ) -> Result<(Context, T, Streaming<T>), Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let chain = request.peer_certs();
        let mut inbound = request.into_inner();

        let first = tokio::time::timeout(self.limits.first_request_timeout, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no request arrived"))?
            .map_err(|status| unreadable_first(&peer, status))?
            .ok_or_else(|| Status::cancelled("the stream closed before its first request"))?;
        let node = node_of(&first).ok_or_else(|| {
            Status::invalid_argument("node: the first request must carry the node")
        })?;

        let claimed = claimed_client(node)?;
        let peer_identity = match &self.peers {
            Some(peers) => Some(
                peers
                    .identify_peer(chain.as_deref().map(Vec::as_slice))
                    .map_err(|e| Status::unauthenticated(e.to_string()))?,
            ),
            None => None,
        };
        let client = {
            let compiler = self.compiler.lock().expect("compiler lock");
            authorize(compiler.world(), claimed, peer_identity.as_ref())?
        };
        let registration = self
            .fleet
            .register(
                client.clone(),
                protocol,
                peer.clone(),
                self.limits.streams_per_client,
            )
            .ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "{client} already has {} streams open",
                    self.limits.streams_per_client
                ))
            })?;
        tracing::info!(%client, %peer, stream = registration.id, ?protocol, "xDS stream opened");

        let context = Context::new(
            client,
            registration,
            self.fleet.clone(),
            self.compiler.clone(),
            self.limits,
            self.shutdown.clone(),
        );
        Ok((context, first, inbound))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (context, first, inbound) = self
            .open(request, |r| r.node.as_ref(), Protocol::StateOfTheWorld)
            .await?;

        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(stream::sotw::run(context, first, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (context, first, inbound) = self
            .open(request, |r| r.node.as_ref(), Protocol::Delta)
            .await?;

        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(stream::delta::run(context, first, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The status that ends a stream whose first message could not be read.
fn unreadable_first(peer: &str, status: Status) -> Status {
    tracing::debug!(%peer, %status, "unreadable first xDS request");
    if status.code() == tonic::Code::OutOfRange {
        return Status::resource_exhausted(format!(
            "the first request is larger than the limit: {}",
            status.message()
        ));
    }
    Status::invalid_argument(format!(
        "the first request could not be read as a discovery request: {}",
        status.message()
    ))
}

/// Checks that the verified peer (`None` on the plaintext development
/// listener, where the claim is believed) may speak for the `claimed`
/// client, which it then is.
fn authorize(world: &World, claimed: ClientKey, peer: Option<&Peer>) -> Result<ClientKey, Status> {
    let Some(peer) = peer else {
        return Ok(claimed);
    };

    if world
        .revocations
        .values()
        .any(|r| r.serials.iter().any(|s| s.serial == peer.serial))
    {
        return Err(Status::permission_denied(format!(
            "certificate {} of {} is revoked",
            peer.serial, peer.spiffe_id
        )));
    }
    check_claim(world, &claimed, &peer.spiffe_id)?;
    Ok(claimed)
}

/// The client a node claims to be: `<namespace>/<workload>` for a proxy,
/// the node's name for an agent.
fn claimed_client(node: &Node) -> Result<ClientKey, Status> {
    if node.id.is_empty() || node.id.len() > 253 {
        return Err(Status::invalid_argument(
            "node.id: must be 1 to 253 characters",
        ));
    }
    match node.id.split_once('/') {
        Some((namespace, workload)) => {
            let flavor = if node.user_agent_name == "envoy" {
                Flavor::Envoy
            } else {
                Flavor::Grpc
            };
            Ok(ClientKey::Proxy {
                workload: (namespace.to_owned(), workload.to_owned()),
                flavor,
            })
        }
        None => Ok(ClientKey::Agent(node.id.clone())),
    }
}

/// Checks that the certificate's SPIFFE ID may speak for the claimed client.
fn check_claim(world: &World, claimed: &ClientKey, spiffe_id: &str) -> Result<(), Status> {
    let mismatch = |what: String| {
        Status::permission_denied(format!(
            "node.id claims {what}, but the certificate is {spiffe_id}"
        ))
    };
    match claimed {
        ClientKey::Agent(node) => {
            let expected = palisade_model::node_spiffe_id(&world.trust_domain, node);
            if expected != spiffe_id {
                return Err(mismatch(format!("node {node}")));
            }
            check_not_revoked(world, node)
        }
        ClientKey::Proxy { workload, .. } => {
            let name = format!("workload {}/{}", workload.0, workload.1);
            let spec = world
                .workloads
                .get(workload)
                .ok_or_else(|| Status::not_found(format!("{name} does not exist")))?;
            let service = (workload.0.clone(), spec.service.clone());
            if world.service_identity(&service).as_deref() != Some(spiffe_id) {
                return Err(mismatch(name));
            }
            check_not_revoked(world, &spec.node)
        }
    }
}

fn check_not_revoked(world: &World, node: &str) -> Result<(), Status> {
    match world.revocations.get(node) {
        Some(_) => Err(Status::permission_denied(format!("node {node} is revoked"))),
        None => Ok(()),
    }
}
