//! Outbound listeners: balancing over endpoints, and checking who they are.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use palisade_proto::xds as pb;
use tokio::net::{TcpListener, TcpStream};

use super::support::*;
use crate::proxy::Settings;
use crate::proxy::balancer::FIRST_BACKOFF;
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

/// Which application answers each of `count` calls to the outbound
/// listener on `service`.
async fn served(service: u16, count: usize) -> Vec<String> {
    let mut served = Vec::new();
    for attempt in 0..count {
        let mut client = TcpStream::connect(web_side(service)).await.unwrap();
        let reply = exchange(&mut client, &format!("call {attempt}")).await;
        served.push(reply.split_once(':').unwrap().0.to_owned());
    }
    served
}

#[tokio::test]
async fn an_endpoint_set_aside_receives_connections_again_once_it_recovers() {
    let ca = TestCa::new();
    let harness = Harness::start(settings()).await;
    let api_1_app = App::start("api-1", false).await;
    let [first, second, web_inbound, service] = [
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    ];
    let (api_1, api_2, web_leaf) = (ca.leaf(&api()), ca.leaf(&api()), ca.leaf(&web()));
    harness
        .publish(&ca, &[("shop/api-1", &api_1), ("shop/web", &web_leaf)])
        .await;
    let workloads = vec![
        workload("shop", "api-1", "api", first, api_1_app.port),
        web_workload(web_inbound, free_port().await),
    ];
    let policy = allow("shop", "api", vec![identities(&[&web()])]);
    let caller_side = snapshot(&ca, workloads, vec![policy.clone()]);
    harness
        .apply(with_endpoints(
            caller_side,
            endpoints(service, &[first, second]),
        ))
        .await;

    // api-2 is down: it fails once and is set aside.
    let while_down = served(service, 4).await;
    let failed = harness.read(&harness.counters.outbound_endpoint_failed);

    // It comes up, behind another host's data path, with nothing changed
    // on this one; once its backoff ends it is in rotation again.
    let other_host = Harness::start(settings()).await;
    let api_2_app = App::start("api-2", false).await;
    other_host.publish(&ca, &[("shop/api-2", &api_2)]).await;
    let api_2_workload = workload("shop", "api-2", "api", second, api_2_app.port);
    other_host
        .apply(snapshot(&ca, vec![api_2_workload], vec![policy]))
        .await;
    tokio::time::sleep(FIRST_BACKOFF).await;
    let recovered = served(service, 6).await;

    assert!(while_down.iter().all(|s| s == "api-1"), "{while_down:?}");
    assert!(failed >= 1);
    let by_api_2 = recovered.iter().filter(|s| *s == "api-2").count();
    assert!(by_api_2 >= 2, "{recovered:?}");
    let counters = &harness.counters;
    assert_eq!(harness.read(&counters.outbound_endpoint_failed), failed);
    assert_eq!(harness.read(&counters.outbound_connected), 10);
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

/// shop/web calling shop/api, whose one endpoint is served by this data
/// path too.
struct Calling {
    harness: Harness,
    ca: TestCa,
    /// shop/api-1's certificate.
    server: Leaf,
    /// shop/api-1's application.
    app: App,
    service: u16,
    snapshot: Snapshot,
}

impl Calling {
    async fn start() -> Self {
        Self::with(settings()).await
    }

    async fn with(settings: Settings) -> Self {
        let ca = TestCa::new();
        let app = App::start("api-1", settings.proxy_protocol).await;
        let harness = Harness::start(settings).await;
        let [api_inbound, web_inbound, service] =
            [free_port().await, free_port().await, free_port().await];

        let (server, web_leaf) = (ca.leaf(&api()), ca.leaf(&web()));
        let svids = [("shop/api-1", &server), ("shop/web", &web_leaf)];
        harness.publish(&ca, &svids).await;
        let workloads = vec![
            workload("shop", "api-1", "api", api_inbound, app.port),
            web_workload(web_inbound, free_port().await),
        ];
        let policy = allow("shop", "api", vec![identities(&[&web()])]);
        let snapshot = snapshot(&ca, workloads, vec![policy]);
        let snapshot = with_endpoints(snapshot, endpoints(service, &[api_inbound]));
        harness.apply(snapshot.clone()).await;

        Self {
            harness,
            ca,
            server,
            app,
            service,
            snapshot,
        }
    }

    /// A local client's connection to shop/api, answered once.
    async fn client(&self) -> TcpStream {
        let mut client = TcpStream::connect(web_side(self.service)).await.unwrap();
        assert_eq!(exchange(&mut client, "hello").await, "api-1:hello");
        client
    }

    async fn apply(&self, change: impl FnOnce(&mut Snapshot)) {
        let mut snapshot = self.snapshot.clone();
        snapshot.revision += 1;
        change(&mut snapshot);
        self.harness.apply(snapshot).await;
    }

    fn revoked(&self) -> u64 {
        self.harness.read(&self.harness.counters.outbound_revoked)
    }
}

#[tokio::test]
async fn denying_the_servers_serial_closes_the_established_connection() {
    let calling = Calling::start().await;
    let mut client = calling.client().await;

    let serial = calling.server.serial.clone();
    calling.apply(|s| _ = s.denied_serials.insert(serial)).await;

    assert!(closed(&mut client).await);
    assert_eq!(calling.revoked(), 1);
    let counters = &calling.harness.counters;
    assert_eq!(calling.harness.read(&counters.inbound_revoked), 0);
}

#[tokio::test]
async fn removing_the_services_endpoints_closes_the_established_connection() {
    let calling = Calling::start().await;
    let mut client = calling.client().await;

    calling.apply(|s| s.endpoints.clear()).await;

    assert!(closed(&mut client).await);
    assert_eq!(calling.revoked(), 1);
}

#[tokio::test]
async fn a_ca_joining_the_bundle_leaves_the_established_connection_open() {
    let calling = Calling::start().await;
    let mut client = calling.client().await;

    let next = TestCa::new();
    let both = [calling.ca.bundle_pem(), next.bundle_pem()].concat();
    calling
        .apply(|s| s.bundle.as_mut().unwrap().x509_pem = both)
        .await;

    assert_eq!(exchange(&mut client, "prepared").await, "api-1:prepared");
    assert_eq!(calling.revoked(), 0);
}

/// shop/web calling shop/api through a data path whose inbound bind
/// address is `bind`; shop/api-1 reads the PROXY header.
async fn calling_with(bind: IpAddr) -> Calling {
    let settings = Settings {
        bind_address: bind,
        proxy_protocol: true,
        ..settings()
    };
    Calling::with(settings).await
}

/// The source address shop/api-1 sees, in the PROXY header, of a call from
/// shop/web through a data path whose inbound bind address is `bind`.
async fn source_seen_with(bind: IpAddr) -> IpAddr {
    let mut calling = calling_with(bind).await;

    calling.client().await;

    let header = calling.app.next_connection().await.unwrap();
    assert_eq!(header.spiffe_id, Some(web()));
    header.source.ip()
}

#[tokio::test]
async fn outbound_connections_leave_from_a_specific_inbound_bind_address() {
    let bind = IpAddr::from([127, 0, 0, 5]);

    assert_eq!(source_seen_with(bind).await, bind);
}

#[tokio::test]
async fn with_the_wildcard_bind_address_the_kernel_chooses_the_source() {
    let source = source_seen_with(IpAddr::from([0, 0, 0, 0])).await;

    assert_eq!(source, IpAddr::from([127, 0, 0, 1]));
}

#[tokio::test]
async fn an_ipv6_bind_address_is_not_the_source_of_an_ipv4_connection() {
    let source = source_seen_with("::1".parse().unwrap()).await;

    assert_eq!(source, IpAddr::from([127, 0, 0, 1]));
}

#[tokio::test]
async fn the_source_port_of_an_open_connection_leaves_a_listener_free_to_bind_it() {
    let mut calling = calling_with(IpAddr::from([127, 0, 0, 5])).await;
    let mut client = calling.client().await;
    let source = calling.app.next_connection().await.unwrap().source;

    let listener = TcpListener::bind(source).await;

    assert!(listener.is_ok(), "{source}: {listener:?}");
    assert_eq!(exchange(&mut client, "still").await, "api-1:still");
}
