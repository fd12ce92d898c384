//! The typed `spec` of each kind.

mod admin;
mod jwt;
mod node;
mod policy;
mod service;
mod text;
mod workload;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

pub use admin::{ADMIN_VERBS, AdminBindingSpec, AdminRoleSpec, AdminRule, BUILTIN_ROLES};
pub use jwt::{
    ClaimToHeader, DEFAULT_ALGORITHMS, IssuerRule, JwtIssuerSpec, RequestAuthenticationSpec,
};
pub use node::NodeSpec;
pub use policy::{
    AuthorizationPolicySpec, Condition, Operation, PolicyAction, PolicyMode, Rule, Source,
};
pub use service::{Protocol, ServicePort, ServiceSpec};
pub use workload::{Selectors, WorkloadSpec};

use crate::kind::Kind;

/// A document's spec; the variant always matches the document's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// The spec of a Node.
    Node(NodeSpec),
    /// The spec of a Service.
    Service(ServiceSpec),
    /// The spec of a Workload.
    Workload(WorkloadSpec),
    /// The spec of an AuthorizationPolicy.
    AuthorizationPolicy(AuthorizationPolicySpec),
    /// The spec of a JwtIssuer.
    JwtIssuer(JwtIssuerSpec),
    /// The spec of a RequestAuthentication.
    RequestAuthentication(RequestAuthenticationSpec),
    /// The spec of an AdminRole.
    AdminRole(AdminRoleSpec),
    /// The spec of an AdminBinding.
    AdminBinding(AdminBindingSpec),
}

/// A spec that could not be read, with the path inside the spec at fault.
pub(crate) type SpecError = serde_path_to_error::Error<serde_json::Error>;

impl Spec {
    /// The kind this spec belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Node(_) => Kind::Node,
            Spec::Service(_) => Kind::Service,
            Spec::Workload(_) => Kind::Workload,
            Spec::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Spec::JwtIssuer(_) => Kind::JwtIssuer,
            Spec::RequestAuthentication(_) => Kind::RequestAuthentication,
            Spec::AdminRole(_) => Kind::AdminRole,
            Spec::AdminBinding(_) => Kind::AdminBinding,
        }
    }

    /// Reads the spec of a `kind` document, tracking the path of any error.
    pub(crate) fn from_value(kind: Kind, value: &Value) -> Result<Spec, SpecError> {
        match kind {
            Kind::Node => typed(value).map(Spec::Node),
            Kind::Service => typed(value).map(Spec::Service),
            Kind::Workload => typed(value).map(Spec::Workload),
            Kind::AuthorizationPolicy => typed(value).map(Spec::AuthorizationPolicy),
            Kind::JwtIssuer => typed(value).map(Spec::JwtIssuer),
            Kind::RequestAuthentication => typed(value).map(Spec::RequestAuthentication),
            Kind::AdminRole => typed(value).map(Spec::AdminRole),
            Kind::AdminBinding => typed(value).map(Spec::AdminBinding),
        }
    }
}

fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(value)
}

/// A spec serializes as its inner struct; the kind travels beside it.
impl Serialize for Spec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Spec::Node(spec) => spec.serialize(serializer),
            Spec::Service(spec) => spec.serialize(serializer),
            Spec::Workload(spec) => spec.serialize(serializer),
            Spec::AuthorizationPolicy(spec) => spec.serialize(serializer),
            Spec::JwtIssuer(spec) => spec.serialize(serializer),
            Spec::RequestAuthentication(spec) => spec.serialize(serializer),
            Spec::AdminRole(spec) => spec.serialize(serializer),
            Spec::AdminBinding(spec) => spec.serialize(serializer),
        }
    }
}
