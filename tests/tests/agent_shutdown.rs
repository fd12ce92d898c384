//! SIGTERM on an agent of the bed (see `palisade_tests::bed`): it stops
//! accepting at once, carries the connections it has until their clients
//! close them, and exits 0, logging each phase; a connection still open at
//! the drain deadline is cut, and the agent exits at that deadline.
//!
//! The connection is web -> orders: from web's outbound listener on
//! node-a to orders' inbound listener on node-b. Either end's agent is the
//! one told to stop.

use std::time::{Duration, Instant};

use palisade_tests::bed::{BASELINE_ROUTES, Bed, Limits, Outcome, WAIT};

/// The drain deadline of an agent whose connection its client closes in
/// time: far longer than the test takes.
const LONG_DRAIN: Duration = Duration::from_secs(20);
/// The drain deadline the bed gives its agents.
const BED_DRAIN: Duration = Duration::from_secs(2);
/// How long an agent may take to exit after its deadline.
const EXIT_SLACK: Duration = Duration::from_millis(1500);

/// What an agent logs as it stops, in order, when its connections end in
/// time.
const DRAINED: [&str; 5] = [
    "shutting down: draining connections signal=\"SIGTERM\"",
    "listeners closed; draining connections connections=1",
    "connections drained",
    "data path drained",
    "palisade-agent stopped",
];
/// What it logs instead when the deadline cuts them.
const CUT: [&str; 4] = [
    "shutting down: draining connections signal=\"SIGTERM\"",
    "listeners closed; draining connections connections=1",
    "data path did not drain in time; closing what is left",
    "palisade-agent stopped",
];

/// Whether `log` holds each of `phases`, in order.
fn in_order(log: &str, phases: &[&str]) -> Result<(), String> {
    let mut rest = log;
    for phase in phases {
        let at = rest
            .find(phase)
            .ok_or_else(|| format!("no {phase:?} after the phases before it:\n{log}"))?;
        rest = &rest[at + phase.len()..];
    }
    Ok(())
}

/// Restarts the agent of `node` with a drain deadline of `deadline`, and
/// waits until it serves again.
async fn with_drain_deadline(bed: &mut Bed, node: &str, deadline: Duration) {
    let agent = bed.agent(node);
    assert!(agent.terminate().success(), "{}", agent.log());
    agent.set_flag("--drain-timeout-secs", &deadline.as_secs().to_string());
    agent.restart();
    bed.wait_for_listeners(&BASELINE_ROUTES).await;
}

/// Sends SIGTERM to the agent of `node`, and waits until it has closed its
/// listeners.
async fn stop_accepting(bed: &mut Bed, node: &str) -> Instant {
    let agent = bed.agent(node);
    let signalled = Instant::now();
    agent.send_sigterm();
    agent
        .wait_for_lines(&["listeners closed; draining connections"], 1)
        .await;
    signalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_agent_told_to_stop_refuses_new_calls_and_carries_its_connection_until_closed() {
    let mut bed = Bed::start(Limits::default()).await;
    with_drain_deadline(&mut bed, "node-b", LONG_DRAIN).await;
    let mut established = bed.open("web", "orders").await;
    let reached_before = bed.app("orders").connections();

    // node-b stops accepting: neither a caller's agent nor a stranger gets
    // through to orders, but the established connection carries on.
    let signalled = stop_accepting(&mut bed, "node-b").await;
    let through = bed.call("web", "orders").await;
    let direct = bed.call_direct("orders", None).await;
    let before_refusals = established.exchange().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_a_while = established.exchange().await;
    bed.agent("node-b").assert_running();

    // The client closes it; the agent is done.
    drop(established);
    let status = bed.agent("node-b").wait_for_exit(LONG_DRAIN).await;
    let took = signalled.elapsed();

    assert!(
        matches!(through, Outcome::Closed(_)),
        "web -> orders: {through}"
    );
    assert!(
        matches!(direct, Outcome::NoListener(_)),
        "to orders: {direct}"
    );
    assert_eq!(bed.app("orders").connections(), reached_before);
    before_refusals.unwrap();
    after_a_while.unwrap();
    let log = bed.agent("node-b").log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(took < LONG_DRAIN / 2, "exited {took:?} after SIGTERM");
    in_order(&log, &DRAINED).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_agent_told_to_stop_refuses_new_calls_and_carries_its_connection_until_closed() {
    let mut bed = Bed::start(Limits::default()).await;
    with_drain_deadline(&mut bed, "node-a", LONG_DRAIN).await;
    let mut established = bed.open("web", "orders").await;

    // node-a stops accepting: web's outbound listener and inbound port
    // are gone, but the established connection carries on.
    let signalled = stop_accepting(&mut bed, "node-a").await;
    let through = bed.call("web", "orders").await;
    let direct = bed.call_direct("web", None).await;
    let before_refusals = established.exchange().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_a_while = established.exchange().await;
    bed.agent("node-a").assert_running();

    // The client closes it; the agent is done.
    drop(established);
    let status = bed.agent("node-a").wait_for_exit(LONG_DRAIN).await;
    let took = signalled.elapsed();

    assert!(
        matches!(through, Outcome::NoListener(_)),
        "web -> orders: {through}"
    );
    assert!(matches!(direct, Outcome::NoListener(_)), "to web: {direct}");
    before_refusals.unwrap();
    after_a_while.unwrap();
    let log = bed.agent("node-a").log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(took < LONG_DRAIN / 2, "exited {took:?} after SIGTERM");
    in_order(&log, &DRAINED).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_open_at_the_drain_deadline_is_cut_and_the_agent_exits_then() {
    let mut bed = Bed::start(Limits::default()).await;
    let mut established = bed.open("web", "orders").await;

    // SIGTERM with the bed's short deadline; the connection still works
    // while the agent drains.
    let signalled = stop_accepting(&mut bed, "node-b").await;
    let draining = established.exchange().await;
    let status = bed.agent("node-b").wait_for_exit(WAIT).await;
    let took = signalled.elapsed();
    let cut = established.closed_within(Duration::from_secs(5)).await;

    draining.unwrap();
    let log = bed.agent("node-b").log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        took >= BED_DRAIN && took < BED_DRAIN + EXIT_SLACK,
        "exited {took:?} after SIGTERM, with a deadline of {BED_DRAIN:?}"
    );
    cut.unwrap();
    in_order(&log, &CUT).unwrap();
    assert!(!log.contains("connections drained"), "{log}");
}
