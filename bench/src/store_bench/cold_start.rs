//! Cold start with a large store: a control plane of its own is filled with
//! files shaped like a fleet (Nodes, Services and the Workloads on them),
//! then stopped and started again and again; each start is timed and the
//! process's memory read as soon as it serves.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use palisade_proto::admin as pb;
use palisade_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::cp::ControlPlane;
use crate::docs::{self, CHUNK};
use crate::report::ColdStart;

/// The kinds the fleet files hold.
const KINDS: &[&str] = &["Node", "Service", "Workload"];
/// Resources per List page while counting.
const PAGE: u32 = 10_000;

/// Fills a new control plane in `dir` to `stored` resources, then times
/// `starts` restarts.
pub async fn run(
    binary: PathBuf,
    dir: &Path,
    stored: usize,
    starts: usize,
) -> anyhow::Result<ColdStart> {
    let mut cp = ControlPlane::init(binary, dir)?;
    cp.start().await.context("starting palisade-cp")?;
    let resources = fill(&cp, stored).await?;
    println!("stored resources: {resources}");

    let mut cold = ColdStart {
        resources,
        starts: Vec::with_capacity(starts),
    };
    for _ in 0..starts {
        cp.stop().await.context("stopping palisade-cp")?;
        let elapsed = cp.start().await.context("restarting palisade-cp")?;
        let memory = cp.memory()?;
        println!(
            "cold start: {:.2} s, VmRSS {} MiB, VmHWM {} MiB",
            elapsed.as_secs_f64(),
            memory.rss_kib / 1024,
            memory.peak_kib / 1024
        );
        cold.starts.push((elapsed, memory));
    }
    Ok(cold)
}

/// Applies fleet files, each in a namespace of its own, until the store
/// holds `target` resources; returns how many it holds.
async fn fill(cp: &ControlPlane, target: usize) -> anyhow::Result<usize> {
    let mut admin = cp.admin().await?;
    let mut resources = 0;
    let mut file = 0;
    while resources < target {
        let docs = (target - resources).min(CHUNK);
        file += 1;
        let request = pb::ApplyRequest {
            source: format!("fleet-{file}.yaml"),
            content: docs::fleet(&format!("fleet-{file}"), docs),
            dry_run: false,
        };
        admin.apply(request).await.context("a fleet apply")?;
        resources += docs;
    }
    count(&mut admin).await
}

/// Counts the stored resources of the fleet's kinds.
async fn count(admin: &mut AdminClient<Channel>) -> anyhow::Result<usize> {
    let mut total = 0;
    for kind in KINDS {
        let mut page_token = String::new();
        loop {
            let request = pb::ListRequest {
                kind: (*kind).into(),
                limit: PAGE,
                page_token,
                ..Default::default()
            };
            let page = admin.list(request).await.context("counting")?.into_inner();
            total += page.resources.len();
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    Ok(total)
}
