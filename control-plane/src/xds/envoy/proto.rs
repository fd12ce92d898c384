//! Small constructors for the Envoy messages every builder uses.

use std::collections::HashMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions, SocketAddress,
    TransportSocket, address, config_source, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::{Any, Duration};
use envoy_types::util::pack_any;
use prost::{Message, Name};

/// The network filter name of the HTTP connection manager.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

/// The HTTP filter name of the router; it must be the last filter.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// The transport socket name of TLS.
pub const TLS_SOCKET: &str = "envoy.transport_sockets.tls";

/// Resources of this kind come over the same ADS stream, in xDS v3.
pub fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        resource_api_version: ApiVersion::V3.into(),
        ..ConfigSource::default()
    }
}

/// A TCP socket address.
pub fn socket(ip: IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..SocketAddress::default()
        })),
    }
}

/// A message packed in an Any.
pub fn pack<T: Message + Name>(message: T) -> Any {
    pack_any(message)
}

/// A network filter with its typed config.
pub fn network_filter(name: &str, config: Any) -> Filter {
    Filter {
        name: name.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(config)),
    }
}

/// The HTTP connection manager as a network filter.
pub fn hcm_filter(hcm: HttpConnectionManager) -> Filter {
    network_filter(HCM_FILTER, pack(hcm))
}

/// An HTTP filter with its typed config.
pub fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..HttpFilter::default()
    }
}

/// The router, which gRPC requires as the last HTTP filter.
pub fn router() -> HttpFilter {
    http_filter(ROUTER_FILTER, pack(Router::default()))
}

/// A TLS transport socket with an Upstream- or DownstreamTlsContext.
pub fn tls_socket(context: Any) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(context)),
    }
}

/// Whole seconds.
pub fn seconds(seconds: i64) -> Duration {
    Duration { seconds, nanos: 0 }
}

/// Cluster protocol options that make Envoy speak HTTP/2 upstream, as gRPC
/// needs. One entry, so the map encodes the same way every time.
pub fn http2_upstream() -> HashMap<String, Any> {
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    use http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions};

    let http2 = ExplicitHttpConfig {
        protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
            Http2ProtocolOptions::default(),
        )),
    };
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(http2)),
        ..HttpProtocolOptions::default()
    };
    HashMap::from([(HttpProtocolOptions::full_name(), pack(options))])
}
