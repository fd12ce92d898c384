//! xDS in a running control plane: the compiler loaded from the store and
//! kept current, the fleet of streams, and the ADS services that serve them.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::compile::Compiler;
use super::feed;
use super::fleet::Fleet;
use super::server::AdsService;
use super::stream::Limits;
use super::view::ClientKey;
use crate::identity::authority::Authority;
use crate::store::{Revision, Store, StoreError};
use crate::tasks::AbortOnDrop;
use crate::tls::PeerVerifier;

/// The running xDS side of the control plane.
pub struct Xds {
    compiler: Arc<Mutex<Compiler>>,
    fleet: Arc<Fleet>,
    limits: Limits,
    _feed: AbortOnDrop,
}

impl std::fmt::Debug for Xds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xds")
            .field("streams", &self.fleet.len())
            .finish_non_exhaustive()
    }
}

impl Xds {
    /// Loads the world and starts following the store and the authority.
    pub async fn start(
        store: Arc<dyn Store>,
        authority: Arc<Authority>,
    ) -> Result<Self, StoreError> {
        let world = feed::load(&*store, &authority).await?;
        let after = world.revision;
        tracing::info!(
            revision = after,
            nodes = world.nodes.len(),
            workloads = world.workloads.len(),
            "xDS world loaded"
        );

        let compiler = Arc::new(Mutex::new(Compiler::new(world)));
        let feed = feed::spawn(compiler.clone(), store, authority, after);
        Ok(Self {
            compiler,
            fleet: Arc::new(Fleet::default()),
            limits: Limits::default(),
            _feed: feed,
        })
    }

    /// The ADS service; `peers` is `None` on a plaintext development
    /// listener, where the node id a client claims is believed.
    /// Its streams end when `shutdown` turns true.
    pub fn service(
        &self,
        peers: Option<PeerVerifier>,
        shutdown: watch::Receiver<bool>,
    ) -> AdsService {
        AdsService::new(
            self.compiler.clone(),
            self.fleet.clone(),
            peers,
            self.limits,
            shutdown,
        )
    }

    /// The limits streams keep to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The streams connected now.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The revision of the newest view of `client`, and the world's.
    pub fn revisions(&self, client: &ClientKey) -> (Option<Revision>, Revision) {
        let compiler = self.compiler.lock().expect("compiler lock");
        let view = compiler.view(client).map(|v| v.revision);
        (view, compiler.world().revision)
    }

    /// The node a client runs on: the agent's own, or the proxied workload's.
    pub fn node_of(&self, client: &ClientKey) -> Option<String> {
        match client {
            ClientKey::Agent(node) => Some(node.clone()),
            ClientKey::Proxy { workload, .. } => {
                let compiler = self.compiler.lock().expect("compiler lock");
                compiler
                    .world()
                    .workloads
                    .get(workload)
                    .map(|w| w.node.clone())
            }
        }
    }
}
