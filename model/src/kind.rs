//! The kinds of Palisade resources.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a document describes. Serialized as its exact name, e.g. `"JwtIssuer"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// A host running a Palisade agent (cluster-scoped).
    Node,
    /// A named destination with ports and protocols.
    Service,
    /// One instance of a Service on a Node.
    Workload,
    /// Who may call a service, and how.
    AuthorizationPolicy,
    /// A JWT issuer and the keys that verify its tokens.
    JwtIssuer,
    /// Which issuers a service accepts tokens from.
    RequestAuthentication,
    /// What an administrator may do through the admin API (cluster-scoped).
    AdminRole,
    /// Grants a role to administrators (cluster-scoped).
    AdminBinding,
}

/// A kind name that names no Palisade kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a known kind (expected one of {names})", names = Kind::names())]
pub struct UnknownKind(pub String);

impl Kind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Kind; 8] = [
        Kind::Node,
        Kind::Service,
        Kind::Workload,
        Kind::AuthorizationPolicy,
        Kind::JwtIssuer,
        Kind::RequestAuthentication,
        Kind::AdminRole,
        Kind::AdminBinding,
    ];

    /// The exact name used in documents, e.g. `"AuthorizationPolicy"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Service => "Service",
            Kind::Workload => "Workload",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::JwtIssuer => "JwtIssuer",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::AdminRole => "AdminRole",
            Kind::AdminBinding => "AdminBinding",
        }
    }

    /// Whether resources of this kind live in a namespace.
    pub fn is_namespaced(&self) -> bool {
        !matches!(self, Kind::Node | Kind::AdminRole | Kind::AdminBinding)
    }

    /// Reads a kind as a user types it: the exact name in any case, or a
    /// lowercase plural or short alias such as `"svc"` or `"authz"`.
    pub fn parse(s: &str) -> Option<Kind> {
        let lower = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|kind| kind.aliases().contains(&lower.as_str()))
    }

    /// Reads a kind as documents spell it: the exact name only.
    pub fn from_exact(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    fn aliases(&self) -> &'static [&'static str] {
        match self {
            Kind::Node => &["node", "nodes"],
            Kind::Service => &["service", "services", "svc"],
            Kind::Workload => &["workload", "workloads"],
            Kind::AuthorizationPolicy => &["authorizationpolicy", "authorizationpolicies", "authz"],
            Kind::JwtIssuer => &["jwtissuer", "jwtissuers"],
            Kind::RequestAuthentication => &["requestauthentication", "requestauthentications"],
            Kind::AdminRole => &["adminrole", "adminroles"],
            Kind::AdminBinding => &["adminbinding", "adminbindings"],
        }
    }

    fn names() -> String {
        let names: Vec<&str> = Kind::ALL.iter().map(Kind::as_str).collect();
        names.join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts everything [`Kind::parse`] accepts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::parse(s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_round_trip_through_parse() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(Kind::from_exact(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }

    #[test]
    fn parse_accepts_aliases_in_any_case() {
        assert_eq!(Kind::parse("svc"), Some(Kind::Service));
        assert_eq!(Kind::parse("SERVICES"), Some(Kind::Service));
        assert_eq!(Kind::parse("authz"), Some(Kind::AuthorizationPolicy));
        assert_eq!(
            Kind::parse("authorizationpolicies"),
            Some(Kind::AuthorizationPolicy)
        );
        assert_eq!(Kind::parse("jwtIssuer"), Some(Kind::JwtIssuer));
        assert_eq!(Kind::parse("adminbindings"), Some(Kind::AdminBinding));
        assert_eq!(Kind::parse("Servce"), None);
        assert_eq!(Kind::parse(""), None);
    }

    #[test]
    fn from_exact_refuses_aliases() {
        assert_eq!(Kind::from_exact("svc"), None);
        assert_eq!(Kind::from_exact("service"), None);
    }

    #[test]
    fn only_node_and_admin_kinds_are_cluster_scoped() {
        let cluster: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| !k.is_namespaced())
            .collect();
        assert_eq!(cluster, [Kind::Node, Kind::AdminRole, Kind::AdminBinding]);
    }

    #[test]
    fn unknown_kind_lists_the_known_ones() {
        let err = "Servce".parse::<Kind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"Servce\" is not a known kind (expected one of Node, Service, Workload, \
             AuthorizationPolicy, JwtIssuer, RequestAuthentication, AdminRole, AdminBinding)"
        );
    }

    #[test]
    fn serde_uses_the_exact_name() {
        let json = serde_json::to_string(&Kind::RequestAuthentication).unwrap();
        assert_eq!(json, "\"RequestAuthentication\"");
        let kind: Kind = serde_json::from_str("\"AdminRole\"").unwrap();
        assert_eq!(kind, Kind::AdminRole);
        assert!(serde_json::from_str::<Kind>("\"adminrole\"").is_err());
    }
}
