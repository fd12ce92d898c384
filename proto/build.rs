//! Compiles Palisade's .proto files with a pure-Rust compiler, so that no
//! system `protoc` is needed, and saves the descriptor set for gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "palisade/admin/v1/admin.proto",
    "palisade/identity/v1/identity.proto",
    "palisade/xds/v1/agent.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(PROTOS, ["proto"])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out_dir.join("palisade_descriptor.bin"), encoded)?;

    // Messages implement `prost::Name`, with the type URLs that xDS and
    // `google.protobuf.Any` expect: `type.googleapis.com/<package>.<Message>`.
    let mut config = tonic_prost_build::Config::new();
    config
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}
