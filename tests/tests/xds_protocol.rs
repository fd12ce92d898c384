//! The ADS protocol's rules, state of the world and delta, against a real
//! control plane and agents authenticated by their node certificates.

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use palisade_proto::xds as agent_pb;
use palisade_tests::xds::shop::{self, MOVED, Shop, sotw_names};
use palisade_tests::xds::{
    Delta, Sotw, delta_ack, delta_nack, delta_request, names, sotw_ack, sotw_nack, types,
};
use palisade_tests::{apply, pb};
use prost::Message;

/// orders-2 on another application port: a new version of it.
const ORDERS_2_CHANGED: &str = "kind: Workload\nmetadata: {name: orders-2, namespace: shop}\n\
                                spec: {service: orders, node: web-1, appPort: 9092, inboundPort: 15009}\n";

fn delete_orders_2() -> pb::DeleteRequest {
    pb::DeleteRequest {
        kind: "Workload".into(),
        namespace: "shop".into(),
        name: "orders-2".into(),
        ..Default::default()
    }
}

/// A SotW stream of web-1's workloads naming `names`, that acknowledged
/// its first set, then was sent orders-1 and orders-2 when [`MOVED`] was
/// applied; returns it with that set, not yet acknowledged.
async fn sotw_through_moved(bed: &mut Shop, names: &[&str]) -> (Sotw, DiscoveryResponse) {
    let mut stream = bed.sotw("web-1", types::WORKLOAD, names).await;
    let initial = stream.recv().await.unwrap();
    stream.send(sotw_ack(&initial, names)).await;

    apply(&mut bed.admin, MOVED).await.unwrap();
    let response = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&response), ["shop/orders-1", "shop/orders-2"]);
    (stream, response)
}

/// A delta stream of web-1 subscribed to `subscribe` of its workloads,
/// that was sent orders-1 and acknowledged it, then was sent only orders-2
/// when [`MOVED`] was applied; returns it with both responses, the second
/// not yet acknowledged.
async fn delta_through_moved(
    bed: &mut Shop,
    subscribe: &[&str],
) -> (Delta, DeltaDiscoveryResponse, DeltaDiscoveryResponse) {
    let mut stream = bed.delta("web-1", types::WORKLOAD, subscribe).await;
    let initial = stream.recv().await.unwrap();
    assert_eq!(names(&initial), ["shop/orders-1"]);
    stream.send(delta_ack(&initial)).await;

    apply(&mut bed.admin, MOVED).await.unwrap();
    let added = stream.recv().await.unwrap();
    assert_eq!(names(&added), ["shop/orders-2"], "only the change is sent");
    (stream, initial, added)
}

/// A delta stream of web-1 subscribed to the wildcard and to orders-1 by
/// name, holding orders-1 and orders-2, both acknowledged.
async fn wildcard_and_orders_1(bed: &mut Shop) -> Delta {
    let (stream, _, added) = delta_through_moved(bed, &["*", "shop/orders-1"]).await;
    stream.send(delta_ack(&added)).await;
    stream
}

#[tokio::test]
async fn sotw_responses_carry_version_and_nonce_and_acks_are_recorded() {
    let mut bed = shop::start().await;
    let mut stream = bed.sotw("web-1", types::WORKLOAD, &[]).await;

    let response = stream.recv().await.unwrap();
    assert!(!response.version_info.is_empty() && !response.nonce.is_empty());
    assert_eq!(sotw_names(&response), ["shop/orders-1"]);
    stream.send(sotw_ack(&response, &[])).await;
    assert!(stream.quiet().await, "an ACK gets no answer");

    let workload_type = bed.workload_status("web-1").await;
    assert_eq!(
        workload_type.acked_revision.to_string(),
        response.version_info
    );
    assert_eq!(workload_type.held[0].name, "shop/orders-1");
}

#[tokio::test]
async fn sotw_nack_is_recorded_and_the_rejected_set_is_not_resent() {
    let mut bed = shop::start().await;
    let mut stream = bed.sotw("web-1", types::WORKLOAD, &[]).await;
    let response = stream.recv().await.unwrap();

    stream
        .send(sotw_nack(&response, &[], "", "cannot apply orders-1"))
        .await;

    assert!(stream.quiet().await, "the rejected set must not come back");
    let nacked = bed.workload_status("web-1").await;
    assert_eq!(nacked.last_nack_error, "cannot apply orders-1");
    assert_eq!(nacked.last_nack_revision, response.version_info);
    assert_eq!(nacked.acked_revision, 0);

    apply(&mut bed.admin, MOVED).await.unwrap();
    let next = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&next), ["shop/orders-1", "shop/orders-2"]);
}

#[tokio::test]
async fn sotw_stale_nonce_is_ignored() {
    let bed = shop::start().await;
    let mut stream = bed.sotw("web-1", types::ENDPOINTS, &[]).await;
    let response = stream.recv().await.unwrap();
    stream.send(sotw_ack(&response, &[])).await;

    let mut stale = sotw_ack(&response, &["shop/orders"]);
    stale.response_nonce = "stale-nonce".into();
    stream.send(stale).await;

    assert!(stream.quiet().await, "a stale nonce changes nothing");
}

#[tokio::test]
async fn sotw_removed_resource_is_absent_from_the_next_set() {
    let mut bed = shop::start().await;
    let (mut stream, response) = sotw_through_moved(&mut bed, &[]).await;
    stream.send(sotw_ack(&response, &[])).await;

    bed.admin.delete(delete_orders_2()).await.unwrap();

    let next = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&next), ["shop/orders-1"]);
    assert_ne!(next.version_info, response.version_info);
}

#[tokio::test]
async fn sotw_subscription_by_name_returns_only_those_names() {
    let bed = shop::start().await;
    let asks = ["shop/orders", "shop/ghost"];
    let mut stream = bed.sotw("web-2", types::ENDPOINTS, &asks).await;

    let response = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&response), ["shop/orders"]);
    let endpoints = agent_pb::Endpoints::decode(response.resources[0].value.as_slice()).unwrap();
    assert_eq!(endpoints.endpoints[0].address, "127.0.0.11");

    stream.send(sotw_ack(&response, &asks)).await;
    assert!(
        stream.quiet().await,
        "an ACK of the same names gets no answer"
    );

    stream.send(sotw_ack(&response, &[])).await;
    let nothing = stream.recv().await.unwrap();
    assert!(
        nothing.resources.is_empty(),
        "after names, an empty list unsubscribes from everything: {:?}",
        sotw_names(&nothing)
    );
}

#[tokio::test]
async fn sotw_empty_names_are_the_wildcard_only_until_names_are_sent() {
    let mut bed = shop::start().await;
    let (mut stream, both) = sotw_through_moved(&mut bed, &[]).await;

    let named = stream
        .ask(sotw_ack(&both, &["shop/orders-1"]))
        .await
        .unwrap();
    assert_eq!(
        sotw_names(&named),
        ["shop/orders-1"],
        "names end the wildcard"
    );
    let emptied = stream.ask(sotw_ack(&named, &[])).await.unwrap();
    assert!(
        emptied.resources.is_empty(),
        "an empty list after names asks for nothing: {:?}",
        sotw_names(&emptied)
    );

    stream.send(sotw_ack(&emptied, &[])).await;
    bed.admin.delete(delete_orders_2()).await.unwrap();
    assert!(stream.quiet().await, "nothing is subscribed any more");
    let workloads = bed.workload_status("web-1").await;
    assert!(
        !workloads.wildcard && workloads.held.is_empty(),
        "{workloads:?}"
    );
}

#[tokio::test]
async fn delta_naming_nothing_after_unsubscribing_everything_is_not_the_wildcard() {
    let mut bed = shop::start().await;
    let (mut stream, _, added) = delta_through_moved(&mut bed, &[]).await;
    stream.send(delta_ack(&added)).await;

    let named = delta_request(None, types::WORKLOAD, &["shop/orders-1"], &["*"]);
    stream.send(named).await;
    assert!(stream.quiet().await, "orders-1 is held already");
    let unsubscribe = delta_request(None, types::WORKLOAD, &[], &["shop/orders-1"]);
    stream.send(unsubscribe).await;
    stream
        .send(delta_request(None, types::WORKLOAD, &[], &[]))
        .await;

    assert!(stream.quiet().await, "naming nothing asks for nothing");
    apply(&mut bed.admin, ORDERS_2_CHANGED).await.unwrap();
    assert!(stream.quiet().await, "nothing is subscribed any more");
}

#[tokio::test]
async fn delta_sends_changes_once_and_reports_removals() {
    let mut bed = shop::start().await;
    let (mut stream, _, added) = delta_through_moved(&mut bed, &["*"]).await;
    stream.send(delta_ack(&added)).await;

    bed.admin.delete(delete_orders_2()).await.unwrap();
    let removed = stream.recv().await.unwrap();
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["shop/orders-2"]);
}

#[tokio::test]
async fn delta_reconnect_with_initial_versions_resends_nothing_unchanged() {
    let mut bed = shop::start().await;
    let (mut stream, initial, added) = delta_through_moved(&mut bed, &["*"]).await;
    let held: Vec<(String, String)> = [&initial.resources[0], &added.resources[0]]
        .into_iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    stream.send(delta_ack(&added)).await;

    // orders-2 changes while the client is away.
    apply(&mut bed.admin, ORDERS_2_CHANGED).await.unwrap();
    stream.recv().await.unwrap();
    drop(stream);
    let mut again = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    again.initial_resource_versions = held.into_iter().collect();
    let mut stream = Delta::open(bed.web1.clone(), again).await.unwrap();

    let resumed = stream.recv().await.unwrap();
    assert_eq!(
        names(&resumed),
        ["shop/orders-2"],
        "orders-1 is unchanged and not resent"
    );

    let current: Vec<(String, String)> = [&initial.resources[0], &resumed.resources[0]]
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let mut current_again = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    current_again.initial_resource_versions = current.into_iter().collect();
    let mut stream = Delta::open(bed.web1.clone(), current_again).await.unwrap();
    let answer = stream.recv().await.unwrap();
    assert!(
        answer.resources.is_empty() && answer.removed_resources.is_empty(),
        "a client that holds everything current is sent nothing"
    );
}

#[tokio::test]
async fn delta_unsubscribe_stops_updates_for_that_name() {
    let mut bed = shop::start().await;
    let mut stream = bed.delta("web-2", types::ENDPOINTS, &["shop/orders"]).await;
    let initial = stream.recv().await.unwrap();
    assert_eq!(names(&initial), ["shop/orders"]);
    stream.send(delta_ack(&initial)).await;

    stream
        .send(delta_request(None, types::ENDPOINTS, &[], &["shop/orders"]))
        .await;
    apply(&mut bed.admin, MOVED).await.unwrap();

    assert!(stream.quiet().await, "an unsubscribed name gets no updates");
}

#[tokio::test]
async fn delta_star_subscribed_and_unsubscribed_at_once_means_nothing_yet() {
    let bed = shop::start().await;
    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &["*"]);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();

    let answer = stream.recv().await.unwrap();
    assert!(answer.resources.is_empty(), "nothing is subscribed yet");
    assert!(stream.quiet().await);

    stream
        .send(delta_request(
            None,
            types::WORKLOAD,
            &["shop/orders-1"],
            &[],
        ))
        .await;
    let response = stream.recv().await.unwrap();
    assert_eq!(names(&response), ["shop/orders-1"]);
}

#[tokio::test]
async fn unknown_type_url_gets_an_empty_answer() {
    let bed = shop::start().await;
    let unknown = "type.googleapis.com/example.Nothing";

    let mut sotw = bed.sotw("web-1", unknown, &[]).await;
    let mut delta = bed.delta("web-1", unknown, &[]).await;

    let answer = sotw.recv().await.unwrap();
    assert!(answer.resources.is_empty());
    assert_eq!(answer.type_url, unknown);
    let answer = delta.recv().await.unwrap();
    assert!(answer.resources.is_empty() && answer.removed_resources.is_empty());
}

#[tokio::test]
async fn sotw_unsubscribe_by_shrinking_the_names_drops_them() {
    let mut bed = shop::start().await;
    let both = ["shop/orders-1", "shop/orders-2"];
    let (mut stream, response) = sotw_through_moved(&mut bed, &both).await;

    stream.send(sotw_ack(&response, &["shop/orders-1"])).await;

    let shrunk = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&shrunk), ["shop/orders-1"]);
    stream.send(sotw_ack(&shrunk, &["shop/orders-1"])).await;
    bed.admin.delete(delete_orders_2()).await.unwrap();
    assert!(stream.quiet().await, "orders-2 is no longer subscribed");
}

#[tokio::test]
async fn sotw_explicit_star_subscribes_to_everything() {
    let mut bed = shop::start().await;
    let names = ["*", "shop/orders-1"];
    let (mut stream, response) = sotw_through_moved(&mut bed, &names).await;

    stream.send(sotw_ack(&response, &names)).await;
    bed.admin.delete(delete_orders_2()).await.unwrap();

    let next = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&next), ["shop/orders-1"]);
}

#[tokio::test]
async fn delta_responses_carry_version_and_nonce_and_acks_are_recorded() {
    let mut bed = shop::start().await;
    let mut stream = bed.delta("web-1", types::WORKLOAD, &["*"]).await;

    let response = stream.recv().await.unwrap();
    assert!(!response.system_version_info.is_empty() && !response.nonce.is_empty());
    stream.send(delta_ack(&response)).await;
    assert!(stream.quiet().await, "an ACK gets no answer");

    let workloads = bed.workload_status("web-1").await;
    assert_eq!(
        workloads.acked_revision.to_string(),
        response.system_version_info
    );
    assert_eq!(workloads.sent_revision, workloads.acked_revision);
    let held: Vec<(&str, &str)> = workloads
        .held
        .iter()
        .map(|h| (h.name.as_str(), h.version.as_str()))
        .collect();
    let resource = &response.resources[0];
    assert_eq!(held, [(resource.name.as_str(), resource.version.as_str())]);
}

#[tokio::test]
async fn delta_stale_nonce_is_ignored() {
    let mut bed = shop::start().await;
    let (mut stream, initial, added) = delta_through_moved(&mut bed, &["*"]).await;
    stream.send(delta_ack(&added)).await;

    let stale = delta_nack(&initial, "a late rejection");
    stream.send(stale).await;

    assert!(stream.quiet().await, "a stale nonce gets no answer");
    let workloads = bed.workload_status("web-1").await;
    assert!(
        workloads.last_nack_error.is_empty(),
        "a stale NACK is not recorded: {workloads:?}"
    );
    assert_eq!(
        workloads.acked_revision.to_string(),
        added.system_version_info
    );
}

#[tokio::test]
async fn delta_nack_is_recorded_and_the_rejected_version_is_not_resent() {
    let mut bed = shop::start().await;
    let (mut stream, initial, added) = delta_through_moved(&mut bed, &["*"]).await;

    stream
        .send(delta_nack(&added, "cannot apply orders-2"))
        .await;

    assert!(
        stream.quiet().await,
        "the rejected version must not come back"
    );
    let workloads = bed.workload_status("web-1").await;
    assert_eq!(workloads.last_nack_error, "cannot apply orders-2");
    assert_eq!(workloads.last_nack_revision, added.system_version_info);
    assert_eq!(
        workloads.acked_revision.to_string(),
        initial.system_version_info,
        "the client still runs what it last accepted"
    );

    apply(&mut bed.admin, ORDERS_2_CHANGED).await.unwrap();
    let next = stream.recv().await.unwrap();
    assert_eq!(names(&next), ["shop/orders-2"], "a new version is sent");
}

#[tokio::test]
async fn delta_unsubscribing_a_name_under_the_wildcard_resends_nothing() {
    let mut bed = shop::start().await;
    let mut stream = wildcard_and_orders_1(&mut bed).await;

    let unsubscribe = delta_request(None, types::WORKLOAD, &[], &["shop/orders-1"]);
    stream.send(unsubscribe).await;

    assert!(
        stream.quiet().await,
        "orders-1 still comes through the wildcard"
    );
    let changed = "kind: Workload\nmetadata: {name: orders-1, namespace: shop}\n\
                   spec: {service: orders, node: web-1, appPort: 9092, inboundPort: 15008}\n";
    apply(&mut bed.admin, changed).await.unwrap();
    let update = stream.recv().await.unwrap();
    assert_eq!(names(&update), ["shop/orders-1"]);
}

#[tokio::test]
async fn delta_unsubscribing_the_wildcard_leaves_no_spurious_removals() {
    let mut bed = shop::start().await;
    let mut stream = wildcard_and_orders_1(&mut bed).await;

    let unsubscribe = delta_request(None, types::WORKLOAD, &[], &["*"]);
    stream.send(unsubscribe).await;

    assert!(stream.quiet().await, "unsubscribing sends nothing");
    bed.admin.delete(delete_orders_2()).await.unwrap();
    assert!(
        stream.quiet().await,
        "orders-2 came only through the wildcard; its deletion is not the client's concern"
    );
}
