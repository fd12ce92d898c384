//! The agent benchmarks: what an outbound and inbound agent pair costs on
//! the data path, beside direct TCP and an HAProxy mTLS pair doing the
//! same job with the same certificates, in one run; and what the agents
//! hold in memory with a thousand workloads' worth of policy, idle and
//! under load. See `bench/README.md`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, ensure};

use crate::cli::AgentArgs;
use crate::noise::CpuSample;

mod apps;
mod bulk;
mod connects;
mod haproxy;
mod latency;
pub mod process;
mod report;
mod setup;

use apps::App;
use haproxy::{HaproxyPair, WorkloadFiles};
use process::{PeakSampler, Process};
use report::{AgentReport, ConnectRun, RouteResult};
use setup::{Apps, Mesh};

/// One way from the load generator to the applications.
struct Route<'a> {
    name: &'static str,
    echo: SocketAddr,
    sink: SocketAddr,
    /// The proxies' client and server sides, if any.
    sides: Option<(&'a Process, &'a Process)>,
}

/// Runs every agent benchmark and prints the tables.
pub async fn run(args: &AgentArgs) -> anyhow::Result<()> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(
        args.latency_connections > 0,
        "--latency-connections must be at least 1"
    );
    ensure!(
        args.latency_rounds > 0,
        "--latency-rounds must be at least 1"
    );
    ensure!(args.bulk_rounds > 0, "--bulk-rounds must be at least 1");
    let haproxy_binary = match args.skip_haproxy {
        true => None,
        false => Some(haproxy::locate(args.haproxy.as_deref())?),
    };
    let began = CpuSample::now();
    let root = tempfile::Builder::new()
        .prefix("palisade-bench-")
        .tempdir()
        .context("creating a temporary directory")?;

    // The applications, the mesh, and HAProxy over the mesh's certificates.
    let apps = Apps {
        echo: App::Echo.start().context("starting the echo server")?,
        sink: App::Sink.start().context("starting the sink")?,
    };
    let mesh = Mesh::start(root.path(), apps, args.workloads).await?;
    println!("agents serving {} workloads", mesh.workloads);
    let haproxy = match &haproxy_binary {
        Some(binary) => Some(start_haproxy(binary, &mesh, apps, root.path())?),
        None => None,
    };

    // Idle memory, then the loads.
    tokio::time::sleep(args.settle()).await;
    let mut report = AgentReport {
        workloads: mesh.workloads,
        idle: [mesh.client.memory()?, mesh.server.memory()?],
        haproxy_version: haproxy.as_ref().map(|h| h.version.clone()),
        ..AgentReport::default()
    };
    let mut routes = vec![
        Route {
            name: "direct TCP",
            echo: apps.echo,
            sink: apps.sink,
            sides: None,
        },
        Route {
            name: "agent pair",
            echo: mesh.echo,
            sink: mesh.sink,
            sides: Some((&mesh.client, &mesh.server)),
        },
    ];
    if let Some(pair) = &haproxy {
        routes.push(Route {
            name: "HAProxy pair",
            echo: pair.echo,
            sink: pair.sink,
            sides: Some((&pair.client, &pair.server)),
        });
    }
    let pids = vec![mesh.client.pid(), mesh.server.pid()];
    let sampler = PeakSampler::start(pids);
    report.routes = tokio::task::block_in_place(|| measure(args, &routes))?;
    report.loaded = sampler.finish();
    report.peak = [
        mesh.client.memory()?.peak_kib,
        mesh.server.memory()?.peak_kib,
    ];

    drop(routes);
    drop(haproxy);
    drop(mesh);
    report.others = Some(CpuSample::now().others_since(&began));
    if args.keep_temp {
        println!("kept {}", root.keep().display());
    }
    report.print(args);
    Ok(())
}

fn start_haproxy(
    binary: &std::path::Path,
    mesh: &Mesh,
    apps: Apps,
    root: &std::path::Path,
) -> anyhow::Result<HaproxyPair> {
    let client = WorkloadFiles::prepare(&mesh.cert_dir, "client-1", root)?;
    let echo = WorkloadFiles::prepare(&mesh.cert_dir, "echo-1", root)?;
    let sink = WorkloadFiles::prepare(&mesh.cert_dir, "sink-1", root)?;
    HaproxyPair::start(binary, root, apps, &client, [&echo, &sink])
}

/// Every load on every route: the latency rounds interleaved, then the
/// bulk rounds interleaved, then new connections through the proxies.
fn measure(args: &AgentArgs, routes: &[Route]) -> anyhow::Result<Vec<RouteResult>> {
    let mut results: Vec<RouteResult> = routes
        .iter()
        .map(|route| RouteResult::new(route.name))
        .collect();

    let pace = latency::Pace {
        rate: args.rate,
        duration: args.latency_round_time(),
        connections: args.latency_connections,
    };
    for round in 0..args.latency_rounds {
        for (route, result) in routes.iter().zip(&mut results) {
            let run = latency::run(route.echo, pace)
                .with_context(|| format!("latency through the {}", route.name))?;
            println!(
                "latency {}, {}: {} answered",
                round + 1,
                route.name,
                run.latencies.len()
            );
            result.latency.get_or_insert_default().merge(run);
        }
    }

    for round in 0..args.bulk_rounds {
        for (route, result) in routes.iter().zip(&mut results) {
            let transfer = bulk::run(route.sink, args.bulk_time())
                .with_context(|| format!("bulk transfer through the {}", route.name))?;
            println!(
                "bulk {}, {}: {:.0} MiB/s",
                round + 1,
                route.name,
                transfer.rate() / (1024.0 * 1024.0)
            );
            result.bulk.push(transfer);
        }
    }

    for (route, result) in routes.iter().zip(&mut results) {
        let Some((client, server)) = route.sides else {
            continue;
        };
        result.connects = Some(connect_run(args, route.echo, client, server)?);
        pause();
    }
    Ok(results)
}

fn connect_run(
    args: &AgentArgs,
    target: SocketAddr,
    client: &Process,
    server: &Process,
) -> anyhow::Result<ConnectRun> {
    let before = (client.cpu()?, server.cpu()?);
    let connects = connects::run(target, args.connect_clients, args.connect_time());
    let after = (client.cpu()?, server.cpu()?);
    println!(
        "new connections, {} + {}: {:.0}/s ({} failed)",
        client.name,
        server.name,
        connects.rate(),
        connects.failed
    );
    Ok(ConnectRun {
        client_cpu: after.0.saturating_sub(before.0),
        server_cpu: after.1.saturating_sub(before.1),
        connects,
    })
}

/// Lets the closed connections of one run leave the kernel's tables
/// before the next.
fn pause() {
    std::thread::sleep(Duration::from_secs(1));
}
