//! The AuthorizationPolicy spec: who may call a service, and how.

use serde::{Deserialize, Serialize};

use super::text;

/// Rules that allow, deny or audit calls to the services of a namespace.
///
/// A request matches the policy when it matches any rule; a rule matches when
/// every one of its non-empty parts (`from`, `to`, `when`) matches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// The Service the policy applies to; unset or empty means every service
    /// in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_service: Option<String>,

    /// What a match does.
    #[serde(default)]
    pub action: PolicyAction,

    /// Whether the policy is enforced or only logged.
    #[serde(default)]
    pub mode: PolicyMode,

    /// The rules; a request matching any of them matches the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// What a matching policy does; uppercase in documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PolicyAction {
    /// Let matching requests through.
    #[default]
    Allow,
    /// Refuse matching requests, whatever else allows them.
    Deny,
    /// Log matching requests without changing the decision.
    Audit,
}

/// Whether a policy's decisions take effect; lowercase in documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Decisions take effect.
    #[default]
    Enforce,
    /// Decisions are only logged: requests are decided as if the policy were
    /// absent, and each one it would have decided otherwise (let through
    /// what is refused, or refused what is let through) is logged with what
    /// it would have done.
    Audit,
}

/// One rule: where the request comes from, what it asks for, and extra conditions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Matches when any source matches; empty matches every caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Source>,

    /// Matches when any operation matches; empty matches every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Operation>,

    /// Matches when every condition matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// Who is calling. Every non-empty list must match; a `not` list matches when
/// none of its entries does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// SPIFFE IDs, SPIFFE ID prefixes ending in `/*`, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// Identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_identities: Vec<String>,
    /// The caller's namespace, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// CIDRs or single addresses, IPv4 or IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Address blocks that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Token principals `<iss>/<sub>`, with an optional leading or trailing `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Principals that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
}

/// What the request asks for. Every non-empty list must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Destination ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Destination ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<u16>,
    /// HTTP methods in uppercase, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Path patterns: exact, a prefix ending in `*`, a suffix starting with `*`, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Path patterns that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// A condition on a request attribute, e.g. `request.auth.claims[group]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The attribute, e.g. `request.headers[x-tenant]` or `source.ip`.
    pub key: String,
    /// Matches when the attribute equals any of these. Numbers and booleans
    /// are read as their text.
    #[serde(
        default,
        deserialize_with = "text::scalars",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
    /// Matches when the attribute equals none of these.
    #[serde(
        default,
        deserialize_with = "text::scalars",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_values: Vec<String>,
}

impl Source {
    /// Whether every list is empty (such a source is refused by validation).
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
            && self.not_identities.is_empty()
            && self.namespaces.is_empty()
            && self.not_namespaces.is_empty()
            && self.ip_blocks.is_empty()
            && self.not_ip_blocks.is_empty()
            && self.principals.is_empty()
            && self.not_principals.is_empty()
    }
}

impl Operation {
    /// Whether every list is empty (such an operation is refused by validation).
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
            && self.not_ports.is_empty()
            && self.methods.is_empty()
            && self.not_methods.is_empty()
            && self.paths.is_empty()
            && self.not_paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_and_mode_default_to_enforced_allow() {
        let spec: AuthorizationPolicySpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.action, PolicyAction::Allow);
        assert_eq!(spec.mode, PolicyMode::Enforce);
    }

    #[test]
    fn action_is_uppercase_and_mode_lowercase() {
        let json = r#"{"action": "DENY", "mode": "audit"}"#;
        let spec: AuthorizationPolicySpec = serde_json::from_str(json).unwrap();
        assert_eq!(
            (spec.action, spec.mode),
            (PolicyAction::Deny, PolicyMode::Audit)
        );
        assert!(serde_json::from_str::<AuthorizationPolicySpec>(r#"{"action": "deny"}"#).is_err());
    }

    #[test]
    fn condition_values_take_numbers_and_booleans_as_text() {
        let json =
            r#"{"key": "destination.port", "values": [8080, "9090", true], "notValues": [1.5]}"#;
        let condition: Condition = serde_json::from_str(json).unwrap();
        assert_eq!(condition.values, ["8080", "9090", "true"]);
        assert_eq!(condition.not_values, ["1.5"]);
        assert!(serde_json::from_str::<Condition>(r#"{"key": "k", "values": [[1]]}"#).is_err());
    }

    #[test]
    fn source_fields_use_camel_case() {
        let json = r#"{"notIpBlocks": ["10.0.0.0/8"], "notPrincipals": ["*"]}"#;
        let source: Source = serde_json::from_str(json).unwrap();
        assert_eq!(source.not_ip_blocks, ["10.0.0.0/8"]);
        assert!(!source.is_empty());
        assert!(Source::default().is_empty());
    }
}
