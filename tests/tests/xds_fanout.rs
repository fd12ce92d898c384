//! Fan-out: a client that stops reading does not hold up anyone else, and
//! what the control plane keeps for it stays bounded while it stalls.

use std::time::{Duration, Instant};

use palisade_tests::xds::{Delta, delta_ack, delta_request, types};
use palisade_tests::{ControlPlane, apply};
use tonic::transport::Channel;

const HEALTHY: usize = 100;
const UPDATES: usize = 12;
/// Identities in the policy, to make each Authorization resource large.
const IDENTITIES: usize = 800;

fn fleet_yaml() -> String {
    let mut yaml = String::from(
        "kind: Service\nmetadata: {name: api, namespace: shop}\nspec: {ports: [{port: 8080, protocol: http}]}\n",
    );
    for index in 0..=HEALTHY {
        yaml.push_str(&format!(
            "---\nkind: Node\nmetadata: {{name: n{index}}}\nspec: {{address: 127.0.1.{}}}\n\
             ---\nkind: Workload\nmetadata: {{name: api-{index}, namespace: shop}}\n\
             spec: {{service: api, node: n{index}, appPort: 8080, inboundPort: 15008}}\n",
            index % 250 + 1
        ));
    }
    yaml
}

/// A policy naming many callers; `round` changes its content.
fn policy(round: usize) -> String {
    let identities: Vec<String> = (0..IDENTITIES)
        .map(|i| format!("\"spiffe://fan.test/ns/callers-{round}/sa/caller-with-a-long-name-{i}\""))
        .collect();
    format!(
        "kind: AuthorizationPolicy\nmetadata: {{name: api, namespace: shop}}\n\
         spec:\n  targetService: api\n  rules:\n    - from: [{{identities: [{}]}}]\n",
        identities.join(", ")
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A plaintext channel; `window` caps what the client buffers unread.
async fn plaintext(cp: &ControlPlane, window: Option<u32>) -> Channel {
    let address = std::fs::read_to_string(cp.data_dir.join("xds-plaintext.addr")).unwrap();
    Channel::from_shared(format!("http://{}", address.trim()))
        .unwrap()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect()
        .await
        .unwrap()
}

/// Reads and ACKs until the stream holds the policy of `round`.
async fn converge(stream: &mut Delta, round: usize) {
    let needle = format!("callers-{round}/");
    loop {
        let response = stream.recv().await.unwrap();
        stream.send(delta_ack(&response)).await;
        let done = response.resources.iter().any(|r| {
            String::from_utf8_lossy(&r.resource.as_ref().unwrap().value).contains(&needle)
        });
        if done {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_delays_no_one_and_its_backlog_stays_bounded() {
    let mut cp = ControlPlane::init("fan.test").unwrap();
    cp.start_with(&["--xds-plaintext-listen", "127.0.0.1:0"])
        .await
        .unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, &fleet_yaml()).await.unwrap();
    apply(&mut admin, &policy(0)).await.unwrap();

    // One client that never reads, and a hundred that do.
    let stalled_channel = plaintext(&cp, Some(65_535)).await;
    let stalled_first = delta_request(
        Some(&format!("n{HEALTHY}")),
        types::AUTHORIZATION,
        &["*"],
        &[],
    );
    let _stalled = Delta::open(stalled_channel, stalled_first).await.unwrap();
    let channel = plaintext(&cp, None).await;
    let mut healthy = Vec::new();
    for index in 0..HEALTHY {
        let first = delta_request(
            Some(&format!("n{index}")),
            types::AUTHORIZATION,
            &["*"],
            &[],
        );
        let mut stream = Delta::open(channel.clone(), first).await.unwrap();
        converge(&mut stream, 0).await;
        healthy.push(stream);
    }
    let before = rss_kib(cp.pid().unwrap());

    // Every update reaches every healthy client promptly.
    let mut slowest = Duration::ZERO;
    for round in 1..=UPDATES {
        apply(&mut admin, &policy(round)).await.unwrap();
        let started = Instant::now();
        for stream in &mut healthy {
            converge(stream, round).await;
        }
        slowest = slowest.max(started.elapsed());
    }
    let after = rss_kib(cp.pid().unwrap());
    let revision = palisade_tests::revision(&mut admin).await.unwrap();
    let request = palisade_tests::pb::FleetStatusRequest {
        node: format!("n{HEALTHY}"),
        resources: false,
    };
    let stalled = admin.fleet_status(request).await.unwrap().into_inner();
    let sent = stalled.streams[0].types[0].sent_revision;

    println!(
        "fan-out: {HEALTHY} healthy clients converged on each of {UPDATES} updates within {slowest:?}; \
         control plane RSS {before} KiB -> {after} KiB with one client stalled"
    );
    assert!(
        slowest < Duration::from_secs(10),
        "slowest convergence {slowest:?}"
    );
    assert!(
        sent + 2 * 2 < revision,
        "the stalled stream was sent revision {sent} of {revision}: responses queued up for it"
    );
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "RSS grew by {} KiB while one client stalled",
        after - before
    );
}
