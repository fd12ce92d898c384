//! The names of the resources and of the things they refer to. Bootstraps
//! (`palisadectl bootstrap`) must use the same certificate, provider and
//! cluster names.

use std::net::SocketAddr;

use crate::xds::world::Named;

/// gRPC's template for the name of a server's Listener; `%s` is the
/// listening address, `host:port`, with an IPv6 host in brackets.
pub const SERVER_LISTENER_TEMPLATE: &str = "grpc/server?xds.resource.listening_address=%s";

/// The certificate provider instance that a gRPC bootstrap defines (a
/// `file_watcher` over the files the agent writes).
pub const CERTIFICATE_PROVIDER: &str = "palisade";

/// The workload's own certificate and key: the SDS secret name for Envoy,
/// the certificate name within the provider for gRPC.
pub const WORKLOAD_CERTIFICATE: &str = "default";

/// The trust bundle, named as [`WORKLOAD_CERTIFICATE`] is.
pub const ROOT_CERTIFICATE: &str = "ROOTCA";

/// The static cluster in an Envoy bootstrap that reaches the host agent's
/// SDS service over its Unix socket.
pub const AGENT_SDS_CLUSTER: &str = "palisade_agent";

/// `<service>.<namespace>`: the authority clients dial.
pub fn service_host((namespace, service): &Named) -> String {
    format!("{service}.{namespace}")
}

/// `<service>.<namespace>`, or with `:<port>`.
pub fn client_listener(service: &Named, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{}:{port}", service_host(service)),
        None => service_host(service),
    }
}

/// `<service>.<namespace>:<port>`.
pub fn route(service: &Named, port: u16) -> String {
    client_listener(service, Some(port))
}

/// `outbound|<port>|<service>.<namespace>`: the cluster, its endpoints and
/// Envoy's outbound listener.
pub fn outbound(service: &Named, port: u16) -> String {
    format!("outbound|{port}|{}", service_host(service))
}

/// gRPC's server Listener name for a listening address.
pub fn server_listener(address: SocketAddr) -> String {
    SERVER_LISTENER_TEMPLATE.replace("%s", &address.to_string())
}

/// `inbound|<port>|<namespace>/<workload>`: Envoy's inbound listener (with
/// the inbound port) and its local cluster (with the app port).
pub fn inbound((namespace, workload): &Named, port: u16) -> String {
    format!("inbound|{port}|{namespace}/{workload}")
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;

    fn orders() -> Named {
        ("shop".to_owned(), "orders".to_owned())
    }

    #[test]
    fn outbound_names_follow_the_conventions() {
        assert_eq!(client_listener(&orders(), None), "orders.shop");
        assert_eq!(client_listener(&orders(), Some(9090)), "orders.shop:9090");
        assert_eq!(route(&orders(), 9090), "orders.shop:9090");
        assert_eq!(outbound(&orders(), 9090), "outbound|9090|orders.shop");
    }

    #[test]
    fn server_listener_names_bracket_ipv6_hosts() {
        let v4 = SocketAddr::from(([0, 0, 0, 0], 15008));
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 15008);

        assert_eq!(
            server_listener(v4),
            "grpc/server?xds.resource.listening_address=0.0.0.0:15008"
        );
        assert_eq!(
            server_listener(v6),
            "grpc/server?xds.resource.listening_address=[::]:15008"
        );
    }
}
