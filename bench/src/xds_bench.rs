//! The xDS benchmarks: a fleet of simulated agents in this process, each a
//! node with its own certificate, mTLS connection and delta ADS stream. For
//! every fleet size, against a control plane of its own: connecting with
//! the control plane's memory read along the way, a policy change that
//! reaches every agent, a change that reaches a known 1%, and a restart
//! that every agent reconnects to at once.

use anyhow::{Context as _, ensure};

use crate::cli::XdsArgs;
use crate::cp::ControlPlane;
use crate::noise::CpuSample;

mod agent;
mod connect;
mod events;
mod fleet;
pub mod floor;
mod push;
mod report;
mod storm;
mod swarm;
mod tcp;

use connect::Waves;
use report::XdsReport;
use swarm::Swarm;

/// `serve` flags of the benchmark's control planes: nothing rotates while
/// it runs, and a stop drains within seconds.
const SERVE_ARGS: &[&str] = &["--auto-rotate", "false", "--drain-timeout-secs", "5"];

/// Runs every xDS benchmark for each fleet size and prints the tables.
pub async fn run(args: &XdsArgs) -> anyhow::Result<()> {
    ensure!(
        args.agents.iter().all(|&n| n > 0),
        "--agents must all be at least 1"
    );
    let binary = ControlPlane::locate()?;
    let mut reports = Vec::new();
    for &agents in &args.agents {
        let report = run_fleet(binary.clone(), agents, args)
            .await
            .with_context(|| format!("the run with {agents} agents"))?;
        reports.push(report);
    }
    for report in reports {
        report.print();
    }
    Ok(())
}

async fn run_fleet(
    binary: std::path::PathBuf,
    agents: usize,
    args: &XdsArgs,
) -> anyhow::Result<XdsReport> {
    let timeout = args.step_timeout();
    let began = CpuSample::now();
    let root = tempfile::Builder::new()
        .prefix("palisade-bench-")
        .tempdir()
        .context("creating the temporary directory")?;

    // A control plane that keeps its port across restarts, and the fleet.
    let mut cp = ControlPlane::init(binary, &root.path().join("cp"))?;
    let mut serve_args = SERVE_ARGS.to_vec();
    serve_args.extend(["--log-level", &args.cp_log_level]);
    cp.set_serve_args(&serve_args);
    cp.start().await.context("starting palisade-cp")?;
    cp.keep_address()?;
    let mut admin = cp.admin().await?;
    let fleet = fleet::set_up(&cp, &mut admin, agents, args.setup_concurrency).await?;
    println!(
        "fleet of {agents} set up in {:.1} s",
        fleet.setup.as_secs_f64()
    );

    // Every agent connected, with memory readings on the way.
    let mut swarm = Swarm::new(args.setup_concurrency);
    let waves = Waves {
        first: args.memory_checkpoint,
        settle: args.settle(),
        timeout,
    };
    let connected = connect::connect(&cp, &mut swarm, &fleet, waves).await?;

    // The pushes, then the storm.
    let fleet_push = push::fleet(&mut admin, &mut swarm, args.pushes, timeout).await?;
    let targeted = push::targeted(&mut admin, &mut swarm, &fleet.callers, timeout).await?;
    let storm = match args.skip_storm {
        true => None,
        false => Some(storm::run(&mut cp, &mut swarm, timeout).await?),
    };

    drop(swarm);
    cp.stop().await.context("stopping palisade-cp")?;

    // The same reconnections, bare: TLS resumptions and nothing above.
    let floor = match args.skip_storm {
        true => None,
        false => {
            let dir = root.path().join("floor");
            std::fs::create_dir_all(&dir)?;
            Some(floor::run(agents, &dir, timeout).await?)
        }
    };
    if args.keep_temp {
        println!("kept {}", root.keep().display());
    }
    Ok(XdsReport {
        agents,
        setup: fleet.setup,
        connected,
        fleet_push,
        targeted,
        storm,
        floor,
        others: CpuSample::now().others_since(&began),
    })
}
