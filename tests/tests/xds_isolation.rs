//! Isolation: a stream speaks for the client its certificate names and sees
//! only that client's view, whatever names it asks for, whether it is an
//! agent or a workload's Envoy or gRPC proxy.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryResponse};
use palisade_tests::pb;
use palisade_tests::xds::shop::{self, sotw_names};
use palisade_tests::xds::{
    Delta, Sotw, assert_status, delta_ack, delta_request, envoy_node, names, refusal, sotw_request,
    types,
};
use prost::Message;

/// gRPC's server listener name for an address.
fn server_listener(address: &str) -> String {
    format!("grpc/server?xds.resource.listening_address={address}")
}

/// The names of the Listeners or Clusters in a SotW response.
fn envoy_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| match any.type_url.as_str() {
            types::LISTENER => Listener::decode(any.value.as_slice()).unwrap().name,
            types::CLUSTER => Cluster::decode(any.value.as_slice()).unwrap().name,
            other => panic!("unexpected {other}"),
        })
        .collect()
}

#[tokio::test]
async fn agent_delta_stream_sees_only_its_own_workloads_whatever_it_names() {
    let bed = shop::start().await;
    let asks = ["shop/storefront-1", "shop/orders-1", "*"];
    let mut stream = bed.delta("web-1", types::WORKLOAD, &asks).await;

    let response = stream.recv().await.unwrap();
    assert_eq!(names(&response), ["shop/orders-1"]);
    assert!(
        response
            .removed_resources
            .contains(&"shop/storefront-1".to_owned())
    );

    let auth = delta_request(None, types::AUTHORIZATION, &["shop/storefront"], &[]);
    let response = stream.ask(auth).await.unwrap();
    assert!(response.resources.is_empty(), "web-1 hosts no storefront");
}

#[tokio::test]
async fn agent_sotw_stream_sees_only_its_own_workloads_rules_and_upstreams() {
    let bed = shop::start().await;
    let asks = ["shop/orders-1", "shop/storefront-1"];
    let mut stream = bed.sotw("web-1", types::WORKLOAD, &asks).await;

    let workloads = stream.recv().await.unwrap();
    let services = ["shop/orders", "shop/storefront"];
    let rules = sotw_request(None, types::AUTHORIZATION, &services);
    let rules = stream.ask(rules).await.unwrap();
    let upstreams = ["shop/storefront", "shop/orders"];
    let endpoints = sotw_request(None, types::ENDPOINTS, &upstreams);
    let endpoints = stream.ask(endpoints).await.unwrap();

    assert_eq!(sotw_names(&workloads), ["shop/orders-1"]);
    assert_eq!(sotw_names(&rules), ["shop/orders"]);
    assert!(
        endpoints.resources.is_empty(),
        "orders may call nothing: {:?}",
        sotw_names(&endpoints)
    );
}

#[tokio::test]
async fn grpc_proxy_sees_only_its_own_workloads_listeners_and_clusters() {
    let bed = shop::start().await;
    let channel = bed.proxy_channel("orders-1", "orders").await;
    let own = server_listener("127.0.0.11:15008");
    let asks = [
        "orders.shop".to_owned(),
        "storefront.shop:8080".to_owned(),
        server_listener("127.0.0.12:15008"),
        own.clone(),
    ];
    let asks: Vec<&str> = asks.iter().map(String::as_str).collect();
    let first = sotw_request(Some("shop/orders-1"), types::LISTENER, &asks);
    let mut stream = Sotw::open(channel, first).await.unwrap();

    let listeners = stream.recv().await.unwrap();
    let clusters = ["outbound|9090|orders.shop", "outbound|8080|storefront.shop"];
    let clusters = sotw_request(None, types::CLUSTER, &clusters);
    let clusters = stream.ask(clusters).await.unwrap();
    let workloads = sotw_request(None, types::WORKLOAD, &[]);
    let workloads = stream.ask(workloads).await.unwrap();

    assert_eq!(
        envoy_names(&listeners),
        [own],
        "orders may call nothing, and storefront's server listener is not its own"
    );
    assert!(
        clusters.resources.is_empty(),
        "{:?}",
        envoy_names(&clusters)
    );
    assert!(
        workloads.resources.is_empty(),
        "a proxy gets no node's agent resources"
    );
}

#[tokio::test]
async fn grpc_proxy_resolves_only_what_its_workload_may_call() {
    let bed = shop::start().await;
    let channel = bed.proxy_channel("storefront-1", "storefront").await;
    let asks = [
        "orders.shop".to_owned(),
        server_listener("127.0.0.11:15008"),
    ];
    let asks: Vec<&str> = asks.iter().map(String::as_str).collect();
    let first = sotw_request(Some("shop/storefront-1"), types::LISTENER, &asks);
    let mut stream = Sotw::open(channel, first).await.unwrap();

    let listeners = stream.recv().await.unwrap();

    assert_eq!(
        envoy_names(&listeners),
        ["orders.shop"],
        "orders-1's server listener belongs to another node's workload"
    );
}

#[tokio::test]
async fn envoy_proxy_sees_nothing_of_another_workload_or_node() {
    let bed = shop::start().await;
    let channel = bed.proxy_channel("storefront-1", "storefront").await;
    let others = ["inbound|15008|shop/orders-1", "inbound|9090|shop/orders-1"];
    let mut asks = vec!["*"];
    asks.extend(others);
    let first = DeltaDiscoveryRequest {
        node: Some(envoy_node("shop/storefront-1")),
        ..delta_request(None, types::LISTENER, &asks, &[])
    };
    let mut stream = Delta::open(channel, first).await.unwrap();

    let listeners = stream.recv().await.unwrap();
    stream.send(delta_ack(&listeners)).await;
    let clusters = delta_request(None, types::CLUSTER, &asks, &[]);
    let clusters = stream.ask(clusters).await.unwrap();
    let workloads = delta_request(None, types::WORKLOAD, &["*", "shop/orders-1"], &[]);
    let workloads = stream.ask(workloads).await.unwrap();

    for response in [&listeners, &clusters] {
        let received = names(response);
        assert!(!received.is_empty(), "the proxy has its own resources");
        assert!(
            received.iter().all(|n| !n.contains("shop/orders-1")),
            "{received:?}"
        );
    }
    assert!(names(&listeners).contains(&"inbound|15008|shop/storefront-1".to_owned()));
    assert!(workloads.resources.is_empty(), "{:?}", names(&workloads));
}

#[tokio::test]
async fn proxy_certificate_speaks_only_for_its_own_workload() {
    let bed = shop::start().await;
    let channel = bed.proxy_channel("orders-1", "orders").await;

    let first = sotw_request(Some("shop/storefront-1"), types::LISTENER, &[]);
    let status = refusal(Sotw::open(channel, first).await).await;

    let says = "workload shop/storefront-1";
    assert_status(&status, tonic::Code::PermissionDenied, says);
}

#[tokio::test]
async fn node_id_must_match_the_certificate() {
    let bed = shop::start().await;

    let first = sotw_request(Some("web-2"), types::WORKLOAD, &[]);
    let status = refusal(Sotw::open(bed.web1.clone(), first).await).await;

    let says = "node.id claims node web-2";
    assert_status(&status, tonic::Code::PermissionDenied, says);
}

#[tokio::test]
async fn revoking_a_node_cuts_its_stream() {
    let mut bed = shop::start().await;
    let mut stream = bed.delta("web-1", types::WORKLOAD, &["*"]).await;
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
    let again = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let refused = refusal(Delta::open(bed.web1.clone(), again).await).await;
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    drop(bed.cp);
}
