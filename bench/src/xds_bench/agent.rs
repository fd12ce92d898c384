//! One simulated agent: a node's own mTLS connection and delta ADS stream,
//! subscribed to every agent type with `*`, acknowledging every response,
//! and reporting what it receives as [`Event`]s.
//!
//! When a stream ends the agent waits to be told to reconnect, then opens a
//! new connection and stream that resume from what it holds
//! (`initial_resource_versions`). A connection or stream that fails before
//! its first answers is retried after a short pause.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use palisade_control_plane::xds::agent::TYPES;
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tonic::transport::Endpoint;

use super::events::{Event, Synced, Update};

/// The largest response an agent accepts.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Tries at a stream that fails before its first answers.
const MAX_ATTEMPTS: u32 = 20;
/// The pause after the first failed try; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between tries.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// The user agent the simulated agents claim.
const USER_AGENT: &str = "palisade-bench";

/// Who an agent is and where it connects.
pub struct AgentSpec {
    /// Its position in the fleet, which events carry.
    pub index: usize,
    /// Its node's name, which is also its `node.id`.
    pub node: String,
    /// The control plane, presenting the node's certificate.
    pub endpoint: Endpoint,
}

/// What an agent holds: by type (in [`TYPES`] order), name to version.
type Held = [BTreeMap<String, String>; TYPES.len()];

/// The responses of a stream.
type Inbound = tonic::Streaming<DeltaDiscoveryResponse>;

/// Why a stream failed.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("connecting: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("the stream failed: {0}")]
    Status(#[from] tonic::Status),
    #[error("a response of a type not asked for: {0}")]
    UnaskedType(String),
    #[error("the request stream closed")]
    RequestsClosed,
}

/// How a stream ended.
struct Ended {
    synced: bool,
    error: String,
}

/// What an agent shares with the swarm that runs it.
pub struct Links {
    /// Where the agent reports.
    pub events: mpsc::UnboundedSender<Event>,
    /// Limits how many agents make their first connection at once.
    pub gate: Arc<Semaphore>,
    /// Changes when agents whose stream ended should reconnect.
    pub reconnect: watch::Receiver<u64>,
}

/// Runs one agent until its task is aborted.
pub async fn run(spec: AgentSpec, mut links: Links) {
    let mut held: Held = Default::default();
    let mut permit = links.gate.clone().acquire_owned().await.ok();
    loop {
        let ended = connect_until_synced(&spec, &mut held, &links.events, &mut permit).await;
        permit = None;
        let event = Event::Ended {
            agent: spec.index,
            synced: ended.synced,
            error: ended.error,
        };
        if links.events.send(event).is_err() || links.reconnect.changed().await.is_err() {
            return;
        }
    }
}

/// Opens streams until one syncs, then follows it until it ends.
async fn connect_until_synced(
    spec: &AgentSpec,
    held: &mut Held,
    events: &mpsc::UnboundedSender<Event>,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Ended {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        let mut stream = Stream::new(spec.index, attempt);
        let ended = stream.follow(spec, held, events, permit).await;
        if ended.synced || attempt >= MAX_ATTEMPTS {
            return ended;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
        attempt += 1;
    }
}

/// Connects and opens a stream subscribed to every type, resuming from
/// what is held; returns where requests go and where responses come from.
async fn open(
    spec: &AgentSpec,
    held: &Held,
) -> Result<(mpsc::Sender<DeltaDiscoveryRequest>, Inbound), StreamError> {
    let channel = spec.endpoint.connect().await?;
    let (requests, queued) = mpsc::channel(2 * TYPES.len());
    for (index, type_url) in TYPES.iter().enumerate() {
        let node = (index == 0).then_some(spec.node.as_str());
        let _ = requests.try_send(subscription(node, type_url, &held[index]));
    }

    let outbound = futures_util::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|request| (request, queued))
    });
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    let inbound = client
        .delta_aggregated_resources(outbound)
        .await?
        .into_inner();
    Ok((requests, inbound))
}

/// One stream's progress towards its first answer of every type.
struct Stream {
    agent: usize,
    attempt: u32,
    answered: [bool; TYPES.len()],
    first_response: Option<Instant>,
    resources: u32,
    unchanged: u32,
    bytes: usize,
    synced: bool,
}

impl Stream {
    fn new(agent: usize, attempt: u32) -> Self {
        Self {
            agent,
            attempt,
            answered: [false; TYPES.len()],
            first_response: None,
            resources: 0,
            unchanged: 0,
            bytes: 0,
            synced: false,
        }
    }

    /// Connects, subscribes and acknowledges until the stream ends.
    async fn follow(
        &mut self,
        spec: &AgentSpec,
        held: &mut Held,
        events: &mpsc::UnboundedSender<Event>,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Ended {
        let error = match self.serve(spec, held, events, permit).await {
            Ok(()) => "the stream ended".to_owned(),
            Err(error) => error.to_string(),
        };
        Ended {
            synced: self.synced,
            error,
        }
    }

    async fn serve(
        &mut self,
        spec: &AgentSpec,
        held: &mut Held,
        events: &mpsc::UnboundedSender<Event>,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), StreamError> {
        let (requests, mut inbound) = open(spec, held).await?;
        while let Some(response) = inbound.message().await? {
            let received = Instant::now();
            let type_index = TYPES
                .iter()
                .position(|t| *t == response.type_url)
                .ok_or_else(|| StreamError::UnaskedType(response.type_url.clone()))?;
            let unchanged = take(&mut held[type_index], &response);
            requests
                .send(ack(&response))
                .await
                .map_err(|_| StreamError::RequestsClosed)?;

            let update = Update {
                agent: self.agent,
                type_index,
                received,
                acked: Instant::now(),
                resources: response.resources.len() as u32,
                unchanged,
                bytes: response.encoded_len(),
            };
            self.report(update, events, permit);
        }
        Ok(())
    }

    /// Reports one response: while syncing it counts towards [`Synced`],
    /// after that it is an [`Update`] of its own.
    fn report(
        &mut self,
        update: Update,
        events: &mpsc::UnboundedSender<Event>,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) {
        if self.synced {
            let _ = events.send(Event::Update(update));
            return;
        }

        self.first_response.get_or_insert(update.received);
        self.answered[update.type_index] = true;
        self.resources += update.resources;
        self.unchanged += update.unchanged;
        self.bytes += update.bytes;
        if self.answered.iter().all(|answered| *answered) {
            self.synced = true;
            *permit = None;
            let _ = events.send(Event::Synced(Synced {
                agent: self.agent,
                first_response: self.first_response.unwrap_or(update.received),
                acked: update.acked,
                resources: self.resources,
                unchanged: self.unchanged,
                bytes: self.bytes,
                attempts: self.attempt,
            }));
        }
    }
}

/// The first request of a type: everything (`*`), resuming from `held`.
/// Only the stream's first request carries the node.
fn subscription(
    node: Option<&str>,
    type_url: &str,
    held: &BTreeMap<String, String>,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: node.map(|id| Node {
            id: id.into(),
            user_agent_name: USER_AGENT.into(),
            ..Default::default()
        }),
        type_url: type_url.into(),
        resource_names_subscribe: vec!["*".into()],
        initial_resource_versions: held.iter().map(|(n, v)| (n.clone(), v.clone())).collect(),
        ..Default::default()
    }
}

/// The acknowledgement of `response`.
fn ack(response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        ..Default::default()
    }
}

/// Takes a response into what is held; returns how many of its resources
/// were already held at the same version.
fn take(held: &mut BTreeMap<String, String>, response: &DeltaDiscoveryResponse) -> u32 {
    let mut unchanged = 0;
    for resource in &response.resources {
        let previous = held.insert(resource.name.clone(), resource.version.clone());
        if previous.as_deref() == Some(resource.version.as_str()) {
            unchanged += 1;
        }
    }
    for name in &response.removed_resources {
        held.remove(name);
    }
    unchanged
}
