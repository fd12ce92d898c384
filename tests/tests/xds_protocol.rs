//! The ADS protocol's rules, state of the world and delta, against a real
//! control plane and agents authenticated by their node certificates.

use palisade_proto::xds as agent_pb;
use palisade_tests::identity::{TestNode, join_token};
use palisade_tests::xds::{
    Delta, Sotw, delta_ack, delta_request, names, sotw_ack, sotw_nack, sotw_request, types,
};
use palisade_tests::{Admin, ControlPlane, apply, pb};
use prost::Message;
use tonic::transport::Channel;

const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {address: 127.0.0.11}
---
kind: Node
metadata: {name: web-2}
spec: {address: 127.0.0.12}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec: {ports: [{port: 9090, protocol: grpc}]}
---
kind: Service
metadata: {name: storefront, namespace: shop}
spec: {ports: [{port: 8080, protocol: http}]}
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-2, appPort: 8080, inboundPort: 15008}
---
kind: AuthorizationPolicy
metadata: {name: orders-from-storefront, namespace: shop}
spec:
  targetService: orders
  rules:
    - from: [{identities: ["spiffe://xds.test/ns/shop/sa/storefront"]}]
"#;

/// A control plane holding [`SHOP`], with both nodes attested.
struct Bed {
    cp: ControlPlane,
    admin: Admin,
    web1: Channel,
    web2: Channel,
}

async fn bed() -> Bed {
    let mut cp = ControlPlane::init("xds.test").unwrap();
    cp.start().await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();
    let mut channels = Vec::new();
    for node in ["web-1", "web-2"] {
        let token = join_token(&mut admin, node, 0).await.unwrap();
        let attested = TestNode::attest(&cp, node, &token).await.unwrap();
        channels.push(attested.channel(&cp).await.unwrap());
    }
    let web2 = channels.pop().unwrap();
    let web1 = channels.pop().unwrap();
    Bed {
        cp,
        admin,
        web1,
        web2,
    }
}

/// The names of the resources in a SotW response.
fn sotw_names(
    response: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse,
) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| match any.type_url.as_str() {
            types::WORKLOAD => {
                let w = agent_pb::Workload::decode(any.value.as_slice()).unwrap();
                format!("{}/{}", w.namespace, w.name)
            }
            types::ENDPOINTS => {
                let e = agent_pb::Endpoints::decode(any.value.as_slice()).unwrap();
                format!("{}/{}", e.namespace, e.service)
            }
            types::AUTHORIZATION => {
                let a = agent_pb::Authorization::decode(any.value.as_slice()).unwrap();
                format!("{}/{}", a.namespace, a.service)
            }
            other => other.to_owned(),
        })
        .collect()
}

async fn fleet(admin: &mut Admin, node: &str) -> pb::FleetStatusResponse {
    let request = pb::FleetStatusRequest {
        node: node.into(),
        resources: true,
    };
    admin.fleet_status(request).await.unwrap().into_inner()
}

const MOVED: &str = "kind: Workload\nmetadata: {name: orders-2, namespace: shop}\n\
                     spec: {service: orders, node: web-1, appPort: 9091, inboundPort: 15009}\n";

#[tokio::test]
async fn sotw_responses_carry_version_and_nonce_and_acks_are_recorded() {
    let mut bed = bed().await;
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();

    let response = stream.recv().await.unwrap();
    assert!(!response.version_info.is_empty() && !response.nonce.is_empty());
    assert_eq!(sotw_names(&response), ["shop/orders-1"]);
    stream.send(sotw_ack(&response, &[])).await;
    assert!(stream.quiet().await, "an ACK gets no answer");

    let status = fleet(&mut bed.admin, "web-1").await;
    let workload_type = status.streams[0]
        .types
        .iter()
        .find(|t| t.type_url == types::WORKLOAD)
        .unwrap();
    assert_eq!(
        workload_type.acked_revision.to_string(),
        response.version_info
    );
    assert_eq!(workload_type.held[0].name, "shop/orders-1");
}

#[tokio::test]
async fn sotw_nack_is_recorded_and_the_rejected_set_is_not_resent() {
    let mut bed = bed().await;
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();
    let response = stream.recv().await.unwrap();

    stream
        .send(sotw_nack(&response, "", "cannot apply orders-1"))
        .await;

    assert!(stream.quiet().await, "the rejected set must not come back");
    let status = fleet(&mut bed.admin, "web-1").await;
    let nacked = status.streams[0]
        .types
        .iter()
        .find(|t| t.type_url == types::WORKLOAD)
        .unwrap();
    assert_eq!(nacked.last_nack_error, "cannot apply orders-1");
    assert_eq!(nacked.acked_revision, 0);

    apply(&mut bed.admin, MOVED).await.unwrap();
    let next = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&next), ["shop/orders-1", "shop/orders-2"]);
}

#[tokio::test]
async fn sotw_stale_nonce_is_ignored() {
    let bed = bed().await;
    let first = sotw_request(Some("web-1"), types::ENDPOINTS, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();
    let response = stream.recv().await.unwrap();
    stream.send(sotw_ack(&response, &[])).await;

    let mut stale = sotw_ack(&response, &["shop/orders"]);
    stale.response_nonce = "stale-nonce".into();
    stream.send(stale).await;

    assert!(stream.quiet().await, "a stale nonce changes nothing");
}

#[tokio::test]
async fn sotw_removed_resource_is_absent_from_the_next_set() {
    let mut bed = bed().await;
    apply(&mut bed.admin, MOVED).await.unwrap();
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();
    let response = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&response).len(), 2);
    stream.send(sotw_ack(&response, &[])).await;

    let delete = pb::DeleteRequest {
        kind: "Workload".into(),
        namespace: "shop".into(),
        name: "orders-2".into(),
        ..Default::default()
    };
    bed.admin.delete(delete).await.unwrap();

    let next = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&next), ["shop/orders-1"]);
    assert_ne!(next.version_info, response.version_info);
}

#[tokio::test]
async fn sotw_subscription_by_name_returns_only_those_names() {
    let bed = bed().await;
    let first = sotw_request(
        Some("web-2"),
        types::ENDPOINTS,
        &["shop/orders", "shop/ghost"],
    );
    let mut stream = Sotw::open(bed.web2.clone(), first).await.unwrap();

    let response = stream.recv().await.unwrap();
    assert_eq!(sotw_names(&response), ["shop/orders"]);
    let endpoints = agent_pb::Endpoints::decode(response.resources[0].value.as_slice()).unwrap();
    assert_eq!(endpoints.endpoints[0].address, "127.0.0.11");

    stream.send(sotw_ack(&response, &[])).await;
    let everything = stream.recv().await.unwrap();
    assert_eq!(
        sotw_names(&everything),
        ["shop/orders"],
        "empty names mean every endpoint"
    );
}

#[tokio::test]
async fn delta_sends_changes_once_and_reports_removals() {
    let mut bed = bed().await;
    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();
    let initial = stream.recv().await.unwrap();
    assert_eq!(names(&initial), ["shop/orders-1"]);
    stream.send(delta_ack(&initial)).await;

    apply(&mut bed.admin, MOVED).await.unwrap();
    let added = stream.recv().await.unwrap();
    assert_eq!(names(&added), ["shop/orders-2"], "only the change is sent");
    stream.send(delta_ack(&added)).await;

    let delete = pb::DeleteRequest {
        kind: "Workload".into(),
        namespace: "shop".into(),
        name: "orders-2".into(),
        ..Default::default()
    };
    bed.admin.delete(delete).await.unwrap();
    let removed = stream.recv().await.unwrap();
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["shop/orders-2"]);
}

#[tokio::test]
async fn delta_reconnect_with_initial_versions_resends_nothing_unchanged() {
    let mut bed = bed().await;
    apply(&mut bed.admin, MOVED).await.unwrap();
    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();
    let initial = stream.recv().await.unwrap();
    let held: Vec<(String, String)> = initial
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    drop(stream);

    let changed = "kind: Workload\nmetadata: {name: orders-2, namespace: shop}\n\
                   spec: {service: orders, node: web-1, appPort: 9092, inboundPort: 15009}\n";
    apply(&mut bed.admin, changed).await.unwrap();
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
    let mut bed = bed().await;
    let first = delta_request(Some("web-2"), types::ENDPOINTS, &["shop/orders"], &[]);
    let mut stream = Delta::open(bed.web2.clone(), first).await.unwrap();
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
    let bed = bed().await;
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
    let bed = bed().await;
    let unknown = "type.googleapis.com/example.Nothing";

    let mut sotw = Sotw::open(bed.web1.clone(), sotw_request(Some("web-1"), unknown, &[]))
        .await
        .unwrap();
    let mut delta = Delta::open(
        bed.web1.clone(),
        delta_request(Some("web-1"), unknown, &[], &[]),
    )
    .await
    .unwrap();

    let answer = sotw.recv().await.unwrap();
    assert!(answer.resources.is_empty());
    assert_eq!(answer.type_url, unknown);
    let answer = delta.recv().await.unwrap();
    assert!(answer.resources.is_empty() && answer.removed_resources.is_empty());
}

#[tokio::test]
async fn client_sending_garbage_is_disconnected_with_a_clear_status() {
    let bed = bed().await;

    let status = palisade_tests::xds::send_garbage(bed.web1.clone(), vec![0xff; 64]).await;

    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "{}",
        status.message()
    );
    assert!(
        status
            .message()
            .contains("could not be read as a discovery request"),
        "{}",
        status.message()
    );
    let healthy = Sotw::open(
        bed.web1.clone(),
        sotw_request(Some("web-1"), types::WORKLOAD, &[]),
    );
    assert!(
        healthy.await.unwrap().recv().await.is_ok(),
        "the server still serves"
    );
}

#[tokio::test]
async fn node_sees_only_its_own_workloads_whatever_it_names() {
    let bed = bed().await;
    let asks = ["shop/storefront-1", "shop/orders-1", "*"];
    let first = delta_request(Some("web-1"), types::WORKLOAD, &asks, &[]);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();

    let response = stream.recv().await.unwrap();
    assert_eq!(names(&response), ["shop/orders-1"]);
    assert!(
        response
            .removed_resources
            .contains(&"shop/storefront-1".to_owned())
    );

    let auth = delta_request(None, types::AUTHORIZATION, &["shop/storefront"], &[]);
    stream.send(auth).await;
    let response = stream.recv().await.unwrap();
    assert!(response.resources.is_empty(), "web-1 hosts no storefront");
}

#[tokio::test]
async fn node_id_must_match_the_certificate() {
    let bed = bed().await;

    let opened = Sotw::open(
        bed.web1.clone(),
        sotw_request(Some("web-2"), types::WORKLOAD, &[]),
    )
    .await;

    let status = match opened {
        Ok(mut stream) => stream.recv().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        tonic::Code::PermissionDenied,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("node.id claims node web-2"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn revoking_a_node_cuts_its_stream() {
    let mut bed = bed().await;
    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();
    let initial = stream.recv().await.unwrap();
    stream.send(delta_ack(&initial)).await;

    let revoke = pb::RevokeNodeRequest {
        node: "web-1".into(),
        reason: "test".into(),
    };
    bed.admin.revoke_node(revoke).await.unwrap();

    let status = stream.recv().await.unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::PermissionDenied,
        "{}",
        status.message()
    );
    let reopened = Delta::open(
        bed.web1.clone(),
        delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]),
    )
    .await;
    let refused = match reopened {
        Ok(mut stream) => stream.recv().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    drop(bed.cp);
}
