//! Palisade's gRPC APIs: the admin service that `palisadectl` drives, and the
//! identity service that agents use.
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

/// The encoded `FileDescriptorSet` of every Palisade proto, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/palisade_descriptor.bin"));
