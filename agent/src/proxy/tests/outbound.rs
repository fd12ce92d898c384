//! Outbound listeners: balancing over endpoints, and checking who they are.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use palisade_proto::xds as pb;
use tokio::net::TcpStream;

use super::support::*;
use crate::proxy::Settings;
use crate::state::Snapshot;

fn api() -> String {
    spiffe_id("shop", "api")
}

fn web() -> String {
    spiffe_id("shop", "web")
}

/// The Endpoints of shop/api on 127.0.0.1, served on `service_port`.
fn endpoints(service_port: u16, inbound_ports: &[u16]) -> pb::Endpoints {
    let endpoint = |(index, port): (usize, &u16)| pb::Endpoint {
        address: "127.0.0.1".into(),
        inbound_port: (*port).into(),
        workload: format!("api-{index}"),
        ..Default::default()
    };
    pb::Endpoints {
        namespace: "shop".into(),
        service: "api".into(),
        spiffe_id: api(),
        ports: vec![pb::ServicePort {
            port: service_port.into(),
            ..Default::default()
        }],
        endpoints: inbound_ports.iter().enumerate().map(endpoint).collect(),
        ..Default::default()
    }
}

/// shop/web, the caller, on its own loopback address so that its outbound
/// listeners are its own.
fn web_workload(inbound_port: u16, app_port: u16) -> pb::Workload {
    pb::Workload {
        address: "127.0.0.2".into(),
        ..workload("shop", "web", "web", inbound_port, app_port)
    }
}

fn web_side(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], port))
}

fn with_endpoints(mut snapshot: Snapshot, endpoints: pb::Endpoints) -> Snapshot {
    snapshot.endpoints = BTreeMap::from([("shop/api".to_owned(), endpoints)]);
    snapshot
}

#[tokio::test]
async fn outbound_balances_across_endpoints_and_skips_a_dead_one() {
    let ca = TestCa::new();
    let proxied = Settings {
        proxy_protocol: true,
        ..settings()
    };
    let harness = Harness::start(proxied).await;
    let mut apps = [
        App::start("api-1", true).await,
        App::start("api-2", true).await,
    ];
    let [first, second, dead, web_inbound, service] = [
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    ];

    let (api_1, api_2, web_leaf) = (ca.leaf(&api()), ca.leaf(&api()), ca.leaf(&web()));
    let svids = [
        ("shop/api-1", &api_1),
        ("shop/api-2", &api_2),
        ("shop/web", &web_leaf),
    ];
    harness.publish(&ca, &svids).await;
    let workloads = vec![
        workload("shop", "api-1", "api", first, apps[0].port),
        workload("shop", "api-2", "api", second, apps[1].port),
        web_workload(web_inbound, free_port().await),
    ];
    let policy = allow("shop", "api", vec![identities(&[&web()])]);
    let snapshot = snapshot(&ca, workloads, vec![policy]);
    let snapshot = with_endpoints(snapshot, endpoints(service, &[first, second, dead]));
    harness.apply(snapshot).await;

    let mut served = Vec::new();
    for attempt in 0..6 {
        let mut client = TcpStream::connect(web_side(service)).await.unwrap();
        let reply = exchange(&mut client, &format!("call {attempt}")).await;
        served.push(reply.split_once(':').unwrap().0.to_owned());
    }

    let count = |name: &str| served.iter().filter(|s| *s == name).count();
    assert_eq!(count("api-1") + count("api-2"), 6, "{served:?}");
    assert!(count("api-1") >= 2 && count("api-2") >= 2, "{served:?}");
    let counters = &harness.counters;
    assert!(harness.read(&counters.outbound_endpoint_failed) >= 1);
    assert_eq!(harness.read(&counters.outbound_connected), 6);
    let header = apps[0].next_connection().await.unwrap();
    assert_eq!(header.spiffe_id, Some(web()));
}

#[tokio::test]
async fn outbound_refuses_a_server_with_the_wrong_spiffe_id() {
    let ca = TestCa::new();
    let harness = Harness::start(settings()).await;
    let mut impostor_app = App::start("impostor", false).await;
    let [impostor_inbound, web_inbound, service] =
        [free_port().await, free_port().await, free_port().await];

    let impostor = ca.leaf(&spiffe_id("shop", "impostor"));
    let web_leaf = ca.leaf(&web());
    let svids = [("shop/impostor", &impostor), ("shop/web", &web_leaf)];
    harness.publish(&ca, &svids).await;
    let workloads = vec![
        workload(
            "shop",
            "impostor",
            "api",
            impostor_inbound,
            impostor_app.port,
        ),
        web_workload(web_inbound, free_port().await),
    ];
    let policy = allow("shop", "api", vec![identities(&[&web()])]);
    let snapshot = snapshot(&ca, workloads, vec![policy]);
    harness
        .apply(with_endpoints(
            snapshot,
            endpoints(service, &[impostor_inbound]),
        ))
        .await;

    let mut client = TcpStream::connect(web_side(service)).await.unwrap();

    assert!(closed(&mut client).await);
    let counters = &harness.counters;
    assert_eq!(harness.read(&counters.outbound_unreachable), 1);
    assert_eq!(harness.read(&counters.outbound_endpoint_failed), 1);
    assert!(impostor_app.untouched());
}
