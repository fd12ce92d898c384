//! Pushes: a policy change that reaches every agent, and a workload change
//! that reaches only the nodes that deal with its service. Each is timed
//! from the admin API's answer to each agent's receipt and acknowledgement.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use palisade_control_plane::xds::agent::{AUTHORIZATION_TYPE_URL, ENDPOINTS_TYPE_URL, TYPES};
use palisade_proto::admin::FleetStatusRequest;

use super::events::{Event, Update};
use super::fleet::{self, INBOUND_PORT};
use super::swarm::Swarm;
use crate::cp::{self, Admin};
use crate::load::Latencies;

/// How long a targeted push listens after the last expected update, for
/// updates that should not come.
const QUIET: Duration = Duration::from_secs(2);
/// How long the server may take to record acknowledgements already sent.
const ACK_RECORDING: Duration = Duration::from_secs(10);

/// Latencies of one push, from the admin API's OK.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// From OK to each update's arrival.
    pub received: Latencies,
    /// From OK to each update's acknowledgement.
    pub acked: Latencies,
}

impl Arrivals {
    fn record(&mut self, ok: Instant, update: &Update) {
        self.received
            .record(update.received.saturating_duration_since(ok));
        self.acked
            .record(update.acked.saturating_duration_since(ok));
    }
}

/// Policy changes that every agent must receive.
#[derive(Debug, Default)]
pub struct FleetPush {
    pub changes: usize,
    pub agents: usize,
    /// One sample per agent and change.
    pub arrivals: Arrivals,
    /// From sending each Apply to its OK.
    pub apply: Latencies,
    /// Agents that missed a change.
    pub missed: usize,
    /// Responses other than the expected Authorization updates.
    pub unexpected: usize,
    /// Streams that the server saw acknowledge the last change.
    pub server_acked: usize,
}

/// Applies `changes` new api policies one after the other; after each,
/// waits until every agent acknowledged its Authorization update.
pub async fn fleet(
    admin: &mut Admin,
    swarm: &mut Swarm,
    changes: usize,
    timeout: Duration,
) -> anyhow::Result<FleetPush> {
    let agents = swarm.len();
    let mut push = FleetPush {
        changes,
        agents,
        ..FleetPush::default()
    };
    let mut revision = 0;
    for round in 1..=changes {
        swarm.discard();
        let sent = Instant::now();
        revision = cp::apply(admin, "api-policy.yaml", fleet::api_policy(round))
            .await
            .context("applying the api policy")?;
        let ok = Instant::now();
        push.apply.record(ok - sent);

        let reached = follow_fleet_push(swarm, &mut push, ok, timeout).await;
        push.missed += agents - reached;
        println!(
            "fleet push {round}: {reached} of {agents} agents acknowledged in {:.0} ms",
            ok.elapsed().as_secs_f64() * 1000.0
        );
    }

    push.server_acked = acked_at(admin, revision, agents).await?;
    Ok(push)
}

/// Follows one fleet push until every agent has its Authorization update;
/// returns how many do.
async fn follow_fleet_push(
    swarm: &mut Swarm,
    push: &mut FleetPush,
    ok: Instant,
    timeout: Duration,
) -> usize {
    let authorization = type_index(AUTHORIZATION_TYPE_URL);
    let mut reached = vec![false; push.agents];
    let mut count = 0;
    while count < push.agents {
        let Some(event) = swarm.next(ok + timeout).await else {
            break;
        };
        match event {
            Event::Update(u) if u.type_index == authorization && !reached[u.agent] => {
                reached[u.agent] = true;
                count += 1;
                push.arrivals.record(ok, &u);
            }
            _ => push.unexpected += 1,
        }
    }
    count
}

/// Counts the streams whose Authorization acknowledgement the server
/// recorded at `revision` or later, waiting a little for the last ones.
async fn acked_at(admin: &mut Admin, revision: u64, expected: usize) -> anyhow::Result<usize> {
    let deadline = Instant::now() + ACK_RECORDING;
    loop {
        let request = FleetStatusRequest {
            node: String::new(),
            resources: false,
        };
        let status = admin.fleet_status(request).await?.into_inner();
        let acked = status
            .streams
            .iter()
            .flat_map(|stream| &stream.types)
            .filter(|t| t.type_url == AUTHORIZATION_TYPE_URL && t.acked_revision >= revision)
            .count();
        if acked >= expected || Instant::now() > deadline {
            return Ok(acked);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A change meant for a known set of agents.
#[derive(Debug, Default)]
pub struct TargetedPush {
    /// The agents the change should reach.
    pub expected: usize,
    /// The agents that received anything after it.
    pub reached: usize,
    /// Whether those were exactly the expected agents.
    pub exact: bool,
    pub responses: usize,
    /// Encoded size of every response after the change.
    pub bytes: usize,
    pub arrivals: Arrivals,
}

/// Moves the target's workload to another inbound port; listens until every
/// caller node has the new Endpoints, then a while longer for strays.
pub async fn targeted(
    admin: &mut Admin,
    swarm: &mut Swarm,
    expected: &BTreeSet<usize>,
    timeout: Duration,
) -> anyhow::Result<TargetedPush> {
    swarm.discard();
    cp::apply(
        admin,
        "target.yaml",
        fleet::target_workload(INBOUND_PORT + 1),
    )
    .await
    .context("moving the target workload")?;
    let ok = Instant::now();

    // Until every expected agent has the target's Endpoints, then quiet.
    let endpoints = type_index(ENDPOINTS_TYPE_URL);
    let mut reached = BTreeSet::new();
    let mut waiting = expected.clone();
    let mut push = TargetedPush {
        expected: expected.len(),
        ..TargetedPush::default()
    };
    let mut deadline = ok + timeout;
    while let Some(event) = swarm.next(deadline).await {
        let Event::Update(update) = event else {
            continue;
        };
        reached.insert(update.agent);
        push.responses += 1;
        push.bytes += update.bytes;
        push.arrivals.record(ok, &update);
        if update.type_index == endpoints && waiting.remove(&update.agent) && waiting.is_empty() {
            deadline = Instant::now() + QUIET;
        }
    }

    push.reached = reached.len();
    push.exact = reached == *expected;
    println!(
        "targeted push: {} agents reached, {} expected, {} bytes",
        push.reached, push.expected, push.bytes
    );
    Ok(push)
}

fn type_index(type_url: &str) -> usize {
    TYPES
        .iter()
        .position(|t| *t == type_url)
        .expect("an agent type")
}
