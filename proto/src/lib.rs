//! Palisade's gRPC API: the admin service that `palisadectl` drives.
//!
//! The Rust code is generated at build time from the files under `proto/`.

/// The admin API, version 1.
pub mod admin {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("palisade.admin.v1");
}

/// The encoded `FileDescriptorSet` of every Palisade proto, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/palisade_descriptor.bin"));
