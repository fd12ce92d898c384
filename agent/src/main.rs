//! `palisade-agent`: the node agent.
//!
//! Today it carries one command, `check`, which verifies over TLS that a
//! control plane is reachable, presents a certificate from the expected CA,
//! and reports SERVING. Attestation, certificates and enforcement build on
//! this binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The Palisade node agent.
#[derive(Debug, Parser)]
#[command(name = "palisade-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that a control plane is reachable, trusted and serving.
    Check {
        /// The control plane's admin address, e.g. https://127.0.0.1:7443.
        #[arg(long, env = "PALISADE_CONTROL_PLANE")]
        control_plane: String,
        /// The trust bundle (the control plane's ca.pem).
        #[arg(long, env = "PALISADE_CA")]
        ca: PathBuf,
        /// The server name in the control plane's certificate.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();

    let result = match (runtime, cli.command) {
        (
            Ok(runtime),
            Command::Check {
                control_plane,
                ca,
                server_name,
            },
        ) => runtime.block_on(check(&control_plane, &ca, &server_name)),
        (Err(error), _) => Err(error.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn check(address: &str, ca: &PathBuf, server_name: &str) -> anyhow::Result<()> {
    let bundle =
        std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(bundle))
        .domain_name(server_name);

    let channel = Channel::from_shared(address.to_owned())
        .context("control plane address")?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let request = HealthCheckRequest {
        service: "palisade.admin.v1.Admin".into(),
    };
    let status = HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner()
        .status;

    if status != ServingStatus::Serving as i32 {
        bail!("control plane at {address} is not serving (status {status})");
    }
    println!("control plane at {address} is serving");
    Ok(())
}
