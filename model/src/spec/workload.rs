//! The Workload spec: one instance of a service on a node.

use serde::{Deserialize, Serialize};

/// One instance of a Service, running on a Node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The Service this is an instance of, in the same namespace.
    pub service: String,

    /// The Node it runs on.
    pub node: String,

    /// The workload's IP address, when it differs from the node's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// The port the application listens on.
    pub app_port: u16,

    /// The port the agent accepts mTLS traffic on; differs from `app_port`.
    pub inbound_port: u16,

    /// How the agent recognises the workload's processes.
    #[serde(default, skip_serializing_if = "Selectors::is_empty")]
    pub selectors: Selectors,
}

/// Process attributes that identify a workload to its node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selectors {
    /// The Unix user ID the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_uid: Option<u32>,

    /// The Unix group ID the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_gid: Option<u32>,

    /// The absolute path of the process's executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_path: Option<String>,
}

impl Selectors {
    /// Whether no selector is set.
    pub fn is_empty(&self) -> bool {
        self.unix_uid.is_none() && self.unix_gid.is_none() && self.process_path.is_none()
    }
}
