//! Workload certificates through the identity API. Every client is a node
//! of its own that attested through the API, with its own mTLS connection
//! and one workload assigned to it; each call asks for that workload's
//! certificate with one of the client's CSRs, all made beforehand so that
//! client-side key generation is not measured.

use std::sync::Arc;

use anyhow::Context as _;
use palisade_proto::identity::SignWorkloadRequest;
use palisade_proto::identity::identity_client::IdentityClient;
use tonic::transport::Channel;

use crate::cp::{self, CALL_TIMEOUT, ControlPlane};
use crate::docs;
use crate::load::{self, Client, Limits, Outcome};
use crate::nodes::{self, csr_pem, new_key};
use crate::paced::{self, PacedOutcome, Schedule};

/// Where the signing clients' workloads live.
pub const NAMESPACE: &str = "ident";
/// The Service of every signing client's workload.
pub const SERVICE: &str = "signer";
/// Attestations in flight while the clients are made.
const ATTEST_CONCURRENCY: usize = 32;

/// One client: a node's connection, its workload, and its CSRs.
#[derive(Clone)]
pub struct Signer {
    client: IdentityClient<Channel>,
    workload: String,
    csrs: Arc<[Vec<u8>]>,
}

impl Signer {
    async fn sign(mut self, n: u64) -> Result<(), tonic::Status> {
        let request = SignWorkloadRequest {
            namespace: NAMESPACE.into(),
            workload: self.workload.clone(),
            csr: self.csrs[n as usize % self.csrs.len()].clone(),
        };
        self.client.sign_workload(request).await.map(drop)
    }
}

impl Client for Signer {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        self.clone().sign(n).await
    }
}

/// Makes `count` clients, each with `pool` CSRs: their Nodes and Workloads,
/// their attestations and their connections.
pub async fn prepare(cp: &ControlPlane, count: usize, pool: usize) -> anyhow::Result<Vec<Signer>> {
    // A node and a workload per client.
    let names: Vec<String> = (0..count).map(|i| docs::node_name(SERVICE, i)).collect();
    let mut content = docs::nodes(SERVICE, 0..count) + &docs::service(NAMESPACE, SERVICE);
    for (index, node) in names.iter().enumerate() {
        content += &docs::workload(NAMESPACE, &workload_name(index), SERVICE, node, 15008);
    }
    let mut admin = cp.admin().await?;
    cp::apply(&mut admin, "signers.yaml", content)
        .await
        .context("applying the signing clients' nodes")?;

    // Attest every node, then connect with its certificate.
    let attested = nodes::attest_all(cp, &names, ATTEST_CONCURRENCY).await?;
    let bundle = cp.bundle_pem()?;
    let spiffe_id = nodes::workload_spiffe_id(NAMESPACE, SERVICE);
    let mut signers = Vec::with_capacity(count);
    for (index, node) in attested.iter().enumerate() {
        let channel = node
            .endpoint(cp, &bundle)?
            .timeout(CALL_TIMEOUT)
            .connect()
            .await?;
        let csrs: Vec<Vec<u8>> = (0..pool)
            .map(|_| csr_pem(&new_key(), &spiffe_id).into_bytes())
            .collect();
        signers.push(Signer {
            client: IdentityClient::new(channel),
            workload: workload_name(index),
            csrs: csrs.into(),
        });
    }
    Ok(signers)
}

fn workload_name(index: usize) -> String {
    format!("{SERVICE}-w{index:05}")
}

/// Each of `signers` sends one call at a time, within `limits`.
pub async fn closed_loop(signers: &[Signer], limits: Limits) -> anyhow::Result<Outcome> {
    let outcome = load::run(signers.to_vec(), limits).await?;
    println!(
        "SignWorkload, {} client(s): {:.0}/s ({} in {:.1} s, {} errors)",
        signers.len(),
        outcome.rate(),
        outcome.latencies.len(),
        outcome.elapsed.as_secs_f64(),
        outcome.errors
    );
    if let Some(status) = &outcome.first_error {
        println!("  first error: {status}");
    }
    Ok(outcome)
}

/// Calls on `schedule`, spread round-robin over `signers`' connections.
pub async fn open_loop(signers: &[Signer], schedule: Schedule) -> PacedOutcome {
    let signers: Arc<[Signer]> = signers.into();
    let mut outcome = paced::run(schedule, move |n| {
        let signer = signers[n as usize % signers.len()].clone();
        signer.sign(n)
    })
    .await;
    println!(
        "SignWorkload at {:.0}/s: {:.0}/s achieved, p99 {:.2} ms ({} sent, {} errors)",
        schedule.rate,
        outcome.rate(),
        outcome.latencies.quantile(0.99).as_secs_f64() * 1000.0,
        outcome.sent,
        outcome.errors
    );
    if let Some(status) = &outcome.first_error {
        println!("  first error: {status}");
    }
    outcome
}
