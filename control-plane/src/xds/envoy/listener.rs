//! Client-side listeners: gRPC's API listeners, and Envoy's loopback
//! listeners, one per upstream port.

use std::net::{IpAddr, Ipv4Addr};

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::google::protobuf::Any;
use palisade_model::{Protocol, ServicePort};

use super::names;
use super::proto::{ads, hcm_filter, network_filter, pack, router, socket};
use crate::xds::world::Named;

/// The network filter name of the TCP proxy.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";

/// gRPC's listener for `xds:///<service>.<namespace>[:<port>]`: an HTTP
/// connection manager whose routes come over RDS, with only the router.
/// `bare` names the listener without the port, which the first port serves.
pub fn client(service: &Named, port: u16, bare: bool) -> Any {
    let name = names::client_listener(service, (!bare).then_some(port));
    let hcm = rds_manager(names::route(service, port), "outbound".to_owned());

    pack(Listener {
        name,
        api_listener: Some(ApiListener {
            api_listener: Some(pack(hcm)),
        }),
        ..Listener::default()
    })
}

/// Envoy's listener on 127.0.0.1:<port> for one upstream port: HTTP with
/// routes over RDS, or a TCP proxy for a `tcp` port.
pub fn outbound(service: &Named, port: &ServicePort) -> Any {
    let name = names::outbound(service, port.port);
    let stat_prefix = format!("outbound_{}", port.port);
    let filter = match port.protocol {
        Protocol::Tcp => tcp_proxy(name.clone(), stat_prefix),
        Protocol::Http | Protocol::Grpc => {
            hcm_filter(rds_manager(names::route(service, port.port), stat_prefix))
        }
    };

    pack(Listener {
        name,
        address: Some(socket(IpAddr::V4(Ipv4Addr::LOCALHOST), port.port)),
        traffic_direction: TrafficDirection::Outbound.into(),
        filter_chains: vec![FilterChain {
            filters: vec![filter],
            ..FilterChain::default()
        }],
        ..Listener::default()
    })
}

/// A TCP proxy to `cluster`.
pub fn tcp_proxy(cluster: String, stat_prefix: String) -> Filter {
    let proxy = TcpProxy {
        stat_prefix,
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)),
        ..TcpProxy::default()
    };
    network_filter(TCP_PROXY_FILTER, pack(proxy))
}

fn rds_manager(route: String, stat_prefix: String) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route,
        })),
        http_filters: vec![router()],
        ..HttpConnectionManager::default()
    }
}
