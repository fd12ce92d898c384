//! State-of-the-world ADS: every response for a type carries the whole set
//! the client subscribed to; a resource missing from it was removed.
//!
//! A request names every resource of the type the client wants, or `*` for
//! all of them. An empty list also asks for all of them while the client
//! has never named a resource of the type (the legacy wildcard of
//! listeners, clusters and the agent's types); once it has, an empty list
//! unsubscribes from everything.
//!
//! A request that echoes the nonce of the newest response for its type
//! acknowledges it (or rejects it, with `error_detail`); one with an older
//! nonce is stale and ignored. A rejected set is not sent again: the next
//! response for the type waits until the view holds something else.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::{Context, Sent, send, wildcard_by_default};
use crate::xds::view::View;

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// One type's subscription on the stream.
#[derive(Debug, Default)]
struct TypeState {
    /// `None` subscribes to every resource of the type.
    names: Option<BTreeSet<String>>,
    /// Whether a request for the type ever named a resource, `*` included.
    named: bool,
    /// The newest response.
    sent: Option<Sent>,
    /// What the newest response carried, name to version.
    content: BTreeMap<String, String>,
    /// What the client rejected, not to be sent again.
    rejected: Option<BTreeMap<String, String>>,
}

/// Serves one stream until the client leaves or breaks a rule.
pub async fn run(
    mut context: Context,
    first: DiscoveryRequest,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: Tx,
) {
    let mut types: BTreeMap<String, TypeState> = BTreeMap::new();
    if let Err(status) = handle(&mut context, &mut types, first, &tx).await {
        let _ = tx.send(Err(status)).await;
        return;
    }

    loop {
        tokio::select! {
            _ = super::draining(&mut context.shutdown) => {
                let _ = tx.send(Err(super::drained())).await;
                return;
            }
            message = inbound.message() => {
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(status) => return end_on_bad_message(&tx, status).await,
                };
                if let Err(status) = handle(&mut context, &mut types, request, &tx).await {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
            changed = context.view.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Err(status) = push_all(&mut context, &mut types, &tx).await {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        }
    }
}

/// Ends a stream whose client sent something that is not a request, or
/// simply went away.
pub(super) async fn end_on_bad_message<T>(tx: &mpsc::Sender<Result<T, Status>>, status: Status) {
    tracing::debug!(%status, "xDS stream ended by the client");
    if let Some(status) = super::unreadable(&status) {
        let _ = tx.send(Err(status)).await;
    }
}

async fn handle(
    context: &mut Context,
    types: &mut BTreeMap<String, TypeState>,
    request: DiscoveryRequest,
    tx: &Tx,
) -> Result<(), Status> {
    context.admit(request.resource_names.len(), 0)?;
    if request.type_url.is_empty() {
        return Err(Status::invalid_argument("type_url: must not be empty"));
    }
    let state = types.entry(request.type_url.clone()).or_default();

    // An answer to an earlier response: stale, an ACK, or a NACK.
    if !request.response_nonce.is_empty() {
        let Some(sent) = &state.sent else {
            tracing::debug!(nonce = %request.response_nonce, "nonce before any response; ignored");
            return Ok(());
        };
        if sent.nonce != request.response_nonce {
            tracing::debug!(nonce = %request.response_nonce, "stale nonce; request ignored");
            return Ok(());
        }
        record_answer(context, &request, state);
    }

    // The subscription.
    let names = subscription(&request, state.named);
    state.named |= !request.resource_names.is_empty();
    let changed = state.names != names || state.sent.is_none();
    state.names = names;
    if changed {
        push(context, &request.type_url, state, tx, true).await?;
    }
    Ok(())
}

fn record_answer(context: &Context, request: &DiscoveryRequest, state: &mut TypeState) {
    let sent = state.sent.as_mut().expect("checked by the caller");

    match &request.error_detail {
        Some(error) => {
            state.rejected = Some(state.content.clone());
            context.record_nack(&request.type_url, sent, &error.message);
        }
        None => {
            state.rejected = None;
            context.record_ack(&request.type_url, sent, state.content.clone());
        }
    }
}

/// The names a request subscribes to, `None` for every resource of the
/// type; `named` says whether an earlier request of the type named any.
fn subscription(request: &DiscoveryRequest, named: bool) -> Option<BTreeSet<String>> {
    let names = &request.resource_names;
    let legacy_wildcard = names.is_empty() && !named && wildcard_by_default(&request.type_url);
    if legacy_wildcard || names.iter().any(|n| n == "*") {
        return None;
    }
    Some(names.iter().cloned().collect())
}

async fn push_all(
    context: &mut Context,
    types: &mut BTreeMap<String, TypeState>,
    tx: &Tx,
) -> Result<(), Status> {
    for (type_url, state) in types.iter_mut() {
        push(context, type_url, state, tx, false).await?;
    }
    Ok(())
}

/// Sends the type's current set, if it differs from what the client has
/// and was not rejected before; `force` answers a new subscription even
/// when it does.
async fn push(
    context: &mut Context,
    type_url: &str,
    state: &mut TypeState,
    tx: &Tx,
    force: bool,
) -> Result<(), Status> {
    let view = context.current();
    check_open(&view)?;
    let selected = select(&view, type_url, state.names.as_ref());
    let content: BTreeMap<String, String> = selected
        .iter()
        .map(|s| (s.name.clone(), s.version.clone()))
        .collect();

    let unchanged = state.sent.is_some() && state.content == content;
    if state.rejected.as_ref() == Some(&content) {
        return Ok(());
    }
    if unchanged && !force {
        if let Some(sent) = state.sent.as_mut() {
            context.record_unchanged(type_url, sent, view.revision);
        }
        return Ok(());
    }

    let sent = Sent::new(context.next_nonce(), view.revision);
    context.record_sent(type_url, &sent, state.names.as_ref().map(BTreeSet::len));
    let response = DiscoveryResponse {
        version_info: view.revision.to_string(),
        resources: selected.iter().map(|s| s.any.clone()).collect(),
        type_url: type_url.to_owned(),
        nonce: sent.nonce.clone(),
        ..Default::default()
    };
    state.sent = Some(sent);
    state.content = content;

    if !send(tx, response).await {
        return Err(Status::cancelled("the client is gone"));
    }
    Ok(())
}

/// The resources of a type the subscription selects; nothing for a type the
/// view does not know.
fn select(
    view: &View,
    type_url: &str,
    names: Option<&BTreeSet<String>>,
) -> Vec<Arc<crate::xds::view::Served>> {
    let Some(resources) = view.of(type_url) else {
        tracing::debug!(type_url, "unknown type URL; answering with nothing");
        return Vec::new();
    };
    match names {
        None => resources.values().cloned().collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| resources.get(n).cloned())
            .collect(),
    }
}

/// Ends the stream of a client whose view was closed, e.g. on revocation.
pub(super) fn check_open(view: &View) -> Result<(), Status> {
    match &view.closed {
        Some(reason) => Err(Status::permission_denied(reason.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

    fn request(names: &[&str]) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: TYPE.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        }
    }

    /// The subscription after each request in turn, as the stream keeps it.
    fn subscriptions(requests: &[&[&str]]) -> Vec<Option<BTreeSet<String>>> {
        let mut named = false;
        let mut result = Vec::new();
        for names in requests {
            let request = request(names);
            result.push(subscription(&request, named));
            named |= !request.resource_names.is_empty();
        }
        result
    }

    fn set(names: &[&str]) -> Option<BTreeSet<String>> {
        Some(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn empty_names_are_the_wildcard_until_a_name_is_sent() {
        let steps = subscriptions(&[&[], &[], &["a"], &[]]);

        assert_eq!(steps, [None, None, set(&["a"]), set(&[])]);
    }

    #[test]
    fn after_the_star_empty_names_unsubscribe_from_everything() {
        let steps = subscriptions(&[&["*"], &["*", "a"], &["a"], &[], &["*"]]);

        assert_eq!(steps, [None, None, set(&["a"]), set(&[]), None]);
    }

    #[test]
    fn empty_names_of_a_type_without_a_wildcard_ask_for_nothing() {
        let mut routes = request(&[]);
        routes.type_url = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration".into();

        assert_eq!(subscription(&routes, false), set(&[]));
    }
}
