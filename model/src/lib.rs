//! Palisade's resource model.
//!
//! Every Palisade resource is a Kubernetes-shaped document: an optional
//! `apiVersion`, a `kind`, `metadata` and a `spec`. This crate reads such
//! documents from YAML or JSON text ([`parse_documents`]), checks each one's
//! fields ([`validate`], or both steps at once with [`parse_and_validate`]),
//! and exposes the typed specs that the control plane and the CLI work with.
//!
//! The crate does no I/O and knows nothing of the store or the wire: checks
//! that span several resources (does the referenced Service exist?) belong to
//! the control plane, which learns what to look for from
//! [`Document::references`].

mod document;
mod identity;
mod key;
mod kind;
mod metadata;
mod parse;
mod spec;
mod validate;

#[cfg(test)]
mod testing;

pub use document::{API_VERSION, Document};
pub use identity::{node_spiffe_id, service_spiffe_id};
pub use key::ResourceKey;
pub use kind::{Kind, UnknownKind};
pub use metadata::Metadata;
pub use parse::{
    DocumentError, DocumentErrors, MAX_DOCUMENTS, MAX_ERRORS, MAX_TEXT_BYTES, ParseError,
    parse_and_validate, parse_documents,
};
pub use spec::{
    ADMIN_VERBS, AdminBindingSpec, AdminRoleSpec, AdminRule, AuthorizationPolicySpec,
    BUILTIN_ROLES, ClaimToHeader, Condition, DEFAULT_ALGORITHMS, IssuerRule, JwtIssuerSpec,
    NodeSpec, Operation, PolicyAction, PolicyMode, Protocol, RequestAuthenticationSpec, Rule,
    Selectors, ServicePort, ServiceSpec, Source, Spec, WorkloadSpec,
};
pub use validate::{
    FieldError, MAX_LIST_ITEMS, is_dns1123_label, is_dns1123_subdomain, validate,
    validate_spiffe_id,
};
