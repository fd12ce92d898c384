//! A CA rotation across three real agents (see `palisade_tests::bed`),
//! done as an admin would with `palisadectl ca prepare`, `activate` and
//! `retire`: every agent trusts the next CA before it signs, renews under
//! it, and drops the old CA when it retires, while a connection opened
//! under the old CA stays open throughout.
//!
//! Certificates live 8 seconds, so that everything the old CA signed has
//! expired a few seconds after activation. The retirement is forced
//! anyway: the first admin's certificate, which `palisadectl` presents,
//! also comes from the old CA and lives for weeks. Activation is forced so
//! as not to wait for the publication window.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_tests::bed::{Agent, Bed, Limits, NAMESPACE, WAIT, baseline_calls};
use palisade_tests::x509::{openssl_verify, pem_blocks};

/// How long every certificate lives, in seconds.
const TTL_SECS: u64 = 8;

/// What an agent logs when a change closes an established connection.
const CLOSED: [&str; 2] = [
    "connection closed: no longer allowed",
    "closed by a policy change",
];

/// The CAs an agent trusts for the control plane, which it takes from the
/// same configuration as its data path.
fn bundle_of(agent: &Agent) -> Vec<String> {
    let path = agent.data_dir.join("node/bundle.pem");
    pem_blocks(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The certificate chains an agent holds: its node's and its workloads'.
fn chains_of(agent: &Agent) -> Vec<String> {
    let mut paths = vec![agent.data_dir.join("node/cert.pem")];
    let workloads = agent.data_dir.join("workloads").join(NAMESPACE);
    for entry in std::fs::read_dir(workloads).into_iter().flatten().flatten() {
        paths.push(entry.path().join("cert.pem"));
    }
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap_or_default())
        .collect()
}

/// Whether `chain` verifies with `ca` as the only anchor.
fn signed_by(ca: &str, chain: &str, scratch: &Path) -> bool {
    !chain.is_empty() && openssl_verify(scratch, ca, chain, "sslclient").is_ok()
}

fn unix_now() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.expect("a time after 1970").as_secs()
}

/// Polls `ready` until it holds, panicking with `what` after [`WAIT`].
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_keeps_established_connections_open_while_every_agent_moves_to_the_new_ca() {
    let ttl = TTL_SECS.to_string();
    let flags = [
        "--workload-ttl-secs",
        &ttl,
        "--node-ttl-secs",
        &ttl,
        "--auto-rotate",
        "false",
    ];
    let mut bed = Bed::start_with(Limits::default(), &flags).await;
    let scratch = tempfile::tempdir().unwrap();
    let first_bundle = std::fs::read_to_string(bed.cp.data_dir.join("ca.pem")).unwrap();
    let old_ca = pem_blocks(&first_bundle).remove(0);
    let mut established = bed.open("web", "orders").await;

    // Prepare: the next CA joins every agent's bundle.
    bed.ctl(&["ca", "prepare"]);
    let published = pem_blocks(&bed.ctl(&["ca", "status", "--published"]));
    let new_ca = published.into_iter().find(|ca| *ca != old_ca).unwrap();
    for agent in bed.agents() {
        let node = agent.node.clone();
        wait_until(&format!("{node} trusting both CAs"), || {
            bundle_of(agent).len() == 2
        })
        .await;
    }
    established.exchange().await.unwrap();

    // Activate: every agent renews its certificates under the next CA.
    bed.ctl(&["ca", "activate", "--force"]);
    let activated = unix_now();
    for agent in bed.agents() {
        let node = agent.node.clone();
        wait_until(
            &format!("{node} holding certificates of the new CA"),
            || {
                let chains = chains_of(agent);
                chains.len() > 1 && chains.iter().all(|c| signed_by(&new_ca, c, scratch.path()))
            },
        )
        .await;
    }
    established.exchange().await.unwrap();
    bed.check(&baseline_calls()).await.unwrap();

    // Retire the old CA once everything it signed has expired: nothing
    // it signed before activation outlives activation by more than a TTL.
    let expired = activated + TTL_SECS + 2;
    let left = expired.saturating_sub(unix_now());
    tokio::time::sleep(Duration::from_secs(left)).await;
    bed.ctl(&["ca", "retire", "--force"]);
    for agent in bed.agents() {
        let node = agent.node.clone();
        wait_until(&format!("{node} trusting the new CA alone"), || {
            bundle_of(agent) == [new_ca.clone()]
        })
        .await;
    }

    established.exchange().await.unwrap();
    bed.check(&baseline_calls()).await.unwrap();
    for agent in bed.agents() {
        agent.assert_running();
        for closed in CLOSED {
            assert_eq!(
                agent.lines_with(&[closed]),
                0,
                "{}:\n{}",
                agent.node,
                agent.log()
            );
        }
    }
}
