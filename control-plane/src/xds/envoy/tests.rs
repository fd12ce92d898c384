use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, ConfigSource, address, config_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route, route_action};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext, common_tls_context,
    subject_alt_name_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::*;
use crate::xds::testing::world_at;

mod inbound;
mod outbound;

/// Nodes with an IP, without an address, and with a DNS name; Services with
/// several ports, colliding ports and a TCP port; policies that let
/// storefront call every Service of the namespace (itself too), and orders
/// call storefront.
const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {address: 10.0.0.1}
---
kind: Node
metadata: {name: web-2}
spec: {}
---
kind: Node
metadata: {name: web-3}
spec: {address: web-3.example.com}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{name: api, port: 9090, protocol: grpc}, {port: 9100, protocol: http}]
  serviceAccount: orders-sa
---
kind: Service
metadata: {name: storefront, namespace: shop}
spec: {ports: [{port: 8080, protocol: http}]}
---
kind: Service
metadata: {name: billing, namespace: shop}
spec: {ports: [{port: 8080, protocol: grpc}]}
---
kind: Service
metadata: {name: legacy, namespace: shop}
spec: {ports: [{port: 7000}]}
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: orders-2, namespace: shop}
spec: {service: orders, node: web-2, address: 10.0.0.7, appPort: 9090, inboundPort: 15009}
---
kind: Workload
metadata: {name: orders-3, namespace: shop}
spec: {service: orders, node: web-2, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: orders-4, namespace: shop}
spec: {service: orders, node: web-3, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: orders-5, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9091, inboundPort: 15011}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-1, appPort: 8081, inboundPort: 15010}
---
kind: Workload
metadata: {name: legacy-1, namespace: shop}
spec: {service: legacy, node: web-1, appPort: 7001, inboundPort: 15012}
---
kind: AuthorizationPolicy
metadata: {name: from-storefront, namespace: shop}
spec:
  rules:
    - from: [{identities: ["spiffe://td/ns/shop/sa/storefront"]}]
---
kind: AuthorizationPolicy
metadata: {name: storefront-from-orders, namespace: shop}
spec:
  targetService: storefront
  rules:
    - from: [{identities: ["spiffe://td/ns/shop/sa/orders-sa"]}]
"#;

pub(super) fn world_of(yaml: &str) -> World {
    world_at(yaml, 1)
}

pub(super) use crate::xds::testing::named;

fn shop() -> World {
    world_of(SHOP)
}

fn built(world: &World, workload: &str, flavor: Flavor, type_url: &str, name: &str) -> Built {
    let workload = named("shop", workload);
    build(world, &workload, flavor, type_url, name)
        .unwrap_or_else(|| panic!("{type_url} {name} is not built"))
}

fn decode<M: Message + Name + Default>(any: &Any) -> M {
    assert_eq!(any.type_url, M::type_url());
    M::decode(&any.value[..]).unwrap()
}

fn listener(flavor: Flavor, workload: &str, name: &str) -> Listener {
    decode(&built(&shop(), workload, flavor, LISTENER_TYPE, name).any)
}

fn cluster(flavor: Flavor, name: &str) -> Cluster {
    decode(&built(&shop(), "storefront-1", flavor, CLUSTER_TYPE, name).any)
}

fn typed_config(filter: &Filter) -> &Any {
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any,
        other => panic!("filter {} has no typed config: {other:?}", filter.name),
    }
}

/// The one HTTP connection manager of the listener's only filter chain.
fn only_manager(listener: &Listener) -> HttpConnectionManager {
    assert_eq!(listener.filter_chains.len(), 1);
    let filters = &listener.filter_chains[0].filters;
    assert_eq!(filters.len(), 1, "exactly one network filter");
    assert_eq!(
        filters[0].name,
        "envoy.filters.network.http_connection_manager"
    );
    decode(typed_config(&filters[0]))
}

fn filter_names(hcm: &HttpConnectionManager) -> Vec<&str> {
    hcm.http_filters.iter().map(|f| f.name.as_str()).collect()
}

fn assert_router_last(hcm: &HttpConnectionManager) {
    let last = hcm.http_filters.last().expect("some HTTP filter");
    let Some(http_filter::ConfigType::TypedConfig(config)) = &last.config_type else {
        panic!("router has no typed config");
    };
    assert_eq!(config.type_url, Router::type_url());
}

fn is_ads(source: &Option<ConfigSource>) -> bool {
    let source = source.as_ref().expect("a config source");
    matches!(
        source.config_source_specifier,
        Some(config_source::ConfigSourceSpecifier::Ads(_))
    ) && source.resource_api_version
        == i32::from(envoy_types::pb::envoy::config::core::v3::ApiVersion::V3)
}

fn socket(address: &Option<Address>) -> (String, u32) {
    let Some(address::Address::SocketAddress(socket)) =
        address.as_ref().and_then(|a| a.address.clone())
    else {
        panic!("not a socket address: {address:?}");
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier else {
        panic!("no port");
    };
    (socket.address, port)
}

fn common_tls(socket: &Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>) -> Any {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let socket = socket.as_ref().expect("a transport socket");
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        panic!("no TLS context");
    };
    any.clone()
}

fn assert_grpc_providers(common: &CommonTlsContext) {
    let identity = common.tls_certificate_provider_instance.as_ref().unwrap();
    assert_eq!(
        (
            identity.instance_name.as_str(),
            identity.certificate_name.as_str()
        ),
        ("palisade", "default")
    );
    let Some(common_tls_context::ValidationContextType::ValidationContext(validation)) =
        &common.validation_context_type
    else {
        panic!("gRPC needs a plain validation context");
    };
    let roots = validation
        .ca_certificate_provider_instance
        .as_ref()
        .unwrap();
    assert_eq!(
        (
            roots.instance_name.as_str(),
            roots.certificate_name.as_str()
        ),
        ("palisade", "ROOTCA")
    );
    assert!(
        common.tls_certificate_sds_secret_configs.is_empty(),
        "gRPC rejects SDS"
    );
    assert!(common.tls_params.is_none(), "gRPC rejects tls_params");
}

fn assert_envoy_sds(common: &CommonTlsContext) {
    let names: Vec<&str> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|sds| sds.name.as_str())
        .collect();
    assert_eq!(names, ["default"]);
    let Some(common_tls_context::ValidationContextType::CombinedValidationContext(combined)) =
        &common.validation_context_type
    else {
        panic!("Envoy gets a combined validation context");
    };
    let roots = combined
        .validation_context_sds_secret_config
        .as_ref()
        .unwrap();
    assert_eq!(roots.name, "ROOTCA");
    let Some(config_source::ConfigSourceSpecifier::ApiConfigSource(api)) =
        &roots.sds_config.as_ref().unwrap().config_source_specifier
    else {
        panic!("SDS comes from an API config source");
    };
    let cluster = match &api.grpc_services[0].target_specifier {
        Some(
            envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc,
            ),
        ) => grpc.cluster_name.as_str(),
        other => panic!("not envoy_grpc: {other:?}"),
    };
    assert_eq!(cluster, "palisade_agent");
}

#[test]
fn type_urls_are_those_of_the_generated_messages() {
    for (generated, constant) in type_urls() {
        assert_eq!(generated, constant);
    }
}

#[test]
fn grpc_client_sees_listeners_routes_clusters_and_endpoints_of_its_upstreams() {
    let keys = proxy_keys(&shop(), &named("shop", "storefront-1"), Flavor::Grpc).unwrap();

    let upstreams = [
        "outbound|7000|legacy.shop",
        "outbound|8080|billing.shop",
        "outbound|8080|storefront.shop",
        "outbound|9090|orders.shop",
        "outbound|9100|orders.shop",
    ];
    assert_eq!(keys.clusters, upstreams);
    assert_eq!(keys.endpoints, upstreams);
    assert_eq!(
        keys.routes,
        [
            "billing.shop:8080",
            "legacy.shop:7000",
            "orders.shop:9090",
            "orders.shop:9100",
            "storefront.shop:8080",
        ]
    );
    assert_eq!(
        keys.listeners,
        [
            "billing.shop",
            "billing.shop:8080",
            "grpc/server?xds.resource.listening_address=0.0.0.0:15010",
            "grpc/server?xds.resource.listening_address=10.0.0.1:15010",
            "grpc/server?xds.resource.listening_address=[::]:15010",
            "legacy.shop",
            "legacy.shop:7000",
            "orders.shop",
            "orders.shop:9090",
            "orders.shop:9100",
            "storefront.shop",
            "storefront.shop:8080",
        ]
    );
}

#[test]
fn unknown_workload_or_service_has_no_keys() {
    let mut world = shop();
    assert_eq!(
        proxy_keys(&world, &named("shop", "ghost"), Flavor::Grpc),
        None
    );

    world.services.remove(&named("shop", "storefront"));

    assert_eq!(
        proxy_keys(&world, &named("shop", "storefront-1"), Flavor::Grpc),
        None
    );
    assert_eq!(
        build(
            &world,
            &named("shop", "storefront-1"),
            Flavor::Grpc,
            CLUSTER_TYPE,
            "x"
        ),
        None
    );
}

#[test]
fn names_the_proxy_may_not_see_are_not_built() {
    let world = shop();
    let orders = named("shop", "orders-1");

    let others = build(&world, &orders, Flavor::Grpc, LISTENER_TYPE, "billing.shop");
    let wrong_type = build(&world, &orders, Flavor::Grpc, ROUTE_TYPE, "storefront.shop");
    let own = build(
        &world,
        &orders,
        Flavor::Grpc,
        LISTENER_TYPE,
        "storefront.shop",
    );

    assert_eq!((others, wrong_type), (None, None));
    assert_eq!(own.unwrap().name, "storefront.shop");
}

#[test]
fn envoy_binds_each_upstream_port_once_in_service_name_order() {
    let keys = proxy_keys(&shop(), &named("shop", "storefront-1"), Flavor::Envoy).unwrap();

    assert_eq!(
        keys.listeners,
        [
            "inbound|15010|shop/storefront-1",
            "outbound|7000|legacy.shop",
            "outbound|8080|billing.shop",
            "outbound|9090|orders.shop",
            "outbound|9100|orders.shop",
        ]
    );
    assert_eq!(
        keys.routes,
        ["billing.shop:8080", "orders.shop:9090", "orders.shop:9100"]
    );
    assert!(
        keys.clusters
            .contains(&"inbound|8081|shop/storefront-1".to_owned())
    );
    assert!(
        !keys
            .endpoints
            .contains(&"inbound|8081|shop/storefront-1".to_owned())
    );
}

#[test]
fn envoy_never_binds_the_workloads_own_ports() {
    let mut world = shop();
    world
        .workloads
        .get_mut(&named("shop", "storefront-1"))
        .unwrap()
        .app_port = 9090;

    let keys = proxy_keys(&world, &named("shop", "storefront-1"), Flavor::Envoy).unwrap();

    assert!(
        !keys
            .listeners
            .contains(&"outbound|9090|orders.shop".to_owned())
    );
    assert!(
        keys.listeners
            .contains(&"outbound|9100|orders.shop".to_owned())
    );
}

#[test]
fn shared_resources_do_not_depend_on_which_workload_asks() {
    let world = shop();
    let mut other = world.clone();
    other.policies.insert(
        named("shop", "orders-from-orders"),
        palisade_model::AuthorizationPolicySpec {
            target_service: Some("orders".into()),
            rules: vec![palisade_model::Rule::default()],
            ..Default::default()
        },
    );

    for (type_url, name) in [
        (LISTENER_TYPE, "orders.shop"),
        (ROUTE_TYPE, "orders.shop:9090"),
        (CLUSTER_TYPE, "outbound|9090|orders.shop"),
        (ENDPOINT_TYPE, "outbound|9090|orders.shop"),
    ] {
        let by_storefront = built(&world, "storefront-1", Flavor::Grpc, type_url, name);
        let by_orders = built(&other, "orders-2", Flavor::Grpc, type_url, name);
        assert_eq!(by_storefront, by_orders, "{name}");
    }
}

#[test]
fn every_resource_builds_the_same_bytes_twice_and_round_trips() {
    let world = shop();
    for workload in ["storefront-1", "orders-1", "legacy-1"] {
        for flavor in [Flavor::Grpc, Flavor::Envoy] {
            let keys = proxy_keys(&world, &named("shop", workload), flavor).unwrap();
            let typed = [
                (LISTENER_TYPE, &keys.listeners),
                (ROUTE_TYPE, &keys.routes),
                (CLUSTER_TYPE, &keys.clusters),
                (ENDPOINT_TYPE, &keys.endpoints),
            ];
            for (type_url, names) in typed {
                for name in names {
                    let first = built(&world, workload, flavor, type_url, name);
                    let again = built(&shop(), workload, flavor, type_url, name);
                    assert_eq!(first, again, "{type_url} {name}");
                    assert_round_trips(&first.any);
                }
            }
        }
    }
}

/// Decoding and encoding again gives the same bytes.
fn assert_round_trips(any: &Any) {
    let again = match any.type_url.as_str() {
        LISTENER_TYPE => Listener::decode(&any.value[..]).unwrap().encode_to_vec(),
        ROUTE_TYPE => RouteConfiguration::decode(&any.value[..])
            .unwrap()
            .encode_to_vec(),
        CLUSTER_TYPE => Cluster::decode(&any.value[..]).unwrap().encode_to_vec(),
        ENDPOINT_TYPE => ClusterLoadAssignment::decode(&any.value[..])
            .unwrap()
            .encode_to_vec(),
        other => panic!("unexpected type {other}"),
    };
    assert_eq!(again, any.value);
}
