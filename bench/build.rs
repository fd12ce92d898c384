//! Compiles the slice of etcd's KV API that the benchmark needs, without a
//! system `protoc`.

const PROTOS: &[&str] = &["etcd/kv.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
