//! The bootstrap of an Envoy sidecar: listeners and clusters over ADS from
//! the static cluster `palisade_xds` (mTLS with the workload's files), and
//! the static cluster `palisade_agent` over which the host agent serves the
//! workload's certificate and the trust bundle by SDS.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::{BUNDLE_FILE, CERTIFICATE_FILE, Client, Inputs, KEY_FILE};

/// The static cluster that reaches the control plane.
const XDS_CLUSTER: &str = "palisade_xds";

/// The static cluster that reaches the agent's SDS socket; the control
/// plane's TLS contexts name it.
const AGENT_CLUSTER: &str = "palisade_agent";

const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const UPSTREAM_TLS: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

pub fn bootstrap(inputs: &Inputs) -> Value {
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    json!({
        "node": inputs.node(Client::Envoy),
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
                "set_node_on_first_message_only": true,
            },
            "lds_config": ads,
            "cds_config": ads,
        },
        "static_resources": {
            "clusters": [xds_cluster(inputs), agent_cluster(inputs)],
        },
    })
}

/// The control plane, over HTTP/2 with mTLS unless insecure. The server's
/// certificate must name the host (as a DNS name or an IP address SAN).
fn xds_cluster(inputs: &Inputs) -> Value {
    let (host, port) = split_host_port(&inputs.xds_server);
    let ip = host.parse::<IpAddr>().is_ok();
    let address = json!({"socket_address": {"address": host, "port_value": port}});

    let mut cluster = http2_cluster(
        XDS_CLUSTER,
        if ip { "STATIC" } else { "STRICT_DNS" },
        address,
    );
    if !inputs.insecure {
        cluster["transport_socket"] = upstream_tls(inputs, host, ip);
    }
    cluster
}

/// The agent's SDS service on its Unix socket.
fn agent_cluster(inputs: &Inputs) -> Value {
    let path = inputs.sds_socket.to_string_lossy();
    http2_cluster(AGENT_CLUSTER, "STATIC", json!({"pipe": {"path": path}}))
}

fn http2_cluster(name: &str, kind: &str, address: Value) -> Value {
    json!({
        "name": name,
        "type": kind,
        "connect_timeout": "5s",
        "typed_extension_protocol_options": {
            HTTP_OPTIONS: {
                "@type": format!("type.googleapis.com/{HTTP_OPTIONS}"),
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    })
}

/// mTLS with the workload's files; the server must prove `host`.
fn upstream_tls(inputs: &Inputs, host: &str, ip: bool) -> Value {
    let san_type = if ip { "IP_ADDRESS" } else { "DNS" };
    let mut context = json!({
        "@type": UPSTREAM_TLS,
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificates": [{
                "certificate_chain": {"filename": inputs.file(CERTIFICATE_FILE)},
                "private_key": {"filename": inputs.file(KEY_FILE)},
            }],
            "validation_context": {
                "trusted_ca": {"filename": inputs.file(BUNDLE_FILE)},
                "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": host}}],
            },
        },
    });
    if !ip {
        context["sni"] = json!(host);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

/// `host:port`, `[v6]:port` or `host` (port 443), with IPv6 brackets
/// removed from the host.
fn split_host_port(address: &str) -> (&str, u16) {
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if !port.ends_with(']') => (host, port.parse().unwrap_or(443)),
        _ => (address, 443),
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

#[cfg(test)]
mod tests {
    use super::super::tests::inputs;
    use super::*;

    fn cluster<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        clusters.iter().find(|c| c["name"] == name).unwrap()
    }

    #[test]
    fn envoy_bootstrap_gets_listeners_and_clusters_over_ads() {
        let bootstrap = bootstrap(&inputs());

        let dynamic = &bootstrap["dynamic_resources"];
        assert_eq!(dynamic["ads_config"]["api_type"], "GRPC");
        assert_eq!(
            dynamic["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            "palisade_xds"
        );
        for config in ["lds_config", "cds_config"] {
            assert_eq!(
                dynamic[config],
                json!({"ads": {}, "resource_api_version": "V3"})
            );
        }
        assert_eq!(bootstrap["node"]["metadata"]["flavor"], "envoy");
    }

    #[test]
    fn xds_cluster_uses_mtls_with_the_workload_files_and_checks_the_server_name() {
        let bootstrap = bootstrap(&inputs());

        let xds = cluster(&bootstrap, "palisade_xds");
        assert_eq!(xds["type"], "STRICT_DNS");
        let endpoint = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        assert_eq!(
            endpoint["address"]["socket_address"],
            json!({"address": "cp.example", "port_value": 7443})
        );
        let tls = &xds["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "cp.example");
        let common = &tls["common_tls_context"];
        assert_eq!(
            common["tls_certificates"][0]["certificate_chain"]["filename"],
            "/run/certs/svid.pem"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"][0],
            json!({"san_type": "DNS", "matcher": {"exact": "cp.example"}})
        );
    }

    #[test]
    fn agent_cluster_is_the_sds_socket_over_http2() {
        let bootstrap = bootstrap(&inputs());

        let agent = cluster(&bootstrap, "palisade_agent");
        let endpoint = &agent["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        assert_eq!(
            endpoint["address"]["pipe"]["path"],
            "/var/run/palisade/agent.sock"
        );
        assert!(
            agent["typed_extension_protocol_options"][HTTP_OPTIONS]["explicit_http_config"]
                .get("http2_protocol_options")
                .is_some()
        );
    }

    #[test]
    fn ip_servers_are_static_and_insecure_has_no_tls() {
        let inputs = Inputs {
            xds_server: "[::1]:7443".into(),
            insecure: true,
            ..inputs()
        };

        let bootstrap = bootstrap(&inputs);

        let xds = cluster(&bootstrap, "palisade_xds");
        assert_eq!(xds["type"], "STATIC");
        let endpoint = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        assert_eq!(endpoint["address"]["socket_address"]["address"], "::1");
        assert!(xds.get("transport_socket").is_none());
    }
}
