//! `palisade-bench`: load generators that measure Palisade against its
//! targets and, where a peer exists, against that peer. See `bench/README.md`.

use std::process::ExitCode;

use clap::Parser as _;

mod agent_bench;
mod cli;
mod cp;
mod docs;
mod etcd;
mod identity_bench;
mod load;
mod nodes;
mod noise;
mod paced;
mod report;
mod store_bench;
mod table;
mod xds_bench;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli.run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
