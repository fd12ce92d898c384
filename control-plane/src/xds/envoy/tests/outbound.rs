//! The resources of the Services a proxy calls.

use super::*;

#[test]
fn grpc_client_listener_is_an_api_listener_with_rds_over_ads_and_only_the_router() {
    for (name, route) in [
        ("orders.shop", "orders.shop:9090"),
        ("orders.shop:9100", "orders.shop:9100"),
    ] {
        let listener = listener(Flavor::Grpc, "storefront-1", name);
        let api = listener.api_listener.unwrap().api_listener.unwrap();
        let hcm: HttpConnectionManager = decode(&api);

        let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
            panic!("routes come over RDS");
        };
        assert_eq!(listener.name, name);
        assert!(listener.address.is_none() && listener.filter_chains.is_empty());
        assert_eq!(rds.route_config_name, route);
        assert!(is_ads(&rds.config_source));
        assert_eq!(filter_names(&hcm), ["envoy.filters.http.router"]);
        assert_router_last(&hcm);
    }
}

#[test]
fn route_sends_every_path_of_every_host_to_the_ports_cluster() {
    let world = shop();
    let any = built(
        &world,
        "storefront-1",
        Flavor::Grpc,
        ROUTE_TYPE,
        "orders.shop:9090",
    )
    .any;
    let routes: RouteConfiguration = decode(&any);

    assert_eq!(routes.name, "orders.shop:9090");
    assert_eq!(routes.virtual_hosts.len(), 1);
    let host = &routes.virtual_hosts[0];
    assert_eq!(host.domains, ["*"]);
    assert_eq!(host.routes.len(), 1);
    let Some(route::Action::Route(action)) = &host.routes[0].action else {
        panic!("a forwarding route");
    };
    let Some(route_action::ClusterSpecifier::Cluster(cluster)) = &action.cluster_specifier else {
        panic!("to one cluster");
    };
    assert_eq!(cluster, "outbound|9090|orders.shop");
}

#[test]
fn cluster_is_eds_over_ads_round_robin_with_mtls_to_the_service_identity() {
    for flavor in [Flavor::Grpc, Flavor::Envoy] {
        let cluster = cluster(flavor, "outbound|9090|orders.shop");

        assert_eq!(cluster.name, "outbound|9090|orders.shop");
        assert_eq!(
            cluster.cluster_discovery_type,
            Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds.into()
            ))
        );
        assert!(is_ads(&cluster.eds_cluster_config.unwrap().eds_config));
        assert_eq!(cluster.lb_policy, i32::from(cluster::LbPolicy::RoundRobin));
        let tls: UpstreamTlsContext = decode(&common_tls(&cluster.transport_socket));
        let common = tls.common_tls_context.unwrap();
        match flavor {
            Flavor::Grpc => assert_grpc_providers(&common),
            Flavor::Envoy => assert_envoy_sds(&common),
        }
    }
}

#[test]
#[allow(deprecated)]
fn peer_identity_check_uses_the_field_each_flavor_reads() {
    let validation = |flavor| {
        let tls: UpstreamTlsContext = decode(&common_tls(
            &cluster(flavor, "outbound|9090|orders.shop").transport_socket,
        ));
        match tls
            .common_tls_context
            .unwrap()
            .validation_context_type
            .unwrap()
        {
            common_tls_context::ValidationContextType::ValidationContext(v) => v,
            common_tls_context::ValidationContextType::CombinedValidationContext(c) => {
                c.default_validation_context.unwrap()
            }
            other => panic!("unexpected validation {other:?}"),
        }
    };
    let spiffe = "spiffe://td/ns/shop/sa/orders-sa".to_owned();

    let grpc = validation(Flavor::Grpc);
    let envoy = validation(Flavor::Envoy);

    assert_eq!(
        grpc.match_subject_alt_names[0].match_pattern,
        Some(MatchPattern::Exact(spiffe.clone()))
    );
    let typed = &envoy.match_typed_subject_alt_names[0];
    assert_eq!(
        typed.san_type,
        i32::from(subject_alt_name_matcher::SanType::Uri)
    );
    assert_eq!(
        typed.matcher.as_ref().unwrap().match_pattern,
        Some(MatchPattern::Exact(spiffe))
    );
}

#[test]
fn envoy_speaks_http2_to_grpc_ports_only() {
    let grpc = cluster(Flavor::Envoy, "outbound|9090|orders.shop");
    let http = cluster(Flavor::Envoy, "outbound|9100|orders.shop");
    let proxyless = cluster(Flavor::Grpc, "outbound|9090|orders.shop");

    let keys: Vec<&String> = grpc.typed_extension_protocol_options.keys().collect();
    assert_eq!(
        keys,
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    );
    assert!(http.typed_extension_protocol_options.is_empty());
    assert!(proxyless.typed_extension_protocol_options.is_empty());
}

#[test]
fn endpoints_are_weighted_localities_per_node_with_ip_addresses_only() {
    let any = built(
        &shop(),
        "storefront-1",
        Flavor::Grpc,
        ENDPOINT_TYPE,
        "outbound|9090|orders.shop",
    )
    .any;
    let assignment: ClusterLoadAssignment = decode(&any);

    assert_eq!(assignment.cluster_name, "outbound|9090|orders.shop");
    let mut seen = Vec::new();
    for locality in &assignment.endpoints {
        let weight = locality
            .load_balancing_weight
            .as_ref()
            .expect("every locality is weighted");
        assert_eq!(weight.value as usize, locality.lb_endpoints.len());
        let zone = locality.locality.as_ref().unwrap().zone.clone();
        for endpoint in &locality.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &endpoint.host_identifier
            else {
                panic!("an endpoint");
            };
            seen.push((zone.clone(), socket(&endpoint.address)));
        }
    }
    assert_eq!(
        seen,
        [
            ("web-1".to_owned(), ("10.0.0.1".to_owned(), 15008)),
            ("web-1".to_owned(), ("10.0.0.1".to_owned(), 15011)),
            ("web-2".to_owned(), ("10.0.0.7".to_owned(), 15009)),
        ]
    );
}

#[test]
fn envoy_outbound_listener_is_on_loopback_with_rds_or_a_tcp_proxy() {
    let http = listener(Flavor::Envoy, "storefront-1", "outbound|9090|orders.shop");
    let tcp = listener(Flavor::Envoy, "storefront-1", "outbound|7000|legacy.shop");

    assert_eq!(socket(&http.address), ("127.0.0.1".to_owned(), 9090));
    let hcm = only_manager(&http);
    assert!(matches!(
        hcm.route_specifier,
        Some(http_connection_manager::RouteSpecifier::Rds(_))
    ));
    assert_router_last(&hcm);

    let filters = &tcp.filter_chains[0].filters;
    assert_eq!(filters.len(), 1);
    let proxy: TcpProxy = decode(typed_config(&filters[0]));
    let cluster = tcp_proxy::ClusterSpecifier::Cluster("outbound|7000|legacy.shop".into());
    assert_eq!(proxy.cluster_specifier, Some(cluster));
}
