//! Durable single-document writes from concurrent clients: one Node per
//! Apply call to Palisade over mTLS, one key per Put to etcd. Every client
//! has its own connection, and every call writes a name not written before.

use palisade_proto::admin as pb;
use palisade_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::cp::ControlPlane;
use crate::docs;
use crate::etcd::{Etcd, KvClient, pb as etcd_pb};
use crate::load::{self, Client, Limits, Outcome};

/// Applies one new Node per call.
struct NodeApplier {
    admin: AdminClient<Channel>,
    prefix: String,
}

impl Client for NodeApplier {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        let request = pb::ApplyRequest {
            source: "bench".into(),
            content: docs::node(&format!("{}-{n}", self.prefix)),
            dry_run: false,
        };
        self.admin.apply(request).await.map(drop)
    }
}

/// Puts one new key per call, with a Node document as its value so that
/// both systems write the same bytes.
struct KeyPutter {
    kv: KvClient<Channel>,
    prefix: String,
}

impl Client for KeyPutter {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        let name = format!("{}-{n}", self.prefix);
        let request = etcd_pb::PutRequest {
            key: format!("bench/nodes/{name}").into_bytes(),
            value: docs::node(&name).into_bytes(),
            ..Default::default()
        };
        self.kv.put(request).await.map(drop)
    }
}

/// Palisade applies from `clients` concurrent clients.
pub async fn palisade(
    cp: &ControlPlane,
    clients: usize,
    limits: Limits,
) -> anyhow::Result<Outcome> {
    let mut appliers = Vec::with_capacity(clients);
    for _ in 0..clients {
        appliers.push(NodeApplier {
            admin: cp.admin().await?,
            prefix: format!("c{clients}"),
        });
    }

    let outcome = load::run(appliers, limits).await?;
    progress("palisade applies", clients, &outcome);
    Ok(outcome)
}

/// etcd puts from `clients` concurrent clients.
pub async fn etcd(etcd: &Etcd, clients: usize, limits: Limits) -> anyhow::Result<Outcome> {
    let mut putters = Vec::with_capacity(clients);
    for _ in 0..clients {
        putters.push(KeyPutter {
            kv: etcd.client().await?,
            prefix: format!("c{clients}"),
        });
    }

    let outcome = load::run(putters, limits).await?;
    progress("etcd puts", clients, &outcome);
    Ok(outcome)
}

fn progress(what: &str, clients: usize, outcome: &Outcome) {
    println!(
        "{what}, {clients} clients: {:.0}/s ({} in {:.1} s, {} errors)",
        outcome.rate(),
        outcome.latencies.len(),
        outcome.elapsed.as_secs_f64(),
        outcome.errors
    );
    if let Some(status) = &outcome.first_error {
        println!("  first error: {status}");
    }
}
