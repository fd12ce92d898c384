//! The shop as an Envoy sidecar sees it: storefront-1's proxy, which may
//! call orders, on state-of-the-world and delta streams authenticated by
//! the workload's SVID.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::shop::Shop;
use super::{Delta, QUIET, Sotw, delta_request, envoy_node, sotw_ack, types};
use crate::pb;

/// The node id of storefront-1's proxy.
pub const NODE_ID: &str = "shop/storefront-1";
/// The node storefront-1 runs on, under which its proxy's streams show.
pub const HOST: &str = "web-2";
/// The outbound listener, cluster and endpoints of orders' port 9090.
pub const OUTBOUND: &str = "outbound|9090|orders.shop";
/// The route of orders' port 9090.
pub const ROUTE: &str = "orders.shop:9090";
/// storefront-1's own mTLS listener, on its inbound port.
pub const INBOUND_LISTENER: &str = "inbound|15008|shop/storefront-1";
/// storefront-1's local cluster, its application port.
pub const LOCAL_CLUSTER: &str = "inbound|8080|shop/storefront-1";

/// The Envoy types in the order Envoy asks for them.
pub const TYPES: [&str; 4] = [
    types::LISTENER,
    types::CLUSTER,
    types::ROUTE,
    types::ENDPOINT,
];

/// What Envoy names of a type: nothing (the wildcard) for listeners and
/// clusters, the routes and endpoints it found in them by name.
pub fn subscription(type_url: &str) -> &'static [&'static str] {
    match type_url {
        types::ROUTE => &[ROUTE],
        types::ENDPOINT => &[OUTBOUND],
        _ => &[],
    }
}

/// A SotW request for `type_url` naming what [`subscription`] says.
pub fn sotw_request(type_url: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: subscription(type_url)
            .iter()
            .map(|n| n.to_string())
            .collect(),
        ..Default::default()
    }
}

/// A delta request for `type_url` subscribing to what [`subscription`]
/// says, resuming with `held`.
pub fn delta_resuming(type_url: &str, held: BTreeMap<String, String>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        initial_resource_versions: held.into_iter().collect(),
        ..delta_request(None, type_url, subscription(type_url), &[])
    }
}

/// The SotW ACK of `response`, keeping the type's subscription.
pub fn ack(response: &DiscoveryResponse) -> DiscoveryRequest {
    sotw_ack(response, subscription(&response.type_url))
}

impl Shop {
    /// Opens a SotW stream of storefront-1's Envoy whose first request asks
    /// for `type_url`.
    pub async fn envoy_sotw(&self, type_url: &str) -> Sotw {
        let channel = self.proxy_channel("storefront-1", "storefront").await;
        let first = DiscoveryRequest {
            node: Some(envoy_node(NODE_ID)),
            ..sotw_request(type_url)
        };
        Sotw::open(channel, first).await.expect("the stream opens")
    }

    /// Opens a delta stream of storefront-1's Envoy with `first`, which
    /// gets the node.
    pub async fn envoy_delta(&self, first: DeltaDiscoveryRequest) -> Delta {
        let channel = self.proxy_channel("storefront-1", "storefront").await;
        let first = DeltaDiscoveryRequest {
            node: Some(envoy_node(NODE_ID)),
            ..first
        };
        Delta::open(channel, first).await.expect("the stream opens")
    }

    /// What the fleet status says of `type_url` on the stream of
    /// storefront-1's Envoy.
    pub async fn envoy_status(&mut self, type_url: &str) -> pb::XdsTypeStatus {
        let streams = self.fleet(HOST).await.streams;
        let stream = streams
            .into_iter()
            .find(|s| s.client == "envoy" && s.workload == NODE_ID)
            .expect("storefront-1's Envoy is connected");
        stream
            .types
            .into_iter()
            .find(|t| t.type_url == type_url)
            .unwrap_or_else(|| panic!("the stream subscribed to {type_url}"))
    }
}

impl Sotw {
    /// Acknowledges every response until none comes for [`QUIET`], keeping
    /// each type's [`subscription`]; returns what came.
    pub async fn ack_until_quiet(&mut self) -> Vec<DiscoveryResponse> {
        let mut received = Vec::new();
        while let Ok(message) = tokio::time::timeout(QUIET, self.rx.message()).await {
            let response = message
                .expect("the stream stays healthy")
                .expect("the stream stays open");
            self.send(ack(&response)).await;
            received.push(response);
        }
        received
    }
}

/// The names of the Envoy resources in a SotW response.
pub fn envoy_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| {
            let bytes = any.value.as_slice();
            match any.type_url.as_str() {
                types::LISTENER => Listener::decode(bytes).unwrap().name,
                types::ROUTE => RouteConfiguration::decode(bytes).unwrap().name,
                types::CLUSTER => Cluster::decode(bytes).unwrap().name,
                types::ENDPOINT => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
                other => panic!("not an Envoy type: {other}"),
            }
        })
        .collect()
}

/// What a delta client holds after applying `responses`, by type, name to
/// version.
pub fn held(responses: &[DeltaDiscoveryResponse]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut held: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for response in responses {
        let of_type = held.entry(response.type_url.clone()).or_default();
        for resource in &response.resources {
            of_type.insert(resource.name.clone(), resource.version.clone());
        }
        for name in &response.removed_resources {
            of_type.remove(name);
        }
    }
    held
}

/// How many endpoints a ClusterLoadAssignment carries, in all localities.
pub fn endpoint_count(resource: &Any) -> usize {
    let assignment = ClusterLoadAssignment::decode(resource.value.as_slice()).unwrap();
    assignment
        .endpoints
        .iter()
        .map(|locality| locality.lb_endpoints.len())
        .sum()
}
