//! The identity benchmarks, in one run: the CA's raw signing rate in this
//! process, durable workload certificates through the identity API from
//! several client counts, and issuance latency under an open-loop load at a
//! fixed rate.

use anyhow::{Context as _, ensure};

use crate::cli::IdentityArgs;
use crate::cp::ControlPlane;
use crate::load::Limits;
use crate::nodes::{csr_pem, new_key, workload_spiffe_id};
use crate::noise::CpuSample;
use crate::paced::Schedule;

mod raw;
mod report;
mod signing;

use report::IdentityReport;

/// CSRs the raw loop cycles through.
const RAW_CSRS: usize = 64;

/// Runs every identity benchmark and prints the results table.
pub async fn run(args: &IdentityArgs) -> anyhow::Result<()> {
    ensure!(args.csr_pool > 0, "--csr-pool must be at least 1");
    ensure!(args.paced_rate > 0.0, "--paced-rate must be positive");
    let binary = ControlPlane::locate()?;
    let mut report = IdentityReport::default();
    let began = CpuSample::now();

    // The raw rate, before anything else runs.
    let spiffe_id = workload_spiffe_id(signing::NAMESPACE, signing::SERVICE);
    let csrs: Vec<String> = (0..RAW_CSRS)
        .map(|_| csr_pem(&new_key(), &spiffe_id))
        .collect();
    for &threads in &args.raw_threads {
        let rate = tokio::task::block_in_place(|| {
            raw::measure(&csrs, &spiffe_id, threads, args.raw_time(), args.lifetime())
        })?;
        println!("raw, {threads} thread(s): {:.0}/s", rate.rate());
        report.raw.push(rate);
    }

    // A fresh control plane and the signing clients.
    let root = tempfile::Builder::new()
        .prefix("palisade-bench-")
        .tempdir()
        .context("creating the temporary directory")?;
    let mut cp = ControlPlane::init(binary, &root.path().join("cp"))?;
    let ttl = args.workload_ttl_secs.to_string();
    cp.set_serve_args(&["--auto-rotate", "false", "--workload-ttl-secs", &ttl]);
    cp.start().await.context("starting palisade-cp")?;
    let most = args.clients.iter().copied().max().unwrap_or(1).max(1);
    let signers = signing::prepare(&cp, most, args.csr_pool).await?;

    // Closed loops, then the open loop.
    let limits = Limits {
        duration: args.sign_time(),
        max_calls: args.sign_max,
    };
    for &clients in &args.clients {
        let outcome = signing::closed_loop(&signers[..clients.max(1)], limits).await?;
        report.signing.push((clients.max(1), outcome));
    }
    let schedule = Schedule {
        rate: args.paced_rate,
        duration: args.paced_time(),
    };
    let paced = signing::open_loop(&signers, schedule).await;
    report.paced = Some((schedule, paced));

    cp.stop().await.context("stopping palisade-cp")?;
    report.others = Some(CpuSample::now().others_since(&began));
    report.print();
    Ok(())
}
