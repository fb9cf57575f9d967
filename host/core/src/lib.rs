//! The container-runtime port: its identities, calls and errors. Kubernetes'
//! own rules are in `wasmlet-rules`.
//!
//! Everything else in wasmlet depends on this crate and it depends on nothing of
//! theirs: no async runtime, no gRPC, no wasm. The runtime port is split the way
//! the CRI splits it ([`SandboxRuntime`], [`ContainerRuntime`], [`ImageRuntime`],
//! [`RuntimeInfo`]) so that a caller names exactly the part it needs, and so that
//! the CRI client and the in-memory fake are interchangeable.

#![forbid(unsafe_code)]

pub mod container;
pub mod error;
pub mod ids;
pub mod image;
pub mod runtime;
pub mod sandbox;

pub use container::*;
pub use error::{ErrorKind, RuntimeError};
pub use ids::{ContainerId, PodUid, SandboxId};
pub use image::*;
pub use runtime::*;
pub use sandbox::*;

/// Labels and annotations: ordered so that hashing and printing are stable.
pub type Labels = std::collections::BTreeMap<String, String>;
