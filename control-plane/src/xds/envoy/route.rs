//! Route configurations: one virtual host for every authority (`*`), one
//! route for every path (prefix `/`).

use envoy_types::pb::envoy::config::route::v3::{
    NonForwardingAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::google::protobuf::Any;
use palisade_model::{Protocol, ServicePort};

use super::names;
use super::proto::{pack, seconds};
use crate::xds::world::Named;

/// `<service>.<namespace>:<port>`: everything to the port's cluster.
pub fn outbound(service: &Named, port: &ServicePort) -> Any {
    let name = names::route(service, port.port);
    let cluster = names::outbound(service, port.port);
    pack(config(name, forward(cluster, port.protocol)))
}

/// A gRPC server's routes: accept every call, forward none (gRPC servers
/// fail calls on any other action).
pub fn server() -> RouteConfiguration {
    let route = Route {
        r#match: Some(every_path()),
        action: Some(route::Action::NonForwardingAction(NonForwardingAction {})),
        ..Route::default()
    };
    config("inbound".to_owned(), route)
}

/// Envoy's inbound routes: everything to the local application.
pub fn local(cluster: String, protocol: Protocol) -> RouteConfiguration {
    config("inbound".to_owned(), forward(cluster, protocol))
}

fn config(name: String, route: Route) -> RouteConfiguration {
    let host = VirtualHost {
        name: name.clone(),
        domains: vec!["*".to_owned()],
        routes: vec![route],
        ..VirtualHost::default()
    };
    RouteConfiguration {
        name,
        virtual_hosts: vec![host],
        ..RouteConfiguration::default()
    }
}

/// Routes to `cluster`. gRPC streams may last long, so Envoy's default
/// 15 s request timeout is turned off for them (gRPC clients ignore it).
fn forward(cluster: String, protocol: Protocol) -> Route {
    let action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
        timeout: (protocol == Protocol::Grpc).then(|| seconds(0)),
        ..RouteAction::default()
    };
    Route {
        r#match: Some(every_path()),
        action: Some(route::Action::Route(action)),
        ..Route::default()
    }
}

fn every_path() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
        ..RouteMatch::default()
    }
}
