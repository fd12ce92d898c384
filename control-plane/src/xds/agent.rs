//! The resources `palisade-agent` receives over ADS, built from the
//! [`World`](super::world::World): its node's workloads, the authorization,
//! endpoints and JWT rules of the services it deals with, the trust bundle
//! and the deny list. The message types are `palisade.xds.v1` in
//! palisade-proto.
//!
//! Builders are pure: they read the world, never the store or the clock, and
//! the same world gives the same bytes. Every resource carries
//! `world.revision`; because that changes with every store write, each
//! builder also returns a hash of the resource without it (see
//! [`AgentResource`]), which is what the server should use as the version.
//!
//! The world was validated when it was applied, but builders never panic on
//! what validation would have refused: such parts fail closed (see
//! [`authorization`]).

mod authorization;
mod endpoints;
mod jwt;
mod patterns;
mod trust;
mod workload;

use aws_lc_rs::digest;
use envoy_types::pb::google::protobuf::Any;
use palisade_proto::prost::{Message, Name};
use palisade_proto::xds as pb;

use super::Built;
pub use authorization::authorization;
pub use endpoints::endpoints;
pub use jwt::jwt_rules;
pub use trust::{deny_list, trust_bundle};
pub use workload::workload;

/// The type URL of [`pb::Workload`].
pub const WORKLOAD_TYPE_URL: &str = "type.googleapis.com/palisade.xds.v1.Workload";
/// The type URL of [`pb::Authorization`].
pub const AUTHORIZATION_TYPE_URL: &str = "type.googleapis.com/palisade.xds.v1.Authorization";
/// The type URL of [`pb::Endpoints`].
pub const ENDPOINTS_TYPE_URL: &str = "type.googleapis.com/palisade.xds.v1.Endpoints";
/// The type URL of [`pb::JwtRules`].
pub const JWT_RULES_TYPE_URL: &str = "type.googleapis.com/palisade.xds.v1.JwtRules";
/// The type URL of [`pb::TrustBundle`].
pub const TRUST_BUNDLE_TYPE_URL: &str = "type.googleapis.com/palisade.xds.v1.TrustBundle";
/// The type URL of [`pb::DenyList`].
pub const DENY_LIST_TYPE_URL: &str = "type.googleapis.com/palisade.xds.v1.DenyList";

/// The name of the one trust bundle resource.
pub const TRUST_BUNDLE_NAME: &str = "bundle";
/// Every agent type, in the order agents are expected to subscribe.
pub const TYPES: [&str; 6] = [
    WORKLOAD_TYPE_URL,
    AUTHORIZATION_TYPE_URL,
    ENDPOINTS_TYPE_URL,
    JWT_RULES_TYPE_URL,
    TRUST_BUNDLE_TYPE_URL,
    DENY_LIST_TYPE_URL,
];
/// The name of the one deny list resource.
pub const DENY_LIST_NAME: &str = "revoked";

/// One built agent resource.
///
/// `built.any.value` is the encoding agents receive, with `revision` set to
/// the world's revision. `content_hash` is the SHA-256 of the same message
/// encoded with `revision` set to 0: it changes when, and only when, the
/// resource's content does, so a store write that leaves a resource alone
/// leaves its hash alone. Use it as the xDS version, not a hash of
/// `built.any.value`.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentResource {
    /// The resource as served.
    pub built: Built,
    /// SHA-256 of the encoding without the revision.
    pub content_hash: [u8; 32],
}

/// A message with the `revision` field that every agent resource has.
trait Revisioned: Message + Name + Sized {
    fn set_revision(&mut self, revision: u64);
}

macro_rules! revisioned {
    ($($message:ty),*) => {
        $(impl Revisioned for $message {
            fn set_revision(&mut self, revision: u64) {
                self.revision = revision;
            }
        })*
    };
}

revisioned!(
    pb::Workload,
    pb::Authorization,
    pb::Endpoints,
    pb::JwtRules,
    pb::TrustBundle,
    pb::DenyList
);

/// Encodes `message` as the resource `name` at `revision`, with its content
/// hash.
fn package<M: Revisioned>(name: String, mut message: M, revision: u64) -> AgentResource {
    message.set_revision(0);
    let content_hash = sha256(&message.encode_to_vec());

    message.set_revision(revision);
    let any = Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    };
    AgentResource {
        built: Built { name, any },
        content_hash,
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut hash = [0; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    hash
}

/// The resource name of a namespaced object: `<namespace>/<name>`.
fn resource_name((namespace, name): &super::world::Named) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
mod tests;
