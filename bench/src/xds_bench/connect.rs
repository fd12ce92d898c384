//! Connecting the fleet in waves, and the control plane's memory after
//! each: with no stream, with the first wave's streams, with every agent's.

use std::time::{Duration, Instant};

use super::agent::AgentSpec;
use super::fleet::Fleet;
use super::swarm::Swarm;
use crate::cp::ControlPlane;

/// The control plane's resident memory with some idle streams connected.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub streams: usize,
    pub rss_kib: u64,
}

/// What connecting the fleet took.
#[derive(Debug)]
pub struct Connected {
    pub readings: Vec<Reading>,
    /// Connecting and syncing every agent, settling time left out.
    pub sync: Duration,
    /// Encoded size of every first answer.
    pub bytes: usize,
}

/// How connecting is paced.
#[derive(Clone, Copy, Debug)]
pub struct Waves {
    /// Streams of the first wave; the second connects the rest.
    pub first: usize,
    /// Idle time before each memory reading.
    pub settle: Duration,
    /// Longest wait for a wave to sync.
    pub timeout: Duration,
}

/// Starts an agent for every node of `fleet` in two waves, reading the
/// control plane's memory before the first and after each.
pub async fn connect(
    cp: &ControlPlane,
    swarm: &mut Swarm,
    fleet: &Fleet,
    waves: Waves,
) -> anyhow::Result<Connected> {
    let bundle = cp.bundle_pem()?;
    let agents = fleet.nodes.len();
    let mut ends = vec![waves.first.min(agents), agents];
    ends.dedup();

    tokio::time::sleep(waves.settle).await;
    let mut connected = Connected {
        readings: vec![read(cp, 0)?],
        sync: Duration::ZERO,
        bytes: 0,
    };
    let mut start = 0;
    for end in ends {
        // One wave of agents, each with its node's certificate.
        let began = Instant::now();
        let mut specs = Vec::with_capacity(end - start);
        for (index, node) in fleet.nodes.iter().enumerate().take(end).skip(start) {
            let endpoint = node.endpoint(cp, &bundle)?;
            let node = node.name.clone();
            specs.push(AgentSpec {
                index,
                node,
                endpoint,
            });
        }
        swarm.spawn(specs);
        let synced = swarm.synced(end - start, waves.timeout).await?;
        connected.sync += began.elapsed();
        connected.bytes += synced.iter().map(|s| s.bytes).sum::<usize>();
        println!(
            "{end} agents synced ({:.1} s connecting so far)",
            connected.sync.as_secs_f64()
        );

        // Idle, then read.
        tokio::time::sleep(waves.settle).await;
        connected.readings.push(read(cp, end)?);
        start = end;
    }
    Ok(connected)
}

fn read(cp: &ControlPlane, streams: usize) -> anyhow::Result<Reading> {
    let rss_kib = cp.memory()?.rss_kib;
    println!(
        "control plane VmRSS with {streams} streams: {} MiB",
        rss_kib / 1024
    );
    Ok(Reading { streams, rss_kib })
}
