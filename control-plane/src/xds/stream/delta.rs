//! Incremental (delta) ADS: responses carry only the resources that changed
//! for the client and the names of those removed.
//!
//! The stream keeps, per type, what the client is believed to hold: on
//! reconnect the client says so in `initial_resource_versions`, and what it
//! already has at the current version is not sent again. Subscribing `*`
//! asks for every resource of the type; a first request naming nothing does
//! the same for types that default to the wildcard, unless it subscribes and
//! unsubscribes `*` at once, which asks for nothing yet. Later requests that
//! name nothing change nothing, so a client that unsubscribed from every
//! name and from `*` holds nothing, not everything. While the wildcard
//! is on, unsubscribing a name changes nothing the client receives;
//! unsubscribing `*` makes the client forget what only the wildcard gave
//! it. The first request of each type is always answered, if need be with
//! an empty response.
//!
//! A view change that touches several types is sent as one group, back to
//! back: `system_version_info` is the view's revision, followed on every
//! response but the group's last by `+N`, N being how many more of the
//! group follow. Palisade's agent waits for the bare revision before it
//! applies anything, so a change is enforced whole; other clients read the
//! field as the debugging text it is.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::sotw::{check_open, end_on_bad_message};
use super::{Context, Sent, send, wildcard_by_default};
use crate::xds::view::View;

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

/// One type's state on the stream.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    /// Names subscribed explicitly, whether or not the wildcard is on.
    names: BTreeSet<String>,
    /// What the client holds, name to version, as far as we know.
    held: BTreeMap<String, String>,
    /// Subscribed names already reported as not existing.
    reported_absent: BTreeSet<String>,
    /// The newest response.
    sent: Option<Sent>,
    /// Whether a request for the type was seen.
    started: bool,
}

/// Serves one stream until the client leaves or breaks a rule.
pub async fn run(
    mut context: Context,
    first: DeltaDiscoveryRequest,
    mut inbound: Streaming<DeltaDiscoveryRequest>,
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

async fn handle(
    context: &mut Context,
    types: &mut BTreeMap<String, TypeState>,
    request: DeltaDiscoveryRequest,
    tx: &Tx,
) -> Result<(), Status> {
    let names = request.resource_names_subscribe.len() + request.resource_names_unsubscribe.len();
    context.admit(names, request.initial_resource_versions.len())?;
    if request.type_url.is_empty() {
        return Err(Status::invalid_argument("type_url: must not be empty"));
    }
    let state = types.entry(request.type_url.clone()).or_default();

    if !request.response_nonce.is_empty() {
        record_answer(context, &request, state);
    }
    let first = !state.started;
    state.started = true;
    subscribe(state, &request, first);

    push(context, &request.type_url, state, tx, first).await
}

fn record_answer(context: &Context, request: &DeltaDiscoveryRequest, state: &mut TypeState) {
    let Some(sent) = state.sent.as_mut() else {
        tracing::debug!(nonce = %request.response_nonce, "nonce before any response; ignored");
        return;
    };
    if sent.nonce != request.response_nonce {
        tracing::debug!(nonce = %request.response_nonce, "stale nonce; answer ignored");
        return;
    }

    match &request.error_detail {
        Some(error) => context.record_nack(&request.type_url, sent, &error.message),
        None => context.record_ack(&request.type_url, sent, state.held.clone()),
    }
}

fn subscribe(state: &mut TypeState, request: &DeltaDiscoveryRequest, first: bool) {
    let star = |names: &[String]| names.iter().any(|n| n == "*");
    let subscribes_star = star(&request.resource_names_subscribe);
    let unsubscribes_star = star(&request.resource_names_unsubscribe);
    let had_wildcard = state.wildcard;

    if first {
        state.wildcard = request.resource_names_subscribe.is_empty()
            && !unsubscribes_star
            && wildcard_by_default(&request.type_url);
        state.held.extend(
            request
                .initial_resource_versions
                .iter()
                .map(|(n, v)| (n.clone(), v.clone())),
        );
    }
    if subscribes_star {
        state.wildcard = true;
    }
    if unsubscribes_star {
        state.wildcard = false;
    }

    let named =
        |names: &[String]| -> Vec<String> { names.iter().filter(|n| *n != "*").cloned().collect() };
    state.names.extend(named(&request.resource_names_subscribe));
    for name in named(&request.resource_names_unsubscribe) {
        unsubscribe(state, &name);
    }
    if had_wildcard && !state.wildcard {
        forget_wildcard(state);
    }
}

/// Drops an explicit subscription. With the wildcard on, the client still
/// receives the resource, so it keeps what it holds and is sent nothing.
fn unsubscribe(state: &mut TypeState, name: &str) {
    state.names.remove(name);
    state.reported_absent.remove(name);
    if !state.wildcard {
        state.held.remove(name);
    }
}

/// The wildcard is off: what the client held only through it, it forgets
/// by itself, so it is neither held any longer nor reported removed later.
fn forget_wildcard(state: &mut TypeState) {
    let names = &state.names;
    state.held.retain(|name, _| names.contains(name));
}

/// Sends what changed in every type for the newest view, as one group:
/// every response but the last says how many more of the group follow.
async fn push_all(
    context: &mut Context,
    types: &mut BTreeMap<String, TypeState>,
    tx: &Tx,
) -> Result<(), Status> {
    let view = context.current();
    check_open(&view)?;
    let mut group = Vec::new();
    for (type_url, state) in types.iter_mut() {
        group.extend(prepare(context, &view, type_url, state, false));
    }

    mark_group(&mut group);
    for response in group {
        if !send(tx, response).await {
            return Err(Status::cancelled("the client is gone"));
        }
    }
    Ok(())
}

/// Sends what changed for the type since the client's holdings.
/// `answer_empty` answers even when nothing did: the first request of a
/// type always gets an answer, so a client that resumed with everything
/// current, or asked for a type the server does not know, hears so at once.
async fn push(
    context: &mut Context,
    type_url: &str,
    state: &mut TypeState,
    tx: &Tx,
    answer_empty: bool,
) -> Result<(), Status> {
    let view = context.current();
    check_open(&view)?;
    let Some(response) = prepare(context, &view, type_url, state, answer_empty) else {
        return Ok(());
    };

    if !send(tx, response).await {
        return Err(Status::cancelled("the client is gone"));
    }
    Ok(())
}

/// The response that brings the client's holdings of the type up to
/// `view`, recorded as sent, or `None` if nothing changed and no answer is
/// owed.
fn prepare(
    context: &mut Context,
    view: &View,
    type_url: &str,
    state: &mut TypeState,
    answer_empty: bool,
) -> Option<DeltaDiscoveryResponse> {
    let (resources, removed) = difference(view, type_url, state);
    if resources.is_empty() && removed.is_empty() && !answer_empty {
        if let Some(sent) = state.sent.as_mut() {
            context.record_unchanged(type_url, sent, view.revision);
        }
        return None;
    }
    if answer_empty && view.of(type_url).is_none() {
        tracing::debug!(type_url, "unknown type URL; answering with nothing");
    }

    expect_applied(state, &resources, &removed);

    let sent = Sent::new(context.next_nonce(), view.revision);
    let subscribed = (!state.wildcard).then_some(state.names.len());
    context.record_sent(type_url, &sent, subscribed);
    let response = DeltaDiscoveryResponse {
        system_version_info: view.revision.to_string(),
        resources,
        type_url: type_url.to_owned(),
        removed_resources: removed,
        nonce: sent.nonce.clone(),
        ..Default::default()
    };
    state.sent = Some(sent);
    Some(response)
}

/// Marks the responses that one view change brings, sent back to back:
/// each but the last gets `+N` after its revision, N being how many more
/// follow, so that a client can apply the whole change at once.
fn mark_group(group: &mut [DeltaDiscoveryResponse]) {
    let count = group.len();
    for (index, response) in group.iter_mut().enumerate() {
        let following = count - index - 1;
        if following > 0 {
            response
                .system_version_info
                .push_str(&format!("+{following}"));
        }
    }
}

/// Records what the client will hold once it applies a response carrying
/// `resources` and removing `removed`. A subscribed name it was told is
/// gone is not reported again until it comes back.
fn expect_applied(state: &mut TypeState, resources: &[Resource], removed: &[String]) {
    for resource in resources {
        state
            .held
            .insert(resource.name.clone(), resource.version.clone());
    }
    for name in removed {
        state.held.remove(name);
        if state.names.contains(name) {
            state.reported_absent.insert(name.clone());
        }
    }
}

/// What the client lacks of what it subscribed to, and what it holds that
/// is gone or never existed.
fn difference(view: &View, type_url: &str, state: &TypeState) -> (Vec<Resource>, Vec<String>) {
    let empty = Default::default();
    let resources = view.of(type_url).unwrap_or(&empty);
    let wanted = |name: &str| state.wildcard || state.names.contains(name);

    let changed: Vec<Resource> = resources
        .values()
        .filter(|served| wanted(&served.name))
        .filter(|served| state.held.get(&served.name) != Some(&served.version))
        .map(|served| Resource {
            name: served.name.clone(),
            version: served.version.clone(),
            resource: Some(served.any.clone()),
            ..Default::default()
        })
        .collect();

    let gone = state
        .held
        .keys()
        .filter(|name| !resources.contains_key(*name));
    let absent = state
        .names
        .iter()
        .filter(|name| !resources.contains_key(*name) && !state.held.contains_key(*name))
        .filter(|name| !state.reported_absent.contains(*name));
    let removed: Vec<String> = gone.chain(absent).cloned().collect();
    (changed, removed)
}

#[cfg(test)]
mod tests;
