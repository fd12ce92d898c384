//! Resource metadata: name, namespace, labels, annotations and revisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `metadata` block shared by every resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The resource's name, unique within its kind and namespace.
    pub name: String,

    /// The namespace; `"default"` when a namespaced document leaves it out,
    /// empty for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,

    /// Labels: short keyed values for selection and grouping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations: free-form notes that Palisade does not interpret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Optimistic concurrency on input; set by the store on output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,

    /// Set by the store: the revision that created the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_revision: Option<u64>,
}

impl Metadata {
    /// Metadata with just a namespace (`""` for cluster-scoped kinds) and a name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Metadata {
            name: name.into(),
            namespace: namespace.into(),
            ..Metadata::default()
        }
    }

    /// Whether two metadata blocks agree on everything but the revisions the
    /// store assigns.
    pub fn same_content(&self, other: &Metadata) -> bool {
        self.name == other.name
            && self.namespace == other.namespace
            && self.labels == other.labels
            && self.annotations == other.annotations
    }
}
