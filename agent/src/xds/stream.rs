//! One delta ADS stream: subscribe to every agent type with the versions
//! held, apply the first answer of every type as one change, then each
//! response as it comes, answering every one with an ACK or a NACK.
//!
//! A change that touches several types comes as a group of responses, one
//! per type, sent back to back; every response but the group's last says
//! in `system_version_info` how many more follow (`17+2`, `17+1`, `17`).
//! Nothing of a group is applied before its last response arrives: the
//! group, with every response that already arrived behind it, is applied
//! in one step, so workloads, policies and endpoints of one revision are
//! never enforced half old and half new. A group cut short by a broken
//! stream is dropped unanswered; the next stream resumes from what the
//! agent holds and is sent it again.

use std::collections::BTreeSet;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Status, Streaming};

use super::{Answer, Client, Resources, XdsError};
use crate::control::backoff::stopped;
use crate::control::{TlsMaterial, describe_status};
use crate::identity::unix_now;
use crate::state::types;

/// The largest response accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Requests queued for the control plane.
const REQUEST_QUEUE: usize = 64;
/// How long a closing stream may take to end after the agent's last word.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The gRPC code of a rejection.
const INVALID_ARGUMENT: i32 = 3;
/// The most responses applied as one change, unless a group needs more.
const MAX_BATCH: usize = 64;
/// How long the rest of a group may take once one of its responses came.
const GROUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a stream ended, and whether it had synced first.
#[derive(Debug)]
pub struct Ended {
    /// Why.
    pub reason: EndReason,
    /// Whether every type was answered and applied.
    pub synced: bool,
}

/// Why a stream ended.
#[derive(Debug)]
pub enum EndReason {
    /// The agent is stopping.
    Shutdown,
    /// The node certificate or the bundle changed: reconnect with them.
    MaterialChanged,
    /// The stream could not be opened or broke.
    Failed(XdsError),
}

/// Runs one stream to the address at `index` with `material`.
pub async fn run(
    client: &mut Client,
    index: usize,
    material: &TlsMaterial,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let mut synced = false;
    let reason = serve(client, index, material, shutdown, &mut synced)
        .await
        .unwrap_or_else(EndReason::Failed);
    Ended { reason, synced }
}

async fn serve(
    client: &mut Client,
    index: usize,
    material: &TlsMaterial,
    shutdown: &mut watch::Receiver<bool>,
    synced: &mut bool,
) -> Result<EndReason, XdsError> {
    let addresses = client.control.addresses();
    let address = addresses[index % addresses.len()].uri.clone();
    let (tx, mut responses) = open(client, index, material).await?;
    tracing::info!(%address, node = %client.node, "xDS stream open");

    let mut material_changes = client.control.watch_material();
    material_changes.mark_unchanged();
    let mut initial = InitialSync::default();
    loop {
        // The next response, unless the stream must end or be reopened.
        let response = tokio::select! {
            () = stopped(shutdown) => return Ok(EndReason::Shutdown),
            changed = material_changes.changed() => {
                if changed.is_err() {
                    return Ok(EndReason::Shutdown);
                }
                if !client.control.material().differs_from(material) {
                    continue;
                }
                close(tx, &mut responses).await;
                return Ok(EndReason::MaterialChanged);
            }
            message = responses.message() => match message {
                Ok(Some(response)) => response,
                Ok(None) => return Err(XdsError::Closed),
                Err(status) => return Err(XdsError::Stream(describe_status(&status))),
            },
        };
        let (arrived, ended) = tokio::select! {
            () = stopped(shutdown) => return Ok(EndReason::Shutdown),
            gathered = gather(response, &mut responses) => gathered,
        };
        arrived.iter().for_each(log_response);

        // Apply them (the first of every type together), then answer.
        let batch = match *synced {
            _ if arrived.is_empty() => None,
            true => Some(arrived),
            false => initial.add(arrived),
        };
        if let Some(batch) = batch {
            let answers = client.applier.apply(&batch, &address, unix_now()).await;
            for answer in answers {
                let sent = tx.send(request_for(answer)).await;
                sent.map_err(|_| XdsError::Closed)?;
            }
            if !*synced {
                *synced = true;
                let revision = client.applier.status().revision;
                tracing::info!(%address, revision, "configuration synced with the control plane");
            }
        }
        if let Some(error) = ended {
            return Err(error);
        }
    }
}

/// `first` and the responses that already arrived behind it, and, while
/// the last of them says more of its group follow, the rest of that group;
/// with why the stream ended, if it did. Responses of a group that the end
/// cut short are left out.
async fn gather<S>(
    first: DeltaDiscoveryResponse,
    responses: &mut S,
) -> (Vec<DeltaDiscoveryResponse>, Option<XdsError>)
where
    S: Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Unpin,
{
    let (mut arrived, mut ended) = arrived_behind(first, responses).await;
    while ended.is_none() && arrived.last().is_some_and(more_follow) {
        let next = tokio::time::timeout(GROUP_TIMEOUT, responses.next()).await;
        let Ok(next) = next else {
            let revision = arrived.last().map(revision_of).unwrap_or_default();
            ended = Some(XdsError::GroupIncomplete {
                revision: revision.to_owned(),
                waited: GROUP_TIMEOUT,
            });
            break;
        };
        match received(next) {
            Ok(response) => {
                let (more, end) = arrived_behind(response, responses).await;
                arrived.extend(more);
                ended = end;
            }
            Err(error) => ended = Some(error),
        }
    }

    let complete = arrived.iter().rposition(|r| !more_follow(r));
    arrived.truncate(complete.map_or(0, |last| last + 1));
    (arrived, ended)
}

/// Whether more responses of `response`'s group follow it.
fn more_follow(response: &DeltaDiscoveryResponse) -> bool {
    let following = response.system_version_info.split_once('+');
    following.is_some_and(|(_, count)| count.parse::<u32>().is_ok_and(|n| n > 0))
}

/// The revision `response` belongs to, without the count of those following.
fn revision_of(response: &DeltaDiscoveryResponse) -> &str {
    let version = response.system_version_info.as_str();
    version
        .split_once('+')
        .map_or(version, |(revision, _)| revision)
}

/// `first`, and the responses that have already arrived behind it, up to
/// [`MAX_BATCH`]; with why the stream ended, if it ended behind them.
async fn arrived_behind<S>(
    first: DeltaDiscoveryResponse,
    responses: &mut S,
) -> (Vec<DeltaDiscoveryResponse>, Option<XdsError>)
where
    S: Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Unpin,
{
    let mut arrived = vec![first];
    while arrived.len() < MAX_BATCH {
        let next = tokio::select! {
            biased;
            next = responses.next() => next,
            () = std::future::ready(()) => break,
        };
        match received(next) {
            Ok(response) => arrived.push(response),
            Err(error) => return (arrived, Some(error)),
        }
    }
    (arrived, None)
}

/// What the stream yielded: a response, or why it ended.
fn received(
    next: Option<Result<DeltaDiscoveryResponse, Status>>,
) -> Result<DeltaDiscoveryResponse, XdsError> {
    match next {
        Some(Ok(response)) => Ok(response),
        Some(Err(status)) => Err(XdsError::Stream(describe_status(&status))),
        None => Err(XdsError::Closed),
    }
}

type Requests = mpsc::Sender<DeltaDiscoveryRequest>;

/// Opens a stream to the address at `index`, every subscription queued.
async fn open(
    client: &Client,
    index: usize,
    material: &TlsMaterial,
) -> Result<(Requests, Streaming<DeltaDiscoveryResponse>), XdsError> {
    let channel = client.control.connect_at(index, material).await?;
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    for request in subscriptions(&client.node, client.applier.held()) {
        let _ = tx.try_send(request);
    }

    let responses = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|status| XdsError::Stream(describe_status(&status)))?
        .into_inner();
    Ok((tx, responses))
}

fn log_response(response: &DeltaDiscoveryResponse) {
    tracing::debug!(
        type_url = %response.type_url,
        version = %response.system_version_info,
        nonce = %response.nonce,
        resources = response.resources.len(),
        removed = response.removed_resources.len(),
        "xDS response"
    );
}

/// The first request of every type: subscribe to everything, saying what
/// is held. Only the stream's first request names the node.
fn subscriptions(node: &str, held: &Resources) -> Vec<DeltaDiscoveryRequest> {
    types::ALL
        .iter()
        .enumerate()
        .map(|(position, type_url)| DeltaDiscoveryRequest {
            node: (position == 0).then(|| Node {
                id: node.to_owned(),
                user_agent_name: "palisade-agent".into(),
                ..Default::default()
            }),
            type_url: (*type_url).to_owned(),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: held.versions(type_url),
            ..Default::default()
        })
        .collect()
}

/// The ACK or NACK that `answer` calls for.
fn request_for(answer: Answer) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: answer.type_url,
        response_nonce: answer.nonce,
        error_detail: answer.rejection.map(|message| RpcStatus {
            code: INVALID_ARGUMENT,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// Ends the agent's side of the stream, so that every answer queued is
/// still sent, and waits briefly for the control plane to end its side.
async fn close(
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: &mut Streaming<DeltaDiscoveryResponse>,
) {
    drop(tx);
    let drained = async { while let Ok(Some(_)) = responses.message().await {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drained).await;
}

/// The responses of a new stream, held until every type has answered once.
#[derive(Debug, Default)]
struct InitialSync {
    answered: BTreeSet<String>,
    responses: Vec<DeltaDiscoveryResponse>,
}

impl InitialSync {
    /// Adds `responses`; returns every response so far once all types have
    /// answered.
    fn add(
        &mut self,
        responses: Vec<DeltaDiscoveryResponse>,
    ) -> Option<Vec<DeltaDiscoveryResponse>> {
        for response in responses {
            self.answered.insert(response.type_url.clone());
            self.responses.push(response);
        }
        let complete = types::ALL.iter().all(|t| self.answered.contains(*t));
        complete.then(|| std::mem::take(&mut self.responses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::RawResource;

    #[test]
    fn the_first_requests_subscribe_everything_and_resume_from_held_versions() {
        let mut held = Resources::default();
        let raw = RawResource {
            version: "v1".into(),
            value: Vec::new(),
        };
        held.insert(types::WORKLOAD, "shop/orders-1", raw);

        let requests = subscriptions("web-1", &held);

        assert_eq!(requests.len(), 6);
        assert_eq!(requests[0].node.as_ref().unwrap().id, "web-1");
        assert!(requests[1..].iter().all(|r| r.node.is_none()));
        assert!(requests.iter().all(|r| r.resource_names_subscribe == ["*"]));
        let workloads = requests
            .iter()
            .find(|r| r.type_url == types::WORKLOAD)
            .unwrap();
        assert_eq!(workloads.initial_resource_versions["shop/orders-1"], "v1");
    }

    #[test]
    fn a_nack_carries_the_reason_and_an_ack_none() {
        let nack = request_for(Answer {
            type_url: types::WORKLOAD.into(),
            nonce: "7".into(),
            rejection: Some("Workload shop/x: app_port: must be 1 to 65535, not 0".into()),
        });
        let ack = request_for(Answer {
            type_url: types::WORKLOAD.into(),
            nonce: "8".into(),
            rejection: None,
        });

        assert_eq!(nack.response_nonce, "7");
        assert_eq!(nack.error_detail.unwrap().code, INVALID_ARGUMENT);
        assert!(ack.error_detail.is_none());
        assert!(ack.node.is_none() && ack.resource_names_subscribe.is_empty());
    }

    #[test]
    fn the_initial_sync_waits_for_every_type() {
        let mut initial = InitialSync::default();
        let response = |type_url: &str| DeltaDiscoveryResponse {
            type_url: type_url.into(),
            ..Default::default()
        };

        for type_url in &types::ALL[..4] {
            assert!(initial.add(vec![response(type_url)]).is_none());
        }
        assert!(
            initial.add(vec![response(types::WORKLOAD)]).is_none(),
            "a second answer of a type"
        );
        let last_two = vec![response(types::ALL[4]), response(types::ALL[5])];
        let batch = initial.add(last_two).unwrap();

        assert_eq!(batch.len(), 7);
    }

    fn nonce(nonce: &str) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            type_url: types::WORKLOAD.into(),
            nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn nonces(batch: &[DeltaDiscoveryResponse]) -> Vec<&str> {
        batch.iter().map(|r| r.nonce.as_str()).collect()
    }

    #[tokio::test]
    async fn responses_already_arrived_are_taken_with_the_first_and_none_is_awaited() {
        let (sender, receiver) = mpsc::channel(8);
        let mut responses = ReceiverStream::new(receiver);
        for name in ["2", "3"] {
            sender.send(Ok(nonce(name))).await.unwrap();
        }

        let arrived = arrived_behind(nonce("1"), &mut responses);
        let (together, ended) = tokio::time::timeout(CLOSE_TIMEOUT, arrived).await.unwrap();
        let (alone, _) = arrived_behind(nonce("4"), &mut responses).await;

        assert_eq!(nonces(&together), ["1", "2", "3"]);
        assert!(ended.is_none());
        assert_eq!(nonces(&alone), ["4"]);
    }

    fn version(version: &str) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            type_url: types::WORKLOAD.into(),
            system_version_info: version.into(),
            nonce: version.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_first_response_of_a_group_waits_for_the_rest_of_it() {
        let (sender, receiver) = mpsc::channel(8);
        let mut responses = ReceiverStream::new(receiver);
        let rest = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sender.send(Ok(version("7+1"))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            sender.send(Ok(version("7"))).await.unwrap();
            sender
        });

        let (group, ended) = gather(version("7+2"), &mut responses).await;
        let _sender = rest.await.unwrap();

        assert_eq!(nonces(&group), ["7+2", "7+1", "7"]);
        assert!(ended.is_none());
    }

    #[tokio::test]
    async fn a_group_cut_short_by_the_end_of_the_stream_is_left_out() {
        let (sender, receiver) = mpsc::channel(8);
        let mut responses = ReceiverStream::new(receiver);
        for name in ["7", "8+1"] {
            sender.send(Ok(version(name))).await.unwrap();
        }
        drop(sender);

        let (arrived, ended) = gather(version("6"), &mut responses).await;

        assert_eq!(nonces(&arrived), ["6", "7"]);
        assert!(matches!(ended, Some(XdsError::Closed)), "{ended:?}");
    }

    #[test]
    fn only_a_positive_count_after_the_revision_says_more_follow() {
        assert!(more_follow(&version("12+1")));
        for bare in ["12", "12+0", "12+", "12+x", ""] {
            assert!(!more_follow(&version(bare)), "{bare}");
        }
        assert_eq!(revision_of(&version("12+3")), "12");
        assert_eq!(revision_of(&version("12")), "12");
    }

    #[tokio::test]
    async fn a_stream_that_ends_behind_a_response_says_so_after_it() {
        let (sender, receiver) = mpsc::channel(8);
        let mut responses = ReceiverStream::new(receiver);
        sender.send(Ok(nonce("2"))).await.unwrap();
        sender
            .send(Err(Status::unavailable("going away")))
            .await
            .unwrap();
        drop(sender);

        let (arrived, ended) = arrived_behind(nonce("1"), &mut responses).await;

        assert_eq!(nonces(&arrived), ["1", "2"]);
        assert!(matches!(ended, Some(XdsError::Stream(_))), "{ended:?}");
    }
}
