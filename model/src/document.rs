//! Documents: one resource with its kind, metadata and spec.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::key::ResourceKey;
use crate::kind::Kind;
use crate::metadata::Metadata;
use crate::parse::{self, ParseError};
use crate::spec::Spec;

/// The only `apiVersion` Palisade documents carry.
pub const API_VERSION: &str = "palisade.dev/v1";

/// One Palisade resource.
///
/// Serializes as `{"apiVersion", "kind", "metadata", "spec"}`; deserializing
/// reads the kind first, then the spec of that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Always [`API_VERSION`] once parsed.
    pub api_version: String,
    /// The kind; always the kind of `spec`.
    pub kind: Kind,
    /// Name, namespace, labels and revisions.
    pub metadata: Metadata,
    /// The typed spec.
    pub spec: Spec,
}

impl Document {
    /// A document for `spec`, with the current API version and the spec's kind.
    pub fn new(metadata: Metadata, spec: Spec) -> Self {
        Document {
            api_version: API_VERSION.to_owned(),
            kind: spec.kind(),
            metadata,
            spec,
        }
    }

    /// The resource's key; the namespace is empty for cluster-scoped kinds.
    pub fn key(&self) -> ResourceKey {
        let namespace = if self.kind.is_namespaced() {
            self.metadata.namespace.as_str()
        } else {
            ""
        };
        ResourceKey::new(self.kind, namespace, self.metadata.name.as_str())
    }

    /// Compact JSON, fields in the order apiVersion, kind, metadata, spec.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("documents have string keys and always serialize")
    }

    /// YAML, fields in the order apiVersion, kind, metadata, spec.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("documents have string keys and always serialize")
    }

    /// Reads one document back from JSON, such as the store keeps.
    pub fn from_json(s: &str) -> Result<Document, ParseError> {
        parse::one_json_document(s)
    }

    /// The resources that must exist for this one to make sense.
    ///
    /// A Workload needs its Service and Node; a RequestAuthentication needs
    /// each JwtIssuer; a policy or RequestAuthentication with a target needs
    /// that Service; an AdminBinding needs its AdminRole unless the role is builtin.
    pub fn references(&self) -> Vec<ResourceKey> {
        let namespace = self.metadata.namespace.as_str();
        let mut refs = Vec::new();
        match &self.spec {
            Spec::Workload(spec) => {
                refs.push(ResourceKey::new(
                    Kind::Service,
                    namespace,
                    spec.service.as_str(),
                ));
                refs.push(ResourceKey::new(Kind::Node, "", spec.node.as_str()));
            }
            Spec::AuthorizationPolicy(spec) => {
                refs.extend(target(namespace, spec.target_service.as_deref()));
            }
            Spec::RequestAuthentication(spec) => {
                refs.extend(target(namespace, spec.target_service.as_deref()));
                for rule in &spec.issuers {
                    refs.push(ResourceKey::new(
                        Kind::JwtIssuer,
                        namespace,
                        rule.issuer.as_str(),
                    ));
                }
            }
            Spec::AdminBinding(spec) if !spec.has_builtin_role() => {
                refs.push(ResourceKey::new(Kind::AdminRole, "", spec.role.as_str()));
            }
            _ => {}
        }

        let mut seen = std::collections::BTreeSet::new();
        refs.retain(|key| seen.insert(key.clone()));
        refs
    }

    /// Whether two documents are equal apart from the revisions the store assigns.
    pub fn same_content(&self, other: &Document) -> bool {
        self.api_version == other.api_version
            && self.kind == other.kind
            && self.metadata.same_content(&other.metadata)
            && self.spec == other.spec
    }
}

fn target(namespace: &str, service: Option<&str>) -> Option<ResourceKey> {
    let service = service.filter(|name| !name.is_empty())?;
    Some(ResourceKey::new(Kind::Service, namespace, service))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    api_version: &'a str,
    kind: Kind,
    metadata: &'a Metadata,
    spec: &'a Spec,
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = Wire {
            api_version: &self.api_version,
            kind: self.kind,
            metadata: &self.metadata,
            spec: &self.spec,
        };
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = parse::Tree::deserialize(deserializer)?.0;
        parse::decode_one(value).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests;
