//! Inbound listeners: who gets through, who is refused, and what changes do
//! to established connections.

use std::net::SocketAddr;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::support::*;
use crate::proxy::Settings;
use crate::state::Snapshot;

fn web() -> String {
    spiffe_id("shop", "web")
}

/// One workload, shop/api-1, that only shop/web may call.
struct Serving {
    ca: TestCa,
    harness: Harness,
    app: App,
    address: SocketAddr,
    inbound_port: u16,
}

impl Serving {
    async fn start(settings: Settings) -> Self {
        let app = App::start("api", settings.proxy_protocol).await;
        Self::with_app(settings, app).await
    }

    async fn with_app(settings: Settings, app: App) -> Self {
        let ca = TestCa::new();
        let harness = Harness::start(settings.clone()).await;
        let inbound_port = free_port().await;

        let server = ca.leaf(&spiffe_id("shop", "api"));
        harness.publish(&ca, &[("shop/api-1", &server)]).await;
        let serving = Self {
            ca,
            harness,
            app,
            address: local(inbound_port),
            inbound_port,
        };
        serving.harness.apply(serving.snapshot(&[&web()])).await;
        serving
    }

    /// The snapshot that lets `callers` reach shop/api.
    fn snapshot(&self, callers: &[&str]) -> Snapshot {
        let api = workload("shop", "api-1", "api", self.inbound_port, self.app.port);
        let policy = allow("shop", "api", vec![identities(callers)]);
        snapshot(&self.ca, vec![api], vec![policy])
    }

    /// Applies [`snapshot`](Self::snapshot) for shop/web as `revision`,
    /// with a bundle of `cas`.
    async fn trust(&self, cas: &[&TestCa], revision: u64) {
        let mut snapshot = self.snapshot(&[&web()]);
        snapshot.revision = revision;
        let bundle = snapshot.bundle.as_mut().unwrap();
        bundle.x509_pem = cas.iter().map(|ca| ca.bundle_pem()).collect();
        self.harness.apply(snapshot).await;
    }

    async fn caller(&self, spiffe_id: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
        let client = self.ca.leaf(spiffe_id).client();
        connect(self.address, client).await.unwrap()
    }
}

#[tokio::test]
async fn an_allowed_caller_reaches_the_application() {
    let mut serving = Serving::start(settings()).await;

    let mut stream = serving.caller(&web()).await;

    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");
    assert_eq!(exchange(&mut stream, "again").await, "api:again");
    assert_eq!(serving.app.next_connection().await, None);
    let counters = &serving.harness.counters;
    assert_eq!(serving.harness.read(&counters.inbound_allowed), 1);
}

#[tokio::test]
async fn the_reply_still_arrives_after_the_caller_stops_sending() {
    let serving = Serving::with_app(settings(), App::counting().await).await;
    let mut stream = serving.caller(&web()).await;

    stream.write_all(b"twelve bytes").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    let read = stream.read_to_string(&mut reply);
    tokio::time::timeout(PROMPTLY, read).await.unwrap().unwrap();

    assert_eq!(reply, "read 12\n");
}

#[tokio::test]
async fn the_proxy_header_names_the_caller() {
    let proxied = Settings {
        proxy_protocol: true,
        ..settings()
    };
    let mut serving = Serving::start(proxied).await;

    let mut stream = serving.caller(&web()).await;
    let reply = exchange(&mut stream, "hello").await;
    let header = serving.app.next_connection().await.unwrap();

    assert_eq!(reply, "api:hello");
    assert_eq!(header.spiffe_id, Some(web()));
    assert_eq!(header.destination, serving.address);
    assert_eq!(header.source, stream.get_ref().0.local_addr().unwrap());
}

#[tokio::test]
async fn a_caller_the_policy_does_not_allow_is_closed() {
    let mut serving = Serving::start(settings()).await;
    let intruder = serving.ca.leaf(&spiffe_id("shop", "intruder"));

    assert!(refused(serving.address, intruder.client()).await);

    let counters = &serving.harness.counters;
    serving.harness.reaches(&counters.inbound_denied, 1).await;
    assert_eq!(serving.harness.read(&counters.inbound_allowed), 0);
    assert!(serving.app.untouched());
}

#[tokio::test]
async fn callers_without_an_acceptable_certificate_are_refused() {
    let mut serving = Serving::start(settings()).await;
    let foreign = TestCa::new().leaf(&web());
    let expired = serving.ca.leaf_with(&[&web()], Validity::Expired);
    let two_ids = serving
        .ca
        .leaf_with(&[&web(), &spiffe_id("shop", "other")], Validity::Current);

    let clients = [
        ("no certificate", anonymous_client()),
        ("another CA", foreign.client()),
        ("expired", expired.client()),
        ("two URI SANs", two_ids.client()),
    ];
    for (what, client) in clients {
        assert!(refused(serving.address, client).await, "{what}");
    }

    let counters = &serving.harness.counters;
    serving
        .harness
        .reaches(&counters.inbound_handshake_failed, 4)
        .await;
    assert_eq!(serving.harness.read(&counters.inbound_allowed), 0);
    assert!(serving.app.untouched());
}

#[tokio::test]
async fn a_certificate_whose_serial_is_denied_is_refused() {
    let serving = Serving::start(settings()).await;
    let revoked = serving.ca.leaf(&web());
    let mut snapshot = serving.snapshot(&[&web()]);
    snapshot.denied_serials.insert(revoked.serial.clone());
    serving.harness.apply(snapshot).await;

    assert!(refused(serving.address, revoked.client()).await);

    let mut fresh = serving.caller(&web()).await;
    assert_eq!(exchange(&mut fresh, "hi").await, "api:hi");
}

#[tokio::test]
async fn a_policy_change_that_removes_permission_closes_the_connection() {
    let serving = Serving::start(settings()).await;
    let mut stream = serving.caller(&web()).await;
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");

    serving
        .harness
        .apply(serving.snapshot(&[&spiffe_id("shop", "cart")]))
        .await;

    assert!(closed(&mut stream).await);
    let counters = &serving.harness.counters;
    assert_eq!(serving.harness.read(&counters.inbound_revoked), 1);
}

#[tokio::test]
async fn denying_the_callers_serial_closes_the_connection() {
    let serving = Serving::start(settings()).await;
    let caller = serving.ca.leaf(&web());
    let mut stream = connect(serving.address, caller.client()).await.unwrap();
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");

    let mut snapshot = serving.snapshot(&[&web()]);
    snapshot.denied_serials.insert(caller.serial.clone());
    serving.harness.apply(snapshot).await;

    assert!(closed(&mut stream).await);
}

#[tokio::test]
async fn a_ca_rotation_keeps_established_connections_open() {
    let serving = Serving::start(settings()).await;
    let next = TestCa::new();
    let ends = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let caller = serving.ca.leaf_with(&[&web()], Validity::Until(ends));
    let mut stream = connect(serving.address, caller.client()).await.unwrap();
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");

    // Prepare: the next CA is trusted beside the current one.
    serving.trust(&[&serving.ca, &next], 2).await;
    assert_eq!(exchange(&mut stream, "prepared").await, "api:prepared");

    // Activate: the server renews under the next CA; its callers get in.
    let renewed = next.leaf(&spiffe_id("shop", "api"));
    serving
        .harness
        .publish(&next, &[("shop/api-1", &renewed)])
        .await;
    let mut fresh = connect(serving.address, next.leaf(&web()).client())
        .await
        .unwrap();
    assert_eq!(exchange(&mut fresh, "new").await, "api:new");
    assert_eq!(exchange(&mut stream, "activated").await, "api:activated");

    // Retire the old CA once what it signed has expired.
    let left = ends - OffsetDateTime::now_utc() + time::Duration::milliseconds(1200);
    tokio::time::sleep(left.try_into().unwrap_or_default()).await;
    serving.trust(&[&next], 3).await;

    assert_eq!(exchange(&mut stream, "retired").await, "api:retired");
    assert!(refused(serving.address, serving.ca.leaf(&web()).client()).await);
    let counters = &serving.harness.counters;
    assert_eq!(serving.harness.read(&counters.inbound_revoked), 0);
}

#[tokio::test]
async fn a_bundle_that_drops_the_ca_of_a_valid_certificate_closes_the_connection() {
    let serving = Serving::start(settings()).await;
    let mut stream = serving.caller(&web()).await;
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");

    serving.trust(&[&TestCa::new()], 2).await;

    assert!(closed(&mut stream).await);
    let counters = &serving.harness.counters;
    assert_eq!(serving.harness.read(&counters.inbound_revoked), 1);
}

#[tokio::test]
async fn a_change_that_still_allows_the_connection_leaves_it_alone() {
    let mut serving = Serving::start(settings()).await;
    let mut stream = serving.caller(&web()).await;
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");
    serving.app.next_connection().await;

    let mut snapshot = serving.snapshot(&[&web(), &spiffe_id("shop", "cart")]);
    snapshot.revision = 2;
    serving.harness.apply(snapshot).await;

    assert_eq!(exchange(&mut stream, "still").await, "api:still");
    assert!(serving.app.untouched());
    let counters = &serving.harness.counters;
    assert_eq!(serving.harness.read(&counters.inbound_revoked), 0);
}

#[tokio::test]
async fn a_removed_workload_stops_listening_and_its_connections_close() {
    let serving = Serving::start(settings()).await;
    let mut stream = serving.caller(&web()).await;
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");

    serving
        .harness
        .apply(snapshot(&serving.ca, vec![], vec![]))
        .await;

    assert!(closed(&mut stream).await);
    assert!(TcpStream::connect(serving.address).await.is_err());
}

#[tokio::test]
async fn a_renewed_certificate_serves_new_handshakes_and_spares_old_ones() {
    let serving = Serving::start(settings()).await;
    let mut before = serving.caller(&web()).await;
    let renewed = serving.ca.leaf(&spiffe_id("shop", "api"));

    serving
        .harness
        .publish(&serving.ca, &[("shop/api-1", &renewed)])
        .await;
    let after = serving.caller(&web()).await;

    let presented = after.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented, renewed.certificate);
    assert_eq!(exchange(&mut before, "old").await, "api:old");
}

#[tokio::test]
async fn plaintext_and_stalled_handshakes_do_not_hold_up_other_callers() {
    let impatient = Settings {
        handshake_timeout: Duration::from_millis(300),
        ..settings()
    };
    let serving = Serving::start(impatient).await;

    let mut plaintext = TcpStream::connect(serving.address).await.unwrap();
    plaintext
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(serving.address).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let mut caller = serving.caller(&web()).await;

    assert_eq!(exchange(&mut caller, "first").await, "api:first");
    assert!(ends(&mut plaintext).await);
    assert!(ends(&mut stalled).await);
    let counters = &serving.harness.counters;
    assert_eq!(
        serving.harness.read(&counters.inbound_handshake_timed_out),
        1
    );
    assert_eq!(serving.harness.read(&counters.inbound_handshake_failed), 1);
}

#[tokio::test]
async fn one_sources_stalled_handshakes_leave_room_for_other_sources() {
    let two_each = Settings {
        max_handshakes_per_source: 2,
        handshake_timeout: Duration::from_secs(30),
        ..settings()
    };
    let serving = Serving::start(two_each).await;
    let flooder = [127, 0, 0, 2];
    let _held = [
        connect_from(flooder, serving.address).await,
        connect_from(flooder, serving.address).await,
    ];

    let mut third = connect_from(flooder, serving.address).await;
    let started = tokio::time::Instant::now();
    let mut caller = serving.caller(&web()).await;

    assert_eq!(exchange(&mut caller, "through").await, "api:through");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(closed(&mut third).await);
    let counters = &serving.harness.counters;
    let crowded = &counters.inbound_source_handshakes_over_limit;
    assert_eq!(serving.harness.read(crowded), 1);
}

#[tokio::test]
async fn a_flood_from_many_sources_gives_way_to_a_caller_that_completes_its_handshake() {
    let two_in_all = Settings {
        max_handshakes: 2,
        handshake_timeout: Duration::from_secs(30),
        ..settings()
    };
    let serving = Serving::start(two_in_all).await;
    let mut flood = Vec::new();
    for octet in 2..10 {
        flood.push(connect_from([127, 0, 0, octet], serving.address).await);
    }

    let started = tokio::time::Instant::now();
    let mut caller = serving.caller(&web()).await;

    assert_eq!(exchange(&mut caller, "through").await, "api:through");
    assert!(started.elapsed() < Duration::from_secs(5));
    for stream in &mut flood[..7] {
        assert!(closed(stream).await, "an older handshake gave way");
    }
    let counters = &serving.harness.counters;
    serving
        .harness
        .reaches(&counters.inbound_handshakes_evicted, 7)
        .await;
    assert_eq!(serving.harness.read(&counters.inbound_handshake_failed), 0);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let one = Settings {
        max_connections: 1,
        ..settings()
    };
    let serving = Serving::start(one).await;
    let mut first = serving.caller(&web()).await;
    assert_eq!(exchange(&mut first, "first").await, "api:first");

    let mut second = TcpStream::connect(serving.address).await.unwrap();

    assert!(closed(&mut second).await);
    let counters = &serving.harness.counters;
    assert_eq!(serving.harness.read(&counters.over_limit), 1);
    assert_eq!(exchange(&mut first, "still").await, "api:still");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_waits_for_established_connections() {
    let serving = Serving::start(settings()).await;
    let mut stream = serving.caller(&web()).await;
    assert_eq!(exchange(&mut stream, "hello").await, "api:hello");

    serving.harness.stop();
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while TcpStream::connect(serving.address).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert!(!serving.harness.task.is_finished());
    assert_eq!(exchange(&mut stream, "draining").await, "api:draining");
    drop(stream);
    let finished = tokio::time::timeout(PROMPTLY, serving.harness.task).await;
    finished.unwrap().unwrap().unwrap();
}
