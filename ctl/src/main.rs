//! `palisadectl`, the Palisade admin command line.
//!
//! Every command but `completion` and `version` talks to the control plane's
//! admin API over mutual TLS; see [`config`] for how the server and the
//! credentials are found.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod client;
mod commands;
mod config;
mod error;
mod input;
mod output;
mod report;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = cli::Cli::parse();

    match commands::run(cli).await {
        Ok(code) => code,
        Err(error) => report::failure(&error),
    }
}
