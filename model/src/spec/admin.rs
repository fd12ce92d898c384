//! The AdminRole and AdminBinding specs: who may do what through the admin API.

use serde::{Deserialize, Serialize};

/// Roles every Palisade control plane knows without an AdminRole document.
pub const BUILTIN_ROLES: [&str; 4] = ["admin", "editor", "viewer", "auditor"];

/// The verbs an AdminRule may grant (besides `*`, which grants them all).
///
/// `issue` creates join tokens for Nodes, `revoke` revokes Nodes, and
/// `rotate` prepares, activates and retires CAs and JWT signing keys.
pub const ADMIN_VERBS: [&str; 9] = [
    "get", "list", "watch", "apply", "delete", "audit", "issue", "revoke", "rotate",
];

/// A named set of permissions on the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminRoleSpec {
    /// The permissions; at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AdminRule>,
}

/// Grants some verbs on some kinds in some namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminRule {
    /// Verbs from [`ADMIN_VERBS`], or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// Kind names such as `Service`, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Namespaces, or `*`; empty means every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// Grants a role to administrators identified by SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminBindingSpec {
    /// A builtin role (see [`BUILTIN_ROLES`]) or the name of an AdminRole.
    pub role: String,
    /// SPIFFE IDs, or SPIFFE ID prefixes ending in `/*`; at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Narrows the role to these namespaces; empty means no narrowing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

impl AdminBindingSpec {
    /// Whether the role is builtin rather than an AdminRole document.
    pub fn has_builtin_role(&self) -> bool {
        BUILTIN_ROLES.contains(&self.role.as_str())
    }
}
