//! Generates the grpc.health.v1 messages from proto/grpc/health/v1/health.proto
//! with protox (pure Rust, no system protoc).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../proto");
    let health = root.join("grpc/health/v1/health.proto");
    println!("cargo:rerun-if-changed={}", health.display());
    let descriptors = protox::compile([&health], [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
