//! The agents under stress (see `palisade_tests::bed`): the control plane
//! killed, an agent restarted without it, certificates that expire while
//! it is gone, and hostile bytes, stalled handshakes and floods of
//! half-open connections on an inbound port, from one other host and from
//! many.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_tests::bed::{
    Bed, Call, Expect, HOSTS, Limits, MEMBERS, Outcome, REFUSED_AT_HANDSHAKE, WAIT, allowed, app,
    baseline_calls, client, id,
};
use palisade_tests::x509::first_der;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_keep_enforcing_through_a_control_plane_outage_and_resync_without_resending() {
    let mut bed = Bed::start(Limits::default()).await;
    let calls = baseline_calls();
    bed.check(&calls).await.unwrap();
    let mut established = bed.open("web", "orders").await;
    let revisions: BTreeMap<String, u64> = bed
        .agents()
        .iter()
        .map(|a| (a.node.clone(), a.revision()))
        .collect();
    let address = bed.cp.address();

    // SIGKILL: the agents go on as before.
    bed.cp.kill();
    bed.check(&calls).await.unwrap();
    established.exchange().await.unwrap();

    // node-c's agent restarts with no control plane to ask.
    let payments = bed.agent("node-c");
    assert!(payments.terminate().success(), "{}", payments.log());
    payments.restart();
    payments.wait_for_source("last-known-good").await;
    bed.wait_for_listeners(&[("payments", "payments")]).await;
    bed.check(&calls).await.unwrap();

    // The control plane comes back where the agents look for it.
    let marks: Vec<usize> = bed.agents().iter().map(|a| a.log().len()).collect();
    let back = SystemTime::now();
    let cp_mark = bed.cp.log().len();
    let handshakes = "info,palisade_control_plane::server=debug";
    bed.cp
        .start_on_with(address, &["--log-level", handshakes])
        .await
        .unwrap();
    let streams = bed.wait_for_fleet_in_sync(back).await;
    for agent in bed.agents() {
        let node = agent.node.clone();
        agent
            .wait_until("reporting its new stream", |a| {
                a.status()
                    .is_some_and(|s| s["source"] == "control-plane" && !s["connected_to"].is_null())
            })
            .await;
        assert_eq!(agent.revision(), revisions[&node], "{node}");
    }

    assert_eq!(streams.len(), HOSTS.len());
    for (agent, mark) in bed.agents().iter().zip(marks) {
        let since = &agent.log()[mark..];
        let responses: Vec<&str> = since
            .lines()
            .filter(|l| l.contains("xDS response"))
            .collect();
        assert!(
            since.contains("configuration synced"),
            "{}:\n{since}",
            agent.node
        );
        assert!(
            responses.len() >= 6,
            "{}: one answer per type:\n{since}",
            agent.node
        );
        assert!(
            responses
                .iter()
                .all(|l| l.contains(" resources=0 removed=0")),
            "{}: a resource was sent again:\n{since}",
            agent.node
        );
        assert!(
            !since.contains("configuration applied"),
            "{}: the configuration changed:\n{since}",
            agent.node
        );
    }
    // The agents that kept running resumed their TLS sessions; node-c's,
    // restarted meanwhile, had none to resume.
    let cp_log = bed.cp.log();
    let since = &cp_log[cp_mark..];
    for (node, resumed) in [("node-a", true), ("node-b", true), ("node-c", false)] {
        assert_eq!(
            stream_resumed(since, node),
            Some(resumed),
            "{node}:\n{since}"
        );
    }

    bed.check(&calls).await.unwrap();
    established.exchange().await.unwrap();
}

/// Whether the TLS session under `node`'s first xDS stream in `log` was
/// resumed, as the control plane's debug log says.
fn stream_resumed(log: &str, node: &str) -> Option<bool> {
    let opened = format!("client=agent {node} ");
    let stream = log
        .lines()
        .find(|l| l.contains("xDS stream opened") && l.contains(&opened))?;
    let peer = stream.split_whitespace().find(|w| w.starts_with("peer="))?;
    let handshake = log
        .lines()
        .find(|l| l.contains("TLS handshake done") && l.contains(&format!("{peer} ")))?;
    Some(handshake.contains("resumed=true"))
}

/// Reads what arrives until the connection ends, at most `deadline`.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(deadline, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(received),
        Err(_) => None,
    }
}

/// How often the flood opens a connection.
const FLOOD_PACE: Duration = Duration::from_millis(5);
/// How often each source of the flood from many sources opens a
/// connection: together they open one every few milliseconds, so that a
/// caller's handshake is done well before as many newer connections as
/// the listener has slots come in behind it.
const MANY_SOURCES_PACE: Duration = Duration::from_millis(40);
/// How many of its newest connections the flood keeps open.
const FLOOD_HELD: usize = 500;
/// How long the flood lasts at least: several handshake timeouts, so that
/// the agent times out the connections that hold its slots and the flood
/// takes them again.
const FLOOD_LASTS: Duration = Duration::from_secs(4);
/// How long a call may take while the flood goes on.
const PROMPTLY: Duration = Duration::from_secs(2);

/// Opens connections to `target` from `flooder`, an address of the test's
/// that is none of the bed's hosts, that never send a byte, one every
/// `pace` ([`FLOOD_PACE`] takes every handshake slot the agent frees again
/// at once); keeps the newest [`FLOOD_HELD`] open until `stop`, and
/// returns how many it opened.
async fn flood(
    flooder: IpAddr,
    target: SocketAddr,
    pace: Duration,
    mut stop: oneshot::Receiver<()>,
) -> usize {
    let mut held = VecDeque::with_capacity(FLOOD_HELD);
    let mut opened = 0;
    loop {
        tokio::select! {
            _ = &mut stop => return opened,
            () = tokio::time::sleep(pace) => {}
        }
        if let Ok(stream) = client::connect_from(flooder, target).await {
            opened += 1;
            held.push_back(stream);
        }
        if held.len() > FLOOD_HELD {
            held.pop_front();
        }
    }
}

/// Three calls of orders by web, one after another, each with how long
/// it took.
async fn calls_from_web_to_orders(bed: &Bed) -> Vec<(Outcome, Duration)> {
    let mut calls = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let outcome = bed.call("web", "orders").await;
        calls.push((outcome, started.elapsed()));
    }
    calls
}

/// Asserts that every one of `calls` was answered with web's identity
/// within [`PROMPTLY`].
fn assert_answered_promptly(calls: &[(Outcome, Duration)]) {
    for (outcome, took) in calls {
        let answered = Outcome::Answered { caller: id("web") };
        assert_eq!(*outcome, answered, "web -> orders during the flood");
        assert!(
            *took < PROMPTLY,
            "web -> orders took {took:?} during the flood"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_stalled_handshakes_and_half_open_floods_neither_stop_an_agent_nor_its_other_callers()
 {
    let limits = Limits {
        handshake_timeout_secs: 1,
        max_connections: 128,
        max_handshakes: 64,
        max_handshakes_per_source: 16,
    };
    let mut bed = Bed::start(limits).await;
    let orders = bed.inbound("orders");

    // Plaintext where TLS is expected.
    let mut plaintext = TcpStream::connect(orders).await.unwrap();
    plaintext
        .write_all(b"GET / HTTP/1.1\r\nHost: orders\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut plaintext, Duration::from_secs(5)).await;

    // A ClientHello, then silence.
    let mut stalled = client::stall_mid_handshake(orders).await.unwrap();
    let stalled_for = client::time_until_closed(&mut stalled, Duration::from_secs(10)).await;

    // Another host keeps every handshake slot it may have taken, while
    // the bed's callers call: each call is made once, and must be prompt.
    let (stop, stopped) = oneshot::channel();
    let flood_ends = Instant::now() + FLOOD_LASTS;
    let flooding = tokio::spawn(flood(bed.stranger(), orders, FLOOD_PACE, stopped));
    let crowded = "inbound_source_handshakes_over_limit";
    bed.agent("node-b").wait_for_counter(crowded, 1).await;
    let started = Instant::now();
    let elsewhere = bed
        .check(&[allowed("orders", "ledger"), allowed("orders", "payments")])
        .await;
    let elsewhere_took = started.elapsed();
    let during = calls_from_web_to_orders(&bed).await;
    tokio::time::sleep_until(flood_ends.into()).await;
    let _ = stop.send(());
    let opened = flooding.await.unwrap();

    let answered = answered.expect("the agent closed the plaintext connection");
    assert!(
        !String::from_utf8_lossy(&answered).contains("spiffe://"),
        "{answered:?}"
    );
    let stalled_for = stalled_for.expect("the agent closed the stalled handshake");
    assert!(stalled_for < Duration::from_secs(5), "{stalled_for:?}");
    elsewhere.unwrap();
    assert!(
        elsewhere_took < Duration::from_secs(5),
        "{elsewhere_took:?}"
    );
    assert_answered_promptly(&during);

    // The flood's excess was closed at once, and the connections that held
    // its slots, like the stalled one, timed out.
    let node_b = bed.agent("node-b");
    node_b.assert_running();
    let refused = node_b.counter(crowded);
    assert!(
        refused > 0 && (refused as usize) < opened,
        "{refused} of {opened} flood connections closed at once"
    );
    let timed_out = ["TLS handshake timed out", "shop/orders-1"];
    let slots = limits.max_handshakes_per_source + 1;
    node_b.wait_for_lines(&timed_out, slots).await;
    assert!(
        !bed.app("orders")
            .callers()
            .iter()
            .any(|c| c == app::NO_HEADER),
        "garbage reached the application"
    );
    bed.check(&baseline_calls()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_flood_from_many_sources_gives_way_to_callers_that_complete_their_handshakes() {
    // Handshakes time out only after a minute: a slot the flood holds is
    // freed only by a newer connection taking it.
    let limits = Limits {
        handshake_timeout_secs: 60,
        max_connections: 256,
        max_handshakes: 32,
        max_handshakes_per_source: 8,
    };
    let mut bed = Bed::start(limits).await;
    let orders = bed.inbound("orders");
    let strangers = bed.strangers();
    assert!(strangers.len() * limits.max_handshakes_per_source > limits.max_handshakes);

    // Every stranger keeps its share of slots full, and together they
    // hold more than the listener has.
    let mut stops = Vec::new();
    let mut floods = Vec::new();
    for stranger in strangers {
        let (stop, stopped) = oneshot::channel();
        stops.push(stop);
        let flooding = flood(stranger, orders, MANY_SOURCES_PACE, stopped);
        floods.push(tokio::spawn(flooding));
    }
    let evicted = "inbound_handshakes_evicted";
    bed.agent("node-b").wait_for_counter(evicted, 1).await;
    let during = calls_from_web_to_orders(&bed).await;
    for stop in stops {
        let _ = stop.send(());
    }
    let mut opened = 0;
    for flood in floods {
        opened += flood.await.unwrap();
    }

    assert_answered_promptly(&during);
    let node_b = bed.agent("node-b");
    node_b.assert_running();
    let evictions = node_b.counter(evicted) as usize;
    assert!(
        evictions > 0 && evictions < opened,
        "{evictions} of {opened} flood connections given up"
    );
    assert_eq!(node_b.lines_with(&["TLS handshake timed out"]), 0);
    bed.check(&baseline_calls()).await.unwrap();
}

/// How long workload certificates live in the expiry test, in seconds:
/// renewal is due 4 s after each issuance, expiry 8 s after.
const WORKLOAD_TTL_SECS: u64 = 8;
/// What an agent logs when it could not renew its workloads' certificates.
const NOT_RENEWED: &str = "workload certificates not renewed";
/// What it logs when it gets one.
const ISSUED: &str = "workload certificate issued";
/// How soon after expiry an agent must stop presenting a certificate.
const EXPIRY_SLACK_SECS: f64 = 3.0;
/// How often the expiry test calls while it waits for the expiry.
const CALL_PACE: Duration = Duration::from_millis(200);

fn unix_now() -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.expect("a time after 1970").as_secs_f64()
}

/// The certificate an agent holds for a workload, as its files say.
struct Held {
    chain: String,
    key: String,
    serial: String,
    not_after: f64,
}

impl Held {
    fn of(bed: &Bed, service: &str) -> Held {
        let (chain, key) = bed.workload_identity(service);
        let der = first_der(&chain);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("a certificate");
        Held {
            not_after: parsed.validity().not_after.timestamp() as f64,
            serial: bed.workload_serial(service),
            chain,
            key,
        }
    }
}

/// How many lines with `text` each agent's current run has logged.
fn counts(bed: &mut Bed, text: &str) -> Vec<usize> {
    bed.agents().iter().map(|a| a.lines_with(&[text])).collect()
}

/// Waits until each agent has logged more lines with `text` than `before`
/// says.
async fn wait_for_more(bed: &mut Bed, text: &str, before: &[usize]) {
    for (agent, count) in bed.agents().iter_mut().zip(before) {
        agent.wait_for_lines(&[text], count + 1).await;
    }
}

/// How the calls of [`call_until_refused`] went.
struct UntilRefused {
    /// When the last answered call was made.
    last_answered: f64,
    /// When the refused one was made, and how it ended.
    refused_at: f64,
    refused: Outcome,
    /// When each call was made that reached the service and was then cut
    /// before its answer: taken while the certificates were valid, and
    /// closed as they expired.
    cut_at: Vec<f64>,
}

/// Calls `service` from `caller` every [`CALL_PACE`] until a call is
/// refused: not answered, and never reaching the service.
async fn call_until_refused(bed: &Bed, caller: &str, service: &str) -> UntilRefused {
    let deadline = Instant::now() + WAIT;
    let (mut last_answered, mut cut_at) = (0.0, Vec::new());
    loop {
        let reached = bed.app(service).connections();
        let at = unix_now();
        let outcome = bed.call(caller, service).await;
        let reached = bed.app(service).connections() > reached;
        match outcome {
            Outcome::Answered { .. } => last_answered = at,
            _ if reached => cut_at.push(at),
            refused => {
                return UntilRefused {
                    last_answered,
                    refused_at: at,
                    refused,
                    cut_at,
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "{caller} -> {service} answered for {WAIT:?}"
        );
        tokio::time::sleep(CALL_PACE).await;
    }
}

/// Waits until every one of `calls` does what it should.
async fn wait_for_calls(bed: &Bed, calls: &[Call]) {
    let deadline = Instant::now() + WAIT;
    while let Err(wrong) = bed.check(calls).await {
        assert!(Instant::now() < deadline, "after {WAIT:?}:\n{wrong}");
        tokio::time::sleep(CALL_PACE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_keep_working_without_the_control_plane_until_they_expire_and_renew_when_it_returns()
 {
    let ttl = WORKLOAD_TTL_SECS.to_string();
    let mut bed = Bed::start_with(Limits::default(), &["--workload-ttl-secs", &ttl]).await;
    let calls = baseline_calls();
    bed.check(&calls).await.unwrap();

    // SIGKILL, then past half life: every agent tried to renew and failed.
    let failed = counts(&mut bed, NOT_RENEWED);
    bed.cp.kill();
    wait_for_more(&mut bed, NOT_RENEWED, &failed).await;
    let issued = counts(&mut bed, ISSUED);
    let held: BTreeMap<&str, Held> = MEMBERS
        .iter()
        .map(|m| (m.service, Held::of(&bed, m.service)))
        .collect();
    let (web, orders) = (&held["web"], &held["orders"]);

    // The certificates held keep working until they expire, and not after.
    bed.check(&calls).await.unwrap();
    let until_refused = call_until_refused(&bed, "web", "orders").await;
    let expired_at = web.not_after.min(orders.not_after);
    let last_expiry = held.values().map(|h| h.not_after).fold(0.0, f64::max);
    let settled = Duration::from_secs_f64(last_expiry + EXPIRY_SLACK_SECS - unix_now());
    tokio::time::sleep(settled).await;
    let mut after_expiry = Vec::new();
    for call in calls.iter().filter(|c| c.expect == Expect::Allowed) {
        let reached = bed.app(call.service).connections();
        let outcome = bed.call(call.caller, call.service).await;
        let reached = bed.app(call.service).connections() - reached;
        after_expiry.push((call.caller, call.service, outcome, reached));
    }

    let UntilRefused {
        last_answered,
        refused_at,
        refused,
        cut_at,
    } = until_refused;
    assert!(
        last_answered + 1.0 >= expired_at,
        "last answered {:.1} s before the expiry",
        expired_at - last_answered
    );
    assert!(
        refused_at >= expired_at && refused_at <= expired_at + EXPIRY_SLACK_SECS,
        "refused ({refused}) {:.1} s after the expiry",
        refused_at - expired_at
    );
    // A call may be cut at the expiry itself, never well before it.
    for at in cut_at {
        let before = expired_at - at;
        assert!(
            before <= 1.0,
            "a call {before:.1} s before the expiry was cut"
        );
    }
    for (caller, service, outcome, reached) in &after_expiry {
        let answered = matches!(outcome, Outcome::Answered { .. });
        assert!(
            !answered && *reached == 0,
            "{caller} -> {service} after expiry: {outcome}"
        );
    }
    assert_eq!(
        counts(&mut bed, ISSUED),
        issued,
        "issued without a control plane"
    );
    for node in ["node-a", "node-b"] {
        let agent = bed.agent(node);
        assert!(
            agent.lines_with(&["workload certificate dropped"]) > 0,
            "{}",
            agent.log()
        );
    }

    // The control plane comes back: renewal resumes and calls go through
    // again, while the expired certificate stays refused.
    let issued = counts(&mut bed, ISSUED);
    bed.restart_control_plane().await;
    wait_for_more(&mut bed, ISSUED, &issued).await;
    wait_for_calls(&bed, &calls).await;
    let handshakes = bed.agent("node-b").lines_with(&[REFUSED_AT_HANDSHAKE]);
    let expired = bed
        .call_direct("orders", Some((&web.chain, &web.key)))
        .await;

    assert_ne!(Held::of(&bed, "web").serial, web.serial);
    assert!(matches!(expired, Outcome::HandshakeFailed(_)), "{expired}");
    let unverified = format!("unverified_serial=\"{}\"", web.serial);
    let refusal = [
        REFUSED_AT_HANDSHAKE,
        "workload=shop/orders-1",
        unverified.as_str(),
    ];
    bed.agent("node-b").wait_for_lines(&refusal, 1).await;
    assert!(bed.agent("node-b").lines_with(&[REFUSED_AT_HANDSHAKE]) > handshakes);
}
