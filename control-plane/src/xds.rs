//! xDS: the configuration every node's agent, every Envoy and every
//! proxyless gRPC client receives, compiled from the store and streamed
//! over Envoy's aggregated discovery service.

pub mod agent;
pub mod compile;
pub mod envoy;
pub mod feed;
pub mod fleet;
pub mod runtime;
pub mod server;
pub mod stream;
pub mod view;
pub mod world;

#[cfg(test)]
mod testing;

use envoy_types::pb::google::protobuf::Any;

/// One resource ready to serve: its name and its encoding. Unless a builder
/// gives a content hash of its own (as the agent's resources do, whose
/// bytes carry a revision), the server derives the resource's version from
/// a hash of `any.value`, so builders must encode deterministically: the
/// same input gives the same bytes, in particular no protobuf map with more
/// than one entry encoded from a HashMap.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    pub name: String,
    pub any: Any,
}
