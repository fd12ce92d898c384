//! ClusterLoadAssignments: where a Service's workloads accept mTLS.
//!
//! One locality per node (region [`REGION`], zone the node's name), in node
//! name order, each weighted by its number of endpoints: gRPC drops a
//! locality without a weight, and equal per-endpoint weights keep round
//! robin even across nodes. An endpoint is a workload's address (else its
//! node's) and its inbound port. Addresses that are not IP addresses (a
//! node known by a DNS name) are left out, because EDS carries only IPs;
//! duplicate addresses are listed once. No health checks run, so health is
//! left UNKNOWN, which both Envoy and gRPC treat as usable.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use palisade_model::{ServicePort, WorkloadSpec};

use super::names;
use super::proto::{pack, socket};
use crate::xds::world::{Named, World};

/// The region of every locality.
pub const REGION: &str = "palisade";

/// The endpoints of `outbound|<port>|<service>.<namespace>`.
pub fn outbound(world: &World, service: &Named, port: &ServicePort) -> Any {
    let mut by_node: BTreeMap<&str, Vec<(IpAddr, u16)>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (_, workload) in world.workloads_of(service) {
        let Some(ip) = workload_address(world, workload) else {
            continue;
        };
        if seen.insert((ip, workload.inbound_port)) {
            let endpoints = by_node.entry(workload.node.as_str()).or_default();
            endpoints.push((ip, workload.inbound_port));
        }
    }

    let endpoints = by_node
        .into_iter()
        .map(|(node, endpoints)| locality(Some(node), endpoints))
        .collect();
    pack(ClusterLoadAssignment {
        cluster_name: names::outbound(service, port.port),
        endpoints,
        ..ClusterLoadAssignment::default()
    })
}

/// The workload's address, else its node's, when it is an IP address.
pub fn workload_address(world: &World, workload: &WorkloadSpec) -> Option<IpAddr> {
    let node = || world.nodes.get(&workload.node)?.address.clone();
    workload.address.clone().or_else(node)?.parse().ok()
}

/// One weighted locality: the node's when `node` is given.
pub fn locality(
    node: Option<&str>,
    endpoints: impl IntoIterator<Item = (IpAddr, u16)>,
) -> LocalityLbEndpoints {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .into_iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(ip, port)),
                ..Endpoint::default()
            })),
            ..LbEndpoint::default()
        })
        .collect();
    let weight = u32::try_from(lb_endpoints.len()).unwrap_or(u32::MAX);

    LocalityLbEndpoints {
        locality: node.map(|node| Locality {
            region: REGION.to_owned(),
            zone: node.to_owned(),
            ..Locality::default()
        }),
        lb_endpoints,
        load_balancing_weight: Some(UInt32Value { value: weight }),
        ..LocalityLbEndpoints::default()
    }
}
