//! What one client may receive right now: a view, by type and name, of
//! resources encoded once and shared by every view that holds them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use envoy_types::pb::google::protobuf::Any;

use super::Built;
use super::world::Named;
use crate::store::Revision;

/// Whom a view is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    /// A node's agent.
    Agent(String),
    /// An Envoy or proxyless gRPC client acting for one workload.
    Proxy { workload: Named, flavor: Flavor },
}

pub use super::envoy::Flavor;

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Agent(node) => write!(f, "agent {node}"),
            ClientKey::Proxy { workload, flavor } => {
                let kind = match flavor {
                    Flavor::Envoy => "envoy",
                    Flavor::Grpc => "grpc",
                };
                write!(f, "{kind} {}/{}", workload.0, workload.1)
            }
        }
    }
}

/// One resource as served: its name, its version (a hash of its content),
/// and its encoding.
#[derive(Clone, PartialEq)]
pub struct Served {
    pub name: String,
    pub version: String,
    pub any: Any,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("type_url", &self.any.type_url)
            .finish_non_exhaustive()
    }
}

impl Served {
    /// Serves `built`, versioned by a hash of its bytes.
    pub fn from_built(built: Built) -> Arc<Served> {
        let hash = digest::digest(&digest::SHA256, &built.any.value);
        Self::with_hash(built, hash.as_ref())
    }

    /// Serves `built`, versioned by `content_hash`, for resources whose bytes
    /// carry a revision that changes without their content changing.
    pub fn with_hash(built: Built, content_hash: &[u8]) -> Arc<Served> {
        Arc::new(Served {
            version: hex::encode(&content_hash[..8.min(content_hash.len())]),
            name: built.name,
            any: built.any,
        })
    }
}

/// The resources of one type, by name.
pub type Resources = BTreeMap<String, Arc<Served>>;

/// What one client may receive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// The store revision the view was compiled at.
    pub revision: Revision,
    /// By type URL.
    pub types: BTreeMap<String, Resources>,
    /// Set when the client may no longer be served (its node was revoked):
    /// streams end with this reason.
    pub closed: Option<String>,
}

impl View {
    /// The resources of `type_url`; empty for a type this view does not hold.
    pub fn of(&self, type_url: &str) -> Option<&Resources> {
        self.types.get(type_url)
    }

    /// Whether two views would send the same bytes, whatever their
    /// revisions.
    pub fn same_content(&self, other: &View) -> bool {
        self.closed == other.closed
            && self.types.len() == other.types.len()
            && self.types.iter().zip(other.types.iter()).all(|(a, b)| {
                a.0 == b.0
                    && a.1.len() == b.1.len()
                    && a.1
                        .iter()
                        .zip(b.1.iter())
                        .all(|(x, y)| x.0 == y.0 && x.1.version == y.1.version)
            })
    }
}
