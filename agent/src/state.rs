//! The configuration the agent enforces: one snapshot of every resource
//! the control plane sent for this node, applied whole or not at all, and
//! published on a watch channel that the proxies follow.
//!
//! "No configuration" is a state of its own: until a snapshot was applied
//! (from the control plane or from the last known good), every connection
//! is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use palisade_proto::xds as pb;
use tokio::sync::watch;

/// Type URLs of the agent's resources.
pub mod types {
    pub const WORKLOAD: &str = "type.googleapis.com/palisade.xds.v1.Workload";
    pub const AUTHORIZATION: &str = "type.googleapis.com/palisade.xds.v1.Authorization";
    pub const ENDPOINTS: &str = "type.googleapis.com/palisade.xds.v1.Endpoints";
    pub const JWT_RULES: &str = "type.googleapis.com/palisade.xds.v1.JwtRules";
    pub const TRUST_BUNDLE: &str = "type.googleapis.com/palisade.xds.v1.TrustBundle";
    pub const DENY_LIST: &str = "type.googleapis.com/palisade.xds.v1.DenyList";

    /// Every type, in the order the agent subscribes.
    pub const ALL: [&str; 6] = [
        TRUST_BUNDLE,
        DENY_LIST,
        WORKLOAD,
        AUTHORIZATION,
        ENDPOINTS,
        JWT_RULES,
    ];
}

/// Everything the agent enforces, as the control plane sent it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The newest store revision among the resources.
    pub revision: u64,
    /// This node's workloads, by `<namespace>/<name>`.
    pub workloads: BTreeMap<String, pb::Workload>,
    /// Authorization of the local services, by `<namespace>/<service>`.
    pub authorizations: BTreeMap<String, pb::Authorization>,
    /// Services the local workloads may call, by `<namespace>/<service>`.
    pub endpoints: BTreeMap<String, pb::Endpoints>,
    /// JWT rules of the local services, by `<namespace>/<service>`.
    pub jwt_rules: BTreeMap<String, pb::JwtRules>,
    pub bundle: Option<pb::TrustBundle>,
    /// Serials (lowercase hex) that must not be accepted.
    pub denied_serials: BTreeSet<String>,
    /// The version of every resource held, by type URL then name, for
    /// resuming a stream and for the last known good.
    pub versions: BTreeMap<String, BTreeMap<String, String>>,
}

impl Snapshot {
    /// The authorization that applies to a local workload's inbound traffic.
    pub fn authorization_for(&self, workload: &pb::Workload) -> Option<&pb::Authorization> {
        self.authorizations
            .get(&format!("{}/{}", workload.namespace, workload.service))
    }
}

/// What the proxies follow: `None` until a configuration was applied.
pub type Applied = Option<Arc<Snapshot>>;

/// The agent's configuration, shared by everyone that enforces it.
#[derive(Clone, Debug)]
pub struct State {
    applied: watch::Sender<Applied>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// A state with nothing applied: everything is refused.
    pub fn new() -> Self {
        Self {
            applied: watch::Sender::new(None),
        }
    }

    /// Replaces the configuration at once.
    pub fn apply(&self, snapshot: Snapshot) {
        self.applied.send_replace(Some(Arc::new(snapshot)));
    }

    /// The configuration now.
    pub fn current(&self) -> Applied {
        self.applied.borrow().clone()
    }

    /// Follows the configuration as it changes.
    pub fn watch(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }
}
