//! The fleet's shape, and setting it up.
//!
//! Every node hosts one Workload of the shared Service `fleet/api`, which an
//! AuthorizationPolicy targets: a change of that policy reaches every node.
//! One node in [`CALLER_EVERY`] also hosts a Workload of `fleet/caller`,
//! and only callers may call `fleet/target` (its policy names their
//! identity), so only those nodes are sent `fleet/target`'s Endpoints. The
//! one Workload of `fleet/target` runs on the first caller's node: a change
//! to it reaches exactly the caller nodes. The api policy allows an
//! identity no Service has, so no node is sent `fleet/api`'s Endpoints (a
//! list of every node).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cp::{self, Admin, ControlPlane};
use crate::docs::{self, CHUNK};
use crate::nodes::{self, AttestedNode, workload_spiffe_id};

/// Where the fleet lives.
pub const NAMESPACE: &str = "fleet";
/// Node names start with this.
const NODE_PREFIX: &str = "node";
/// One node in this many hosts a caller.
pub const CALLER_EVERY: usize = 100;
/// The inbound port of every workload but a moved target.
pub const INBOUND_PORT: u16 = 15008;

/// The fleet as set up: every node attested, and which host callers.
pub struct Fleet {
    pub nodes: Vec<AttestedNode>,
    /// Indices of the nodes that host a caller.
    pub callers: BTreeSet<usize>,
    /// How long applying and attesting took.
    pub setup: Duration,
}

/// Applies the fleet's documents for `agents` nodes and attests every node.
pub async fn set_up(
    cp: &ControlPlane,
    admin: &mut Admin,
    agents: usize,
    concurrency: usize,
) -> anyhow::Result<Fleet> {
    let started = Instant::now();

    // Nodes first, then the Services and policies, then the Workloads.
    for chunk in (0..agents).step_by(CHUNK) {
        let content = docs::nodes(NODE_PREFIX, chunk..(chunk + CHUNK).min(agents));
        cp::apply(admin, "fleet-nodes.yaml", content)
            .await
            .context("applying the fleet's nodes")?;
    }
    cp::apply(admin, "fleet-services.yaml", services())
        .await
        .context("applying the fleet's services")?;
    for chunk in (0..agents).step_by(CHUNK) {
        let content = workloads(chunk..(chunk + CHUNK).min(agents));
        cp::apply(admin, "fleet-workloads.yaml", content)
            .await
            .context("applying the fleet's workloads")?;
    }

    // Every node's certificate.
    let names: Vec<String> = (0..agents).map(node_name).collect();
    let nodes = nodes::attest_all(cp, &names, concurrency).await?;
    Ok(Fleet {
        nodes,
        callers: (0..agents).step_by(CALLER_EVERY).collect(),
        setup: started.elapsed(),
    })
}

/// The name of node `index`.
pub fn node_name(index: usize) -> String {
    docs::node_name(NODE_PREFIX, index)
}

/// The api policy of `round`: each round allows another identity.
pub fn api_policy(round: usize) -> String {
    let nobody = format!(
        "spiffe://{}/ns/clients/sa/frontend-{round}",
        cp::TRUST_DOMAIN
    );
    docs::allow_policy(NAMESPACE, "api", "api", &[nobody])
}

/// The target's one Workload, on the first caller's node.
pub fn target_workload(inbound_port: u16) -> String {
    docs::workload(NAMESPACE, "target-0", "target", &node_name(0), inbound_port)
}

fn services() -> String {
    let callers = [workload_spiffe_id(NAMESPACE, "caller")];
    ["api", "caller", "target"]
        .iter()
        .map(|name| docs::service(NAMESPACE, name))
        .chain([
            api_policy(0),
            docs::allow_policy(NAMESPACE, "target", "target", &callers),
        ])
        .collect()
}

/// The Workloads of the nodes in `indices`.
fn workloads(indices: std::ops::Range<usize>) -> String {
    let mut text = String::with_capacity(indices.len() * 160);
    for index in indices {
        let node = node_name(index);
        let api = format!("api-{index:05}");
        text += &docs::workload(NAMESPACE, &api, "api", &node, INBOUND_PORT);
        if index % CALLER_EVERY == 0 {
            let caller = format!("caller-{index:05}");
            text += &docs::workload(NAMESPACE, &caller, "caller", &node, INBOUND_PORT);
        }
        if index == 0 {
            text += &target_workload(INBOUND_PORT);
        }
    }
    text
}
