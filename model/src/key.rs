//! Resource keys: how a resource is named in the store and in messages.

use std::fmt;

use crate::kind::Kind;

/// Names one resource: its kind, namespace (empty for cluster-scoped kinds)
/// and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// The resource's kind.
    pub kind: Kind,
    /// The namespace, or `""` for a cluster-scoped kind.
    pub namespace: String,
    /// The resource's name.
    pub name: String,
}

impl ResourceKey {
    /// Builds a key from its parts.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ResourceKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The store's key: `<Kind>/<namespace>/<name>`, e.g. `Node//web-1` or
    /// `Service/shop/orders`.
    pub fn store_key(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }

    /// Reads back a key written by [`ResourceKey::store_key`]. Refuses a
    /// namespace on a cluster-scoped kind and a missing one on a namespaced kind.
    pub fn parse_store_key(s: &str) -> Option<ResourceKey> {
        let mut parts = s.splitn(3, '/');
        let kind = Kind::from_exact(parts.next()?)?;
        let namespace = parts.next()?;
        let name = parts.next()?;

        let scope_fits = kind.is_namespaced() != namespace.is_empty();
        let name_fits = !name.is_empty() && !name.contains('/');
        (scope_fits && name_fits).then(|| ResourceKey::new(kind, namespace, name))
    }
}

/// `Service shop/orders` for a namespaced resource, `Node web-1` otherwise.
impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_key_leaves_cluster_scoped_namespace_empty() {
        assert_eq!(
            ResourceKey::new(Kind::Node, "", "web-1").store_key(),
            "Node//web-1"
        );
        let service = ResourceKey::new(Kind::Service, "shop", "orders");
        assert_eq!(service.store_key(), "Service/shop/orders");
    }

    #[test]
    fn store_keys_parse_back() {
        for key in [
            ResourceKey::new(Kind::Node, "", "web-1.example"),
            ResourceKey::new(Kind::AuthorizationPolicy, "shop", "orders"),
        ] {
            assert_eq!(ResourceKey::parse_store_key(&key.store_key()), Some(key));
        }
    }

    #[test]
    fn malformed_store_keys_are_refused() {
        for bad in [
            "",
            "Node",
            "Node/web-1",
            "Node/ns/web-1",
            "Service//orders",
            "Service/shop/",
            "Service/shop/a/b",
            "service/shop/orders",
            "Servce/shop/orders",
        ] {
            assert_eq!(ResourceKey::parse_store_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn display_names_namespace_only_when_present() {
        assert_eq!(
            ResourceKey::new(Kind::Service, "shop", "orders").to_string(),
            "Service shop/orders"
        );
        assert_eq!(
            ResourceKey::new(Kind::AdminRole, "", "ops").to_string(),
            "AdminRole ops"
        );
    }

    #[test]
    fn keys_order_by_kind_then_namespace_then_name() {
        let mut keys = [
            ResourceKey::new(Kind::Service, "b", "a"),
            ResourceKey::new(Kind::Service, "a", "z"),
            ResourceKey::new(Kind::Node, "", "n"),
        ];
        keys.sort();
        let names: Vec<String> = keys.iter().map(ResourceKey::store_key).collect();
        assert_eq!(names, ["Node//n", "Service/a/z", "Service/b/a"]);
    }
}
