//! One large apply, and the latency of Get and of a List of everything it
//! wrote, each measured from one client with nothing else running.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use palisade_proto::admin as pb;

use crate::cp::ControlPlane;
use crate::docs;
use crate::load::Latencies;
use crate::report::Percentiles;

/// Where the large apply writes.
const NAMESPACE: &str = "bulk";
/// The most resources one List returns.
const MAX_LIST: usize = 10_000;
/// Untimed calls before the timed ones.
const WARMUP_CALLS: usize = 5;

/// Applies `count` Services in one call and returns how long it took.
pub async fn apply_file(cp: &ControlPlane, count: usize) -> anyhow::Result<Duration> {
    let mut admin = cp.admin().await?;
    let request = pb::ApplyRequest {
        source: "bench.yaml".into(),
        content: docs::services(NAMESPACE, count),
        dry_run: false,
    };

    let sent = Instant::now();
    let reply = admin.apply(request).await.context("the large apply")?;
    let elapsed = sent.elapsed();

    let changes = &reply.get_ref().changes;
    ensure!(
        changes.len() == count,
        "the large apply changed {} resources",
        changes.len()
    );
    println!("apply of {count} documents: {:.2} s", elapsed.as_secs_f64());
    Ok(elapsed)
}

/// Gets `calls` of the large apply's Services, spread over all of them.
pub async fn gets(cp: &ControlPlane, stored: usize, calls: usize) -> anyhow::Result<Percentiles> {
    let mut admin = cp.admin().await?;
    let mut latencies = Latencies::default();
    for call in 0..WARMUP_CALLS + calls {
        let request = pb::GetRequest {
            kind: "Service".into(),
            namespace: NAMESPACE.into(),
            name: docs::service_name(call * 7919 % stored),
        };

        let sent = Instant::now();
        admin.get(request).await.context("a Get")?;
        if call >= WARMUP_CALLS {
            latencies.record(sent.elapsed());
        }
    }

    let percentiles = Percentiles::of(&mut latencies);
    println!("Get: {percentiles}");
    Ok(percentiles)
}

/// Lists the large apply's Services, all in one response, `calls` times.
pub async fn lists(
    cp: &ControlPlane,
    stored: usize,
    calls: usize,
) -> anyhow::Result<(usize, Percentiles)> {
    let mut admin = cp.admin().await?;
    let expected = stored.min(MAX_LIST);
    let mut latencies = Latencies::default();
    for call in 0..WARMUP_CALLS + calls {
        let request = pb::ListRequest {
            kind: "Service".into(),
            namespace: NAMESPACE.into(),
            limit: MAX_LIST as u32,
            ..Default::default()
        };

        let sent = Instant::now();
        let reply = admin.list(request).await.context("a List")?;
        let elapsed = sent.elapsed();

        let listed = reply.get_ref().resources.len();
        ensure!(
            listed == expected,
            "a List returned {listed} resources, not {expected}"
        );
        if call >= WARMUP_CALLS {
            latencies.record(elapsed);
        }
    }

    let percentiles = Percentiles::of(&mut latencies);
    println!("List of {expected}: {percentiles}");
    Ok((expected, percentiles))
}
