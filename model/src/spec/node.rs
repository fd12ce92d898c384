//! The Node spec: a host running a Palisade agent.

use serde::{Deserialize, Serialize};

/// A host running an agent. Its SPIFFE ID is `spiffe://<td>/node/<name>`
/// (see [`crate::node_spiffe_id`]). The spec may be empty: `spec: {}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Where the node can be reached: an IP address or a DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}
