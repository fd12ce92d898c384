//! `palisade-agent check`: verifies over TLS that a control plane is
//! reachable, presents a certificate from the expected CA, and reports
//! SERVING.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Checks the control plane at `address`, trusting only `ca`.
pub async fn check(address: &str, ca: &Path, server_name: &str) -> anyhow::Result<()> {
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
