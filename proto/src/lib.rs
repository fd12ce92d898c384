//! Palisade's gRPC APIs: the admin service that `palisadectl` drives, the
//! identity service that agents use, and the resource types the control plane
//! streams to agents over xDS.
//!
//! The Rust code is generated at build time from the files under `proto/`.

/// The admin API, version 1.
pub mod admin {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("palisade.admin.v1");
}

/// The identity API, version 1: attestation, node and workload certificates,
/// JWT-SVIDs and the trust bundle.
pub mod identity {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("palisade.identity.v1");
}

/// The agent's xDS resource types, version 1: workloads, authorization,
/// endpoints, JWT rules, the trust bundle and the deny list. Each message
/// implements [`prost::Name`], so its type URL is
/// `type.googleapis.com/palisade.xds.v1.<Message>`.
pub mod xds {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("palisade.xds.v1");
}

/// The protobuf runtime the generated code is built on, for crates that
/// encode these messages without depending on it themselves.
pub use prost;

/// The encoded `FileDescriptorSet` of every Palisade proto, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/palisade_descriptor.bin"));
