//! Compiles proto/runtime/v1/api.proto with protox (pure Rust, no system protoc).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let api = proto_root.join("runtime/v1/api.proto");
    println!("cargo:rerun-if-changed={}", api.display());

    let descriptors = protox::compile([&api], [&proto_root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
