//! The node agent's logic, kubelet-shaped: where desired pods come together
//! ([`sources`]), the [`sync_loop`] that dispatches work to the
//! [`pod_workers`], which carry it out ([`actions`], [`pod_sync`]), the
//! [`pleg`] and its [`cache`], the [`prober`], and the pods' [`status`]. It sees the container
//! runtime only through `wasmlet-core`'s traits, and plugins only through its
//! two ports: [`admission`] and [`handlers`].

#![forbid(unsafe_code)]

pub mod actions;
pub mod admission;
pub mod agent;
pub mod backoff;
pub mod cache;
pub mod events;
pub mod handlers;
pub mod health;
pub mod metrics;
pub mod pleg;
pub mod pod_ext;
pub mod pod_sync;
pub mod pod_workers;
pub mod prober;
pub mod runtime_pod;
pub mod sources;
pub mod status;
pub mod statuses;
pub mod sync_loop;

pub use agent::{Agent, AgentConfig, AgentView};
pub use prober::ProbeUpdate;
pub use sync_loop::{SourceMessage, SourceUpdate};
