//! The ADS protocol's rules over Envoy's types (Listener, RouteConfiguration,
//! Cluster, ClusterLoadAssignment), state of the world and delta, for the
//! Envoy sidecar of storefront-1, which may call orders.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use palisade_tests::xds::envoy::{
    INBOUND_LISTENER, LOCAL_CLUSTER, OUTBOUND, ROUTE, TYPES, ack, delta_resuming, endpoint_count,
    envoy_names, held, sotw_request,
};
use palisade_tests::xds::shop::{self, MOVED, Shop};
use palisade_tests::xds::{Delta, Sotw, delta_nack, names, sotw_nack, types};
use palisade_tests::{apply, pb};

fn delete(kind: &str, name: &str) -> pb::DeleteRequest {
    pb::DeleteRequest {
        kind: kind.into(),
        namespace: "shop".into(),
        name: name.into(),
        ..Default::default()
    }
}

/// Takes away storefront's permission to call orders, and with it every
/// resource of orders the proxy held.
async fn forbid_orders(bed: &mut Shop) {
    let policy = delete("AuthorizationPolicy", "orders-from-storefront");
    bed.admin.delete(policy).await.unwrap();
}

/// A SotW stream of storefront-1's Envoy that asked for every Envoy type
/// in Envoy's order, acknowledging each answer before the next request;
/// returns it with the answers.
async fn converged_sotw(bed: &Shop) -> (Sotw, Vec<DiscoveryResponse>) {
    let mut stream = bed.envoy_sotw(TYPES[0]).await;
    let mut answers = vec![stream.recv().await.unwrap()];
    for type_url in &TYPES[1..] {
        stream.send(ack(answers.last().unwrap())).await;
        answers.push(stream.ask(sotw_request(type_url)).await.unwrap());
    }
    stream.send(ack(answers.last().unwrap())).await;
    assert!(stream.quiet().await, "an ACK gets no answer");
    (stream, answers)
}

/// A delta stream of storefront-1's Envoy subscribed to every Envoy type,
/// everything acknowledged; returns it with what it was sent.
async fn converged_delta(bed: &Shop) -> (Delta, Vec<DeltaDiscoveryResponse>) {
    let mut stream = bed
        .envoy_delta(delta_resuming(TYPES[0], BTreeMap::new()))
        .await;
    for type_url in &TYPES[1..] {
        stream.send(delta_resuming(type_url, BTreeMap::new())).await;
    }
    let answers = stream.ack_until_quiet().await;
    let answered: BTreeSet<&str> = answers.iter().map(|a| a.type_url.as_str()).collect();
    assert_eq!(answered, BTreeSet::from(TYPES), "every type is answered");
    (stream, answers)
}

/// The names in the newest SotW response of each type.
fn sotw_sets(responses: &[DiscoveryResponse]) -> BTreeMap<&str, Vec<String>> {
    responses
        .iter()
        .map(|r| (r.type_url.as_str(), envoy_names(r)))
        .collect()
}

/// Checks that every response carries a version and a nonce of its own.
fn assert_versioned<'a>(versions_and_nonces: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut nonces = BTreeSet::new();
    for (version, nonce) in versions_and_nonces {
        assert!(!version.is_empty(), "a response without a version");
        assert!(
            nonces.insert(nonce),
            "nonce {nonce:?} is empty or used twice"
        );
        assert!(!nonce.is_empty(), "a response without a nonce");
    }
}

#[tokio::test]
async fn sotw_every_response_of_every_type_carries_a_version_and_a_nonce() {
    let mut bed = shop::start().await;
    let (mut stream, mut responses) = converged_sotw(&bed).await;
    let sets = sotw_sets(&responses);
    assert_eq!(sets[types::LISTENER], [INBOUND_LISTENER, OUTBOUND]);
    assert_eq!(sets[types::CLUSTER], [LOCAL_CLUSTER, OUTBOUND]);
    assert_eq!(sets[types::ROUTE], [ROUTE]);
    assert_eq!(sets[types::ENDPOINT], [OUTBOUND]);

    apply(&mut bed.admin, MOVED).await.unwrap();
    let moved = stream.ack_until_quiet().await;
    forbid_orders(&mut bed).await;
    let forbidden = stream.ack_until_quiet().await;

    assert!(!moved.is_empty() && !forbidden.is_empty());
    let updated = sotw_sets(&moved);
    assert_eq!(updated.keys().collect::<Vec<_>>(), [&types::ENDPOINT]);
    responses.extend(moved);
    responses.extend(forbidden);
    assert_versioned(
        responses
            .iter()
            .map(|r| (r.version_info.as_str(), r.nonce.as_str())),
    );
    let last = &responses[responses.len() - 1];
    assert_ne!(last.version_info, responses[0].version_info);
}

#[tokio::test]
async fn sotw_removed_upstream_is_absent_from_the_next_set_of_every_type() {
    let mut bed = shop::start().await;
    let (mut stream, _) = converged_sotw(&bed).await;

    forbid_orders(&mut bed).await;
    let next = stream.ack_until_quiet().await;

    let sets = sotw_sets(&next);
    assert_eq!(sets[types::LISTENER], [INBOUND_LISTENER]);
    assert_eq!(sets[types::CLUSTER], [LOCAL_CLUSTER]);
    assert!(sets[types::ROUTE].is_empty(), "{sets:?}");
    assert!(sets[types::ENDPOINT].is_empty(), "{sets:?}");
}

#[tokio::test]
async fn sotw_nack_keeps_the_last_good_endpoints_and_is_not_resent() {
    let mut bed = shop::start().await;
    let (mut stream, answers) = converged_sotw(&bed).await;
    let good = &answers[3];
    let held_good = bed.envoy_status(types::ENDPOINT).await.held;
    apply(&mut bed.admin, MOVED).await.unwrap();
    let update = stream.recv().await.unwrap();
    assert_eq!(endpoint_count(&update.resources[0]), 2);

    let error = "orders-2: endpoint refused";
    let nack = sotw_nack(&update, &[OUTBOUND], &good.version_info, error);
    stream.send(nack).await;

    assert!(stream.quiet().await, "the rejected set must not come back");
    let status = bed.envoy_status(types::ENDPOINT).await;
    assert_eq!(status.last_nack_error, error);
    assert_eq!(status.last_nack_revision, update.version_info);
    assert_eq!(status.acked_revision.to_string(), good.version_info);
    assert_eq!(
        status.held, held_good,
        "the client still runs what it accepted"
    );

    bed.admin
        .delete(delete("Workload", "orders-2"))
        .await
        .unwrap();
    let next = stream.recv().await.unwrap();
    assert_eq!(envoy_names(&next), [OUTBOUND], "a new set is sent");
    assert_eq!(endpoint_count(&next.resources[0]), 1);
    assert_ne!(next.version_info, update.version_info);
}

#[tokio::test]
async fn delta_nack_keeps_the_last_good_endpoints_and_is_not_resent() {
    let mut bed = shop::start().await;
    let (mut stream, answers) = converged_delta(&bed).await;
    let good = &held(&answers)[types::ENDPOINT];
    apply(&mut bed.admin, MOVED).await.unwrap();
    let update = stream.recv().await.unwrap();
    assert_eq!(names(&update), [OUTBOUND]);
    let resource = update.resources[0].resource.as_ref().unwrap();
    assert_eq!(endpoint_count(resource), 2);

    let error = "orders-2: endpoint refused";
    stream.send(delta_nack(&update, error)).await;

    assert!(
        stream.quiet().await,
        "the rejected version must not come back"
    );
    let status = bed.envoy_status(types::ENDPOINT).await;
    assert_eq!(status.last_nack_error, error);
    assert_eq!(status.last_nack_revision, update.system_version_info);
    let held: BTreeMap<String, String> = status
        .held
        .iter()
        .map(|h| (h.name.clone(), h.version.clone()))
        .collect();
    assert_eq!(&held, good, "the client still runs what it accepted");

    bed.admin
        .delete(delete("Workload", "orders-2"))
        .await
        .unwrap();
    let next = stream.recv().await.unwrap();
    assert_eq!(names(&next), [OUTBOUND], "a new version is sent");
    assert_eq!(&next.resources[0].version, &good[OUTBOUND]);
}

#[tokio::test]
async fn delta_reconnect_with_initial_versions_sends_only_what_changed() {
    let mut bed = shop::start().await;
    let (stream, answers) = converged_delta(&bed).await;
    let mut held = held(&answers);
    drop(stream);

    // The endpoints of orders change while the proxy is away.
    apply(&mut bed.admin, MOVED).await.unwrap();
    let mut resume = |type_url: &str| delta_resuming(type_url, held.remove(type_url).unwrap());
    let mut stream = bed.envoy_delta(resume(TYPES[0])).await;
    for type_url in &TYPES[1..] {
        stream.send(resume(type_url)).await;
    }
    let resumed = stream.ack_until_quiet().await;

    let mut sent: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for response in &resumed {
        assert!(response.removed_resources.is_empty(), "{response:?}");
        let of_type = sent.entry(response.type_url.as_str()).or_default();
        of_type.extend(names(response));
    }
    assert_eq!(sent.len(), TYPES.len(), "every type is answered: {sent:?}");
    assert_eq!(sent[types::ENDPOINT], [OUTBOUND]);
    for unchanged in [types::LISTENER, types::CLUSTER, types::ROUTE] {
        assert!(
            sent[unchanged].is_empty(),
            "{unchanged} was resent: {sent:?}"
        );
    }
}

#[tokio::test]
async fn delta_removed_upstream_is_reported_in_every_type() {
    let mut bed = shop::start().await;
    let (mut stream, mut responses) = converged_delta(&bed).await;

    forbid_orders(&mut bed).await;
    let removals = stream.ack_until_quiet().await;

    let mut removed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for response in &removals {
        assert!(response.resources.is_empty(), "{response:?}");
        let of_type = removed.entry(response.type_url.as_str()).or_default();
        of_type.extend(response.removed_resources.iter().cloned());
    }
    assert_eq!(removed[types::LISTENER], [OUTBOUND]);
    assert_eq!(removed[types::CLUSTER], [OUTBOUND]);
    assert_eq!(removed[types::ROUTE], [ROUTE]);
    assert_eq!(removed[types::ENDPOINT], [OUTBOUND]);
    responses.extend(removals);
    assert_versioned(
        responses
            .iter()
            .map(|r| (r.system_version_info.as_str(), r.nonce.as_str())),
    );
}
