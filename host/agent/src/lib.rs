//! The node agent's logic, kubelet-shaped: where desired pods come together
//! ([`sources`]), and (in later steps) the pod workers, the PLEG and the status
//! manager. It sees the container runtime only through `wasmlet-core`'s traits.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod sources;
pub mod status;
