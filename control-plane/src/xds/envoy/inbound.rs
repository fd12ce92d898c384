//! The workload's inbound side: listeners that terminate mTLS with the
//! workload's certificate and enforce its Service's policies. These are
//! per workload (its ports and addresses), unlike the outbound resources.
//!
//! A gRPC server gets one Listener per address it may listen on, named by
//! gRPC's template, whose routes accept every call without forwarding.
//! Envoy gets one listener on 0.0.0.0:<inbound port> that forwards to the
//! application on 127.0.0.1:<app port>: HTTP with the caller's verified
//! identity in `x-forwarded-client-cert`, or a TCP proxy when the Service
//! speaks `tcp`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::{TrafficDirection, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::google::protobuf::Any;
use palisade_model::Protocol;

use super::proto::{hcm_filter, pack, router, socket};
use super::visible::Proxy;
use super::{Flavor, cluster, listener, names, rbac, route, tls};

/// The statistics prefix of inbound filters.
const STAT_PREFIX: &str = "inbound";

/// A gRPC server's Listener for `address`.
pub fn server_listener(proxy: &Proxy<'_>, address: SocketAddr) -> Any {
    let hcm = manager(proxy, route::server());
    let filters = vec![hcm_filter(hcm)];

    pack(inbound_listener(
        names::server_listener(address),
        address,
        filters,
        tls::downstream(Flavor::Grpc, true),
    ))
}

/// Envoy's inbound listener on 0.0.0.0:<inbound port>.
pub fn envoy_listener(proxy: &Proxy<'_>) -> Any {
    let protocol = proxy.inbound_protocol();
    let local = names::inbound(proxy.workload, proxy.spec.app_port);
    let filters = match protocol {
        Protocol::Tcp => {
            let mut filters = rbac::network_filters(proxy.world, &proxy.service);
            filters.push(listener::tcp_proxy(local, STAT_PREFIX.to_owned()));
            filters
        }
        Protocol::Http | Protocol::Grpc => vec![hcm_filter(forwarding_manager(proxy, local))],
    };

    let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), proxy.spec.inbound_port);
    let http = protocol != Protocol::Tcp;
    pack(inbound_listener(
        names::inbound(proxy.workload, proxy.spec.inbound_port),
        address,
        filters,
        tls::downstream(Flavor::Envoy, http),
    ))
}

/// Envoy's cluster for the application.
pub fn local_cluster(proxy: &Proxy<'_>) -> Any {
    let name = names::inbound(proxy.workload, proxy.spec.app_port);
    cluster::local(name, proxy.spec.app_port, proxy.inbound_protocol())
}

fn inbound_listener(
    name: String,
    address: SocketAddr,
    filters: Vec<Filter>,
    tls: TransportSocket,
) -> Listener {
    Listener {
        name,
        address: Some(socket(address.ip(), address.port())),
        traffic_direction: TrafficDirection::Inbound.into(),
        filter_chains: vec![FilterChain {
            name: STAT_PREFIX.to_owned(),
            filters,
            transport_socket: Some(tls),
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// An HTTP connection manager with inline routes and the RBAC filters
/// before the router.
fn manager(proxy: &Proxy<'_>, routes: RouteConfiguration) -> HttpConnectionManager {
    let mut http_filters = rbac::http_filters(proxy.world, &proxy.service);
    http_filters.push(router());

    HttpConnectionManager {
        stat_prefix: STAT_PREFIX.to_owned(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        http_filters,
        ..HttpConnectionManager::default()
    }
}

/// Envoy's manager: to the local cluster, replacing any client-sent
/// `x-forwarded-client-cert` with the verified caller's URI SAN.
fn forwarding_manager(proxy: &Proxy<'_>, local: String) -> HttpConnectionManager {
    use http_connection_manager::{ForwardClientCertDetails, SetCurrentClientCertDetails};

    HttpConnectionManager {
        forward_client_cert_details: ForwardClientCertDetails::SanitizeSet.into(),
        set_current_client_cert_details: Some(SetCurrentClientCertDetails {
            uri: true,
            ..SetCurrentClientCertDetails::default()
        }),
        ..manager(proxy, route::local(local, proxy.inbound_protocol()))
    }
}
