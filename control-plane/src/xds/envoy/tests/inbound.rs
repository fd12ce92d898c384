//! The resources of the workload's own inbound side.

use super::*;

#[test]
fn grpc_server_listener_terminates_mtls_and_ends_with_rbac_then_router() {
    let world = shop();
    let keys = proxy_keys(&world, &named("shop", "orders-1"), Flavor::Grpc).unwrap();
    let servers: Vec<&String> = keys
        .listeners
        .iter()
        .filter(|n| n.starts_with("grpc/server?"))
        .collect();
    assert_eq!(servers.len(), 3);

    for name in servers {
        let listener = listener(Flavor::Grpc, "orders-1", name);
        let (host, port) = socket(&listener.address);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        assert_eq!(
            name,
            &format!("grpc/server?xds.resource.listening_address={host}:{port}")
        );
        assert!(listener.listener_filters.is_empty());

        let tls: DownstreamTlsContext =
            decode(&common_tls(&listener.filter_chains[0].transport_socket));
        assert!(tls.require_client_certificate.unwrap().value);
        assert_grpc_providers(&tls.common_tls_context.unwrap());

        let hcm = only_manager(&listener);
        assert_eq!(
            filter_names(&hcm),
            ["palisade.rbac.allow", "envoy.filters.http.router"]
        );
        assert_router_last(&hcm);
        let Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)) =
            hcm.route_specifier
        else {
            panic!("inline routes");
        };
        assert_eq!(routes.virtual_hosts[0].domains, ["*"]);
        assert!(matches!(
            routes.virtual_hosts[0].routes[0].action,
            Some(route::Action::NonForwardingAction(_))
        ));
    }
}

#[test]
fn envoy_inbound_listener_forwards_to_the_local_app_over_sds_mtls() {
    let listener = listener(Flavor::Envoy, "orders-1", "inbound|15008|shop/orders-1");
    let local: Cluster = decode(
        &built(
            &shop(),
            "orders-1",
            Flavor::Envoy,
            CLUSTER_TYPE,
            "inbound|9090|shop/orders-1",
        )
        .any,
    );

    assert_eq!(socket(&listener.address), ("0.0.0.0".to_owned(), 15008));
    let tls: DownstreamTlsContext =
        decode(&common_tls(&listener.filter_chains[0].transport_socket));
    assert!(tls.require_client_certificate.unwrap().value);
    let common = tls.common_tls_context.unwrap();
    assert_envoy_sds(&common);
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);

    let hcm = only_manager(&listener);
    assert_eq!(
        filter_names(&hcm),
        ["palisade.rbac.allow", "envoy.filters.http.router"]
    );
    assert_router_last(&hcm);

    assert_eq!(
        local.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static.into()
        ))
    );
    let endpoints = &local.load_assignment.unwrap().endpoints[0];
    assert!(endpoints.load_balancing_weight.is_some());
    let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) =
        &endpoints.lb_endpoints[0].host_identifier
    else {
        panic!("an endpoint");
    };
    assert_eq!(socket(&endpoint.address), ("127.0.0.1".to_owned(), 9090));
}

#[test]
fn envoy_inbound_for_tcp_uses_network_rbac_and_a_tcp_proxy() {
    let listener = listener(Flavor::Envoy, "legacy-1", "inbound|15012|shop/legacy-1");

    let names: Vec<&str> = listener.filter_chains[0]
        .filters
        .iter()
        .map(|f| f.name.as_str())
        .collect();

    assert_eq!(
        names,
        ["palisade.rbac.allow", "envoy.filters.network.tcp_proxy"]
    );
}
