//! Fan-out: clients that stop reading do not hold up anyone else, what the
//! control plane keeps for them stays bounded however many updates they
//! miss, and when they read again they get the latest view, not every
//! update they missed.
//!
//! The tests measure time and memory, so they take turns.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use palisade_tests::xds::{Delta, delta_ack, delta_request, types};
use palisade_tests::{Admin, ControlPlane, apply, pb};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tonic::transport::Channel;

/// Held by each test while it runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const HEALTHY: usize = 100;
const STALLED: usize = 8;
/// Updates that let the store, the caches and the stalled clients'
/// backlogs settle before anything is measured.
const SETTLE: usize = 6;
/// Updates timed and watched, with the stalled clients absent and again
/// with them present.
const MEASURED: usize = 16;
/// Identities in the policy, to make each Authorization resource large.
const IDENTITIES: usize = 3000;

fn fleet_yaml() -> String {
    let mut yaml = String::from(
        "kind: Service\nmetadata: {name: api, namespace: shop}\nspec: {ports: [{port: 8080, protocol: http}]}\n",
    );
    for index in 0..HEALTHY + STALLED {
        yaml.push_str(&format!(
            "---\nkind: Node\nmetadata: {{name: n{index}}}\nspec: {{address: 127.0.1.{}}}\n\
             ---\nkind: Workload\nmetadata: {{name: api-{index}, namespace: shop}}\n\
             spec: {{service: api, node: n{index}, appPort: 8080, inboundPort: 15008}}\n",
            index % 250 + 1
        ));
    }
    yaml
}

/// Updates made while a stalled client does not read, in the coalescing
/// test.
const MISSED: usize = 16;
/// The most responses a client that reads again may get: its first answer
/// and the few updates already on their way when it stopped reading (in
/// the connection's flow-control window, the server's write buffer and the
/// stream's small outgoing queue), then one with the latest view.
const AFTER_STALL: usize = 6;

/// A policy naming many callers, a thousand to a source; `round` changes
/// its content.
fn policy(round: usize) -> String {
    let sources: Vec<String> = (0..IDENTITIES)
        .map(|i| format!("\"spiffe://fan.test/ns/callers-{round}/sa/caller-with-a-long-name-{i}\""))
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| format!("{{identities: [{}]}}", chunk.join(", ")))
        .collect();
    format!(
        "kind: AuthorizationPolicy\nmetadata: {{name: api, namespace: shop}}\n\
         spec:\n  targetService: api\n  rules:\n    - from: [{}]\n",
        sources.join(", ")
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

/// Reads and ACKs until the stream holds the policy of `round`; returns
/// the size of the Authorization resource that carried it.
async fn converge(stream: &mut Delta, round: usize) -> usize {
    loop {
        let response = stream.recv().await.unwrap();
        stream.send(delta_ack(&response)).await;
        if let Some((carried, size)) = policy_round(&response)
            && carried == round
        {
            return size;
        }
    }
}

/// The round of the policy an Authorization response carries, and the
/// resource's size.
fn policy_round(response: &DeltaDiscoveryResponse) -> Option<(usize, usize)> {
    response.resources.iter().find_map(|r| {
        let value = &r.resource.as_ref().unwrap().value;
        let text = String::from_utf8_lossy(value);
        let (_, rest) = text.split_once("/ns/callers-")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((digits.parse().ok()?, value.len()))
    })
}

/// Starts a control plane with plaintext xDS holding the fleet and the
/// policy of round 0.
async fn fleet() -> (ControlPlane, Admin) {
    let mut cp = ControlPlane::init("fan.test").unwrap();
    cp.start_with(&["--xds-plaintext-listen", "127.0.0.1:0"])
        .await
        .unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, &fleet_yaml()).await.unwrap();
    apply(&mut admin, &policy(0)).await.unwrap();
    (cp, admin)
}

/// Applies the policy of `round` and waits until every healthy client,
/// each reading on its own task, holds it; returns the clients, how long
/// that took and the size of the resource.
async fn update(
    admin: &mut Admin,
    healthy: Vec<Delta>,
    round: usize,
) -> (Vec<Delta>, Duration, usize) {
    apply(admin, &policy(round)).await.unwrap();
    let started = Instant::now();
    let mut readers = JoinSet::new();
    for mut stream in healthy {
        readers.spawn(async move {
            let size = converge(&mut stream, round).await;
            (stream, size)
        });
    }

    let mut healthy = Vec::new();
    let mut size = 0;
    while let Some(joined) = readers.join_next().await {
        let (stream, carried) = joined.expect("a reader panicked");
        healthy.push(stream);
        size = carried;
    }
    (healthy, started.elapsed(), size)
}

/// Makes `count` updates after `round`, each waited for by every healthy
/// client; returns the clients, each update's convergence time, and the
/// size of the resource that carried the last.
async fn updates(
    admin: &mut Admin,
    mut healthy: Vec<Delta>,
    round: &mut usize,
    count: usize,
) -> (Vec<Delta>, Vec<Duration>, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..count {
        *round += 1;
        let took;
        (healthy, took, size) = update(admin, healthy, *round).await;
        times.push(took);
    }
    (healthy, times, size)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn authorization_request(node: usize) -> DeltaDiscoveryRequest {
    delta_request(Some(&format!("n{node}")), types::AUTHORIZATION, &["*"], &[])
}

/// Opens the clients that never read, each on its own connection with room
/// for less than one update.
async fn stall(cp: &ControlPlane) -> Vec<Delta> {
    let mut stalled = Vec::new();
    for index in HEALTHY..HEALTHY + STALLED {
        stalled.push(stalled_client(cp, index).await);
    }
    stalled
}

/// Opens the stream of node `index` on a connection with room for less
/// than one update, and reads nothing.
async fn stalled_client(cp: &ControlPlane, index: usize) -> Delta {
    let channel = plaintext(cp, Some(65_535)).await;
    Delta::open(channel, authorization_request(index))
        .await
        .unwrap()
}

/// The revision last sent to each stalled client.
async fn sent_to_stalled(admin: &mut Admin) -> Vec<u64> {
    let mut sent = Vec::new();
    for index in HEALTHY..HEALTHY + STALLED {
        let request = pb::FleetStatusRequest {
            node: format!("n{index}"),
            resources: false,
        };
        let status = admin.fleet_status(request).await.unwrap().into_inner();
        sent.push(status.streams[0].types[0].sent_revision);
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_delay_no_one_and_their_backlog_does_not_grow() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (cp, mut admin) = fleet().await;
    let pid = cp.pid().unwrap();
    let mut round = 0;

    // A hundred clients that read, timed and watched alone.
    let channel = plaintext(&cp, None).await;
    let mut healthy = Vec::new();
    for index in 0..HEALTHY {
        let mut stream = Delta::open(channel.clone(), authorization_request(index))
            .await
            .unwrap();
        converge(&mut stream, 0).await;
        healthy.push(stream);
    }
    (healthy, _, _) = updates(&mut admin, healthy, &mut round, SETTLE).await;
    let start = rss_kib(pid);
    let (healthy, alone, _) = updates(&mut admin, healthy, &mut round, MEASURED).await;
    let grown_alone = rss_kib(pid).saturating_sub(start);

    // The same beside clients that never read, once their backlogs are full.
    let _stalled = stall(&cp).await;
    let (healthy, mut beside, _) = updates(&mut admin, healthy, &mut round, SETTLE).await;
    let sent_before = sent_to_stalled(&mut admin).await;
    let start = rss_kib(pid);
    let (_, more, size) = updates(&mut admin, healthy, &mut round, MEASURED).await;
    let grown_beside = rss_kib(pid).saturating_sub(start);
    let sent_after = sent_to_stalled(&mut admin).await;
    beside.extend(more);

    let (alone, beside) = (median(alone), median(beside));
    let queued_kib = (STALLED * MEASURED * size / 1024) as u64;
    println!(
        "fan-out: {HEALTHY} healthy clients converged in {alone:?} (median) alone and in \
         {beside:?} beside {STALLED} stalled ones; over {MEASURED} updates of {size} bytes \
         the control plane's RSS grew {grown_alone} KiB alone and {grown_beside} KiB beside \
         them (queueing every update for them would take {queued_kib} KiB)"
    );
    assert!(
        beside <= alone * 2 + Duration::from_millis(50),
        "the stalled clients slowed the others: {beside:?} against {alone:?} without them"
    );
    assert_eq!(
        sent_before, sent_after,
        "nothing more was sent to the stalled clients while they missed {MEASURED} updates"
    );
    assert!(
        grown_beside <= grown_alone + queued_kib / 4,
        "RSS grew by {grown_beside} KiB beside the stalled clients, {grown_alone} KiB without"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_that_reads_again_gets_the_latest_view_not_every_update() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (cp, mut admin) = fleet().await;
    let channel = plaintext(&cp, None).await;
    let mut healthy = Delta::open(channel, authorization_request(0))
        .await
        .unwrap();
    converge(&mut healthy, 0).await;
    let mut stalled = stalled_client(&cp, HEALTHY).await;

    // Updates the stalled client misses, each one published: the healthy
    // client, whose view changes in the same compilation, has it.
    for round in 1..=MISSED {
        apply(&mut admin, &policy(round)).await.unwrap();
        converge(&mut healthy, round).await;
    }
    let mut rounds = Vec::new();
    while rounds.last() != Some(&MISSED) {
        let response = stalled.recv().await.unwrap();
        stalled.send(delta_ack(&response)).await;
        rounds.extend(policy_round(&response).map(|(round, _)| round));
        assert!(rounds.len() <= MISSED + 1, "every update came: {rounds:?}");
    }

    println!("coalescing: after missing {MISSED} updates, a stalled client read rounds {rounds:?}");
    assert!(
        rounds.len() <= AFTER_STALL,
        "the client read {} responses after missing {MISSED} updates: rounds {rounds:?}",
        rounds.len()
    );
    assert!(
        rounds.windows(2).all(|pair| pair[0] < pair[1]),
        "rounds came out of order: {rounds:?}"
    );
    assert!(
        stalled.quiet().await,
        "nothing stale follows the latest view"
    );
}
