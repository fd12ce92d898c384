//! The reconnect storm: with every agent connected and current, the control
//! plane stops (SIGTERM) and starts again on the same port, and every agent
//! reconnects at the same moment, resuming from what it holds.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::swarm::Swarm;
use super::tcp::TcpCounters;
use crate::agent_bench::process::cpu_of;
use crate::cp::ControlPlane;
use crate::load::Latencies;

/// What the storm cost.
#[derive(Debug, Default)]
pub struct Storm {
    pub agents: usize,
    /// From SIGTERM until the process exited.
    pub stop: Duration,
    /// From spawn until the restarted server answered SERVING.
    pub start: Duration,
    /// From the release of every agent until the last had acknowledged the
    /// first answer of every type.
    pub all_acked: Duration,
    /// From the release to each agent's first response.
    pub first_response: Latencies,
    /// Resources sent again although the agent held them at that version.
    pub unchanged_resent: u64,
    /// Every resource in the first answers.
    pub resources_resent: u64,
    /// Encoded size of every first answer.
    pub bytes: usize,
    /// Streams that had to be tried again.
    pub retries: u64,
    /// What the kernel counted from the restart until every agent synced.
    pub tcp: TcpCounters,
    /// CPU time from the release until every agent synced: the control
    /// plane's, and the simulated fleet's (this process).
    pub server_cpu: Duration,
    pub fleet_cpu: Duration,
}

/// Restarts `cp` under `swarm` and times the agents' return.
pub async fn run(
    cp: &mut ControlPlane,
    swarm: &mut Swarm,
    timeout: Duration,
) -> anyhow::Result<Storm> {
    let agents = swarm.len();
    swarm.discard();

    // Stop, and see every stream end.
    let stopping = Instant::now();
    cp.stop().await.context("stopping palisade-cp")?;
    let stop = stopping.elapsed();
    swarm.ended(agents, timeout).await?;

    // Start on the same port, then let every agent go at once.
    let before = TcpCounters::read();
    let start = cp.start().await.context("restarting palisade-cp")?;
    let server = cp.pid()?;
    let cpu_before = (cpu_of(server)?, cpu_of(std::process::id())?);
    let released = Instant::now();
    swarm.reconnect_all();
    let synced = swarm.synced(agents, timeout).await?;
    let cpu_after = (cpu_of(server)?, cpu_of(std::process::id())?);

    let mut storm = Storm {
        agents,
        stop,
        start,
        tcp: TcpCounters::read().since(&before),
        server_cpu: cpu_after.0.saturating_sub(cpu_before.0),
        fleet_cpu: cpu_after.1.saturating_sub(cpu_before.1),
        ..Storm::default()
    };
    for s in &synced {
        let acked = s.acked.saturating_duration_since(released);
        storm.all_acked = storm.all_acked.max(acked);
        storm
            .first_response
            .record(s.first_response.saturating_duration_since(released));
        storm.unchanged_resent += u64::from(s.unchanged);
        storm.resources_resent += u64::from(s.resources);
        storm.bytes += s.bytes;
        storm.retries += u64::from(s.attempts - 1);
    }
    println!(
        "reconnect storm: {agents} agents current again {:.2} s after release",
        storm.all_acked.as_secs_f64()
    );
    Ok(storm)
}
