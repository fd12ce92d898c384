//! Clusters: one per upstream (Service, port), whose endpoints come over
//! EDS, and Envoy's local cluster for the workload's own application.

use std::net::{IpAddr, Ipv4Addr};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::protobuf::Any;
use palisade_model::{Protocol, ServicePort};

use super::proto::{ads, http2_upstream, pack, seconds};
use super::{Flavor, endpoint, names, tls};
use crate::xds::world::{Named, World};

/// How long Envoy waits for a TCP connection to an endpoint.
const CONNECT_TIMEOUT_SECONDS: i64 = 5;

/// `outbound|<port>|<service>.<namespace>`: EDS over ADS, round robin, mTLS
/// that requires the Service's SPIFFE ID. `None` when the Service is gone.
pub fn outbound(world: &World, service: &Named, port: &ServicePort, flavor: Flavor) -> Option<Any> {
    let identity = world.service_identity(service)?;
    let grpc = port.protocol == Protocol::Grpc;

    let mut cluster = Cluster {
        name: names::outbound(service, port.port),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds.into(),
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            ..cluster::EdsClusterConfig::default()
        }),
        connect_timeout: Some(seconds(CONNECT_TIMEOUT_SECONDS)),
        lb_policy: cluster::LbPolicy::RoundRobin.into(),
        transport_socket: Some(tls::upstream(flavor, &identity, grpc)),
        ..Cluster::default()
    };
    if flavor == Flavor::Envoy && grpc {
        cluster.typed_extension_protocol_options = http2_upstream();
    }
    Some(pack(cluster))
}

/// Envoy's cluster for the application: 127.0.0.1:<app port>, plaintext,
/// HTTP/2 when the application speaks gRPC.
pub fn local(name: String, app_port: u16, protocol: Protocol) -> Any {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let assignment = ClusterLoadAssignment {
        cluster_name: name.clone(),
        endpoints: vec![endpoint::locality(None, [(loopback, app_port)])],
        ..ClusterLoadAssignment::default()
    };

    let mut cluster = Cluster {
        name,
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static.into(),
        )),
        connect_timeout: Some(seconds(CONNECT_TIMEOUT_SECONDS)),
        load_assignment: Some(assignment),
        ..Cluster::default()
    };
    if protocol == Protocol::Grpc {
        cluster.typed_extension_protocol_options = http2_upstream();
    }
    pack(cluster)
}
