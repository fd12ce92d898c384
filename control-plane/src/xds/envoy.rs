//! Envoy-typed resources for one workload's proxy: an Envoy sidecar, or a
//! proxyless gRPC client or server that identifies as that workload.
//!
//! A proxy sees, for every Service its workload may call (see
//! [`World::callable_by`]), listeners, routes, clusters and endpoints, and,
//! for its own workload, the inbound side: the listeners that terminate mTLS
//! and enforce the Service's AuthorizationPolicies as RBAC filters.
//!
//! | resource | names | depends on |
//! | --- | --- | --- |
//! | client listener (gRPC) | `<svc>.<ns>`, `<svc>.<ns>:<port>` | service, port |
//! | outbound listener (Envoy) | `outbound\|<port>\|<svc>.<ns>` | service, port |
//! | route | `<svc>.<ns>:<port>` | service, port |
//! | cluster | `outbound\|<port>\|<svc>.<ns>` | service, port, flavor |
//! | endpoints | `outbound\|<port>\|<svc>.<ns>` | service, port |
//! | server listener (gRPC) | `grpc/server?xds.resource.listening_address=<host>:<port>` | workload |
//! | inbound listener (Envoy) | `inbound\|<inbound port>\|<ns>/<workload>` | workload |
//! | local cluster (Envoy) | `inbound\|<app port>\|<ns>/<workload>` | workload |
//!
//! Everything but the last three depends only on the Service, the port and
//! the flavor, never on which workload asks, so the server may build such a
//! resource once and share it between proxies; the last three are built
//! per workload. Which names a proxy may see does depend on the workload.
//!
//! Builders are pure and deterministic: the same world gives the same bytes.

mod cluster;
mod endpoint;
mod inbound;
mod listener;
mod names;
mod proto;
mod rbac;
mod route;
mod tls;
mod visible;

use super::Built;
use super::world::{Named, World};
use visible::{Proxy, Resource};

pub use names::{
    AGENT_SDS_CLUSTER, CERTIFICATE_PROVIDER, ROOT_CERTIFICATE, SERVER_LISTENER_TEMPLATE,
    WORKLOAD_CERTIFICATE,
};

/// The type URL of `envoy.config.listener.v3.Listener`.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// The type URL of `envoy.config.route.v3.RouteConfiguration`.
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// The type URL of `envoy.config.cluster.v3.Cluster`.
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// The type URL of `envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Every Envoy type a proxy may subscribe to, in the order gRPC asks.
pub const TYPES: [&str; 4] = [LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE];

/// What kind of client the proxy is. The server tells them apart by the
/// node's `user_agent_name`: `envoy` for Envoy, anything else for gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavor {
    /// An Envoy sidecar: socket listeners on loopback, certificates over SDS
    /// from the host's agent.
    Envoy,
    /// A proxyless gRPC client or server: API listeners, server listeners
    /// named by gRPC's template, certificates from the bootstrap's
    /// certificate provider.
    Grpc,
}

/// Every resource name a proxy may see, by type, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyKeys {
    pub listeners: Vec<String>,
    pub routes: Vec<String>,
    pub clusters: Vec<String>,
    pub endpoints: Vec<String>,
}

/// The names the proxy of `workload` may see; `None` when the workload or
/// its Service does not exist.
pub fn proxy_keys(world: &World, workload: &Named, flavor: Flavor) -> Option<ProxyKeys> {
    let proxy = Proxy::new(world, workload, flavor)?;

    let mut keys = ProxyKeys::default();
    for resource in proxy.resources() {
        let list = match resource.type_url() {
            LISTENER_TYPE => &mut keys.listeners,
            ROUTE_TYPE => &mut keys.routes,
            CLUSTER_TYPE => &mut keys.clusters,
            _ => &mut keys.endpoints,
        };
        list.push(proxy.name(&resource));
    }

    for list in [
        &mut keys.listeners,
        &mut keys.routes,
        &mut keys.clusters,
        &mut keys.endpoints,
    ] {
        list.sort();
        list.dedup();
    }
    Some(keys)
}

/// Builds the resource of `type_url` named `name` for the proxy of
/// `workload`; `None` when the proxy may not see such a resource.
pub fn build(
    world: &World,
    workload: &Named,
    flavor: Flavor,
    type_url: &str,
    name: &str,
) -> Option<Built> {
    let proxy = Proxy::new(world, workload, flavor)?;
    let resource = proxy
        .resources()
        .into_iter()
        .find(|resource| resource.type_url() == type_url && proxy.name(resource) == name)?;

    let any = match &resource {
        Resource::ClientListener {
            service,
            port,
            bare,
        } => listener::client(service, *port, *bare),
        Resource::OutboundListener { service, port } => listener::outbound(service, port),
        Resource::Route { service, port } => route::outbound(service, port),
        Resource::Cluster { service, port } => cluster::outbound(world, service, port, flavor)?,
        Resource::Endpoints { service, port } => endpoint::outbound(world, service, port),
        Resource::ServerListener { address } => inbound::server_listener(&proxy, *address),
        Resource::InboundListener => inbound::envoy_listener(&proxy),
        Resource::LocalCluster => inbound::local_cluster(&proxy),
    };
    Some(Built {
        name: name.to_owned(),
        any,
    })
}

/// The type URLs above, as the generated types name themselves.
#[cfg(test)]
fn type_urls() -> [(String, &'static str); 4] {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use prost::Name;

    [
        (Listener::type_url(), LISTENER_TYPE),
        (RouteConfiguration::type_url(), ROUTE_TYPE),
        (Cluster::type_url(), CLUSTER_TYPE),
        (ClusterLoadAssignment::type_url(), ENDPOINT_TYPE),
    ]
}

#[cfg(test)]
mod tests;
