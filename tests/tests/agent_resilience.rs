//! The agents under stress (see `palisade_tests::bed`): the control plane
//! killed, an agent restarted without it, and hostile bytes, stalled
//! handshakes and a flood of half-open connections on an inbound port.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use palisade_tests::bed::{Bed, HOSTS, Limits, Outcome, allowed, app, baseline_calls, client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    bed.cp.start_on(address).await.unwrap();
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
    bed.check(&calls).await.unwrap();
    established.exchange().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_stalled_handshakes_and_half_open_floods_neither_stop_an_agent_nor_its_other_callers()
 {
    let limits = Limits {
        handshake_timeout_secs: 1,
        max_connections: 32,
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

    // 500 connections that never send, held open while others call.
    let mut flood = Vec::with_capacity(500);
    for _ in 0..500 {
        flood.push(TcpStream::connect(orders).await.unwrap());
    }
    let started = Instant::now();
    let elsewhere = bed
        .check(&[allowed("orders", "ledger"), allowed("orders", "payments")])
        .await;
    let elsewhere_took = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    let flooded = loop {
        match bed.call("web", "orders").await {
            Outcome::Answered { .. } => break Ok(()),
            other if Instant::now() > deadline => break Err(other),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    drop(flood);

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
    if let Err(last) = flooded {
        panic!("web -> orders was not answered during the flood: {last}");
    }

    // Every flood connection that held a slot, and the stalled one, timed out.
    let node_b = bed.agent("node-b");
    node_b.assert_running();
    let timed_out = ["TLS handshake timed out", "shop/orders-1"];
    node_b
        .wait_for_lines(&timed_out, limits.max_connections + 1)
        .await;
    assert!(
        !bed.app("orders")
            .callers()
            .iter()
            .any(|c| c == app::NO_HEADER),
        "garbage reached the application"
    );
    bed.check(&baseline_calls()).await.unwrap();
}
