//! The store benchmarks, in one run: durable single-document applies
//! against etcd puts, one large apply, Get and List latency, and cold start
//! with a large store. Each step prints its figure as it finishes; the table
//! at the end gathers them.

use anyhow::{Context as _, ensure};

use crate::cli::StoreArgs;
use crate::cp::ControlPlane;
use crate::etcd::Etcd;
use crate::load::Limits;
use crate::report::{Peer, Report};

mod applies;
mod cold_start;
mod reads;

/// Runs every store benchmark and prints the results table.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    ensure!(args.file_docs > 0, "--file-docs must be at least 1");
    let binary = ControlPlane::locate()?;
    let etcd = match args.skip_etcd {
        true => None,
        false => Some(Etcd::locate(args.etcd.as_deref())?),
    };
    let root = tempfile::Builder::new()
        .prefix("palisade-bench-")
        .tempdir()
        .context("creating the temporary directory")?;
    let limits = Limits {
        duration: args.apply_time(),
        max_calls: args.apply_max,
    };

    // A fresh control plane.
    let mut cp = ControlPlane::init(binary.clone(), &root.path().join("cp"))?;
    cp.start().await.context("starting palisade-cp")?;
    let mut report = Report::default();

    // Durable single-document applies, then etcd puts from as many clients.
    for &clients in &args.clients {
        let outcome = applies::palisade(&cp, clients, limits).await?;
        report.add_applies(Peer::Palisade, clients, outcome);
    }
    if let Some(binary) = etcd {
        report.etcd_version = Some(Etcd::version(&binary));
        let etcd = Etcd::start(&binary, root.path()).await?;
        for &clients in &args.clients {
            let outcome = applies::etcd(&etcd, clients, limits).await?;
            report.add_applies(Peer::Etcd, clients, outcome);
        }
    }

    // One large apply, then reads of what it wrote.
    let elapsed = reads::apply_file(&cp, args.file_docs).await?;
    report.file_apply = Some((args.file_docs, elapsed));
    report.get = Some(reads::gets(&cp, args.file_docs, args.gets).await?);
    report.list = Some(reads::lists(&cp, args.file_docs, args.lists).await?);

    // Cold starts of another control plane, with a large store.
    cp.stop().await.context("stopping palisade-cp")?;
    let dir = root.path().join("cold-start");
    let cold = cold_start::run(binary, &dir, args.stored, args.cold_starts).await?;
    report.cold_start = Some(cold);

    report.print();
    Ok(())
}
