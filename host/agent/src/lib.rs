//! The node agent's logic, kubelet-shaped: where desired pods come together
//! ([`config_mux`]), the [`sync_loop`] that dispatches work to the
//! [`pod_workers`], which carry it out through [`kuberuntime`], the [`pleg`]
//! and its [`cache`], the [`prober`] with its [`prober::results`], the
//! [`api_status`] generator and the [`status_manager`]. It sees the container
//! runtime only through `wasmlet-core`'s traits, and plugins only through its
//! two ports: [`admission`] and [`handlers`].

#![forbid(unsafe_code)]

pub mod active_deadline;
pub mod admission;
pub mod agent;
pub mod api_objects;
pub mod api_status;
pub mod cache;
pub mod config_mux;
pub mod events;
pub mod handlers;
pub mod health;
pub mod image_gc;
pub mod kuberuntime;
pub mod logs;
pub mod metrics;
pub mod mirror_pods;
pub mod network;
pub mod node_status;
pub mod pleg;
pub mod pod_ext;
pub mod pod_workers;
pub mod prober;
pub mod spec_support;
pub mod stats;
pub mod status_manager;
pub mod sync_loop;
pub mod sysctl;
pub mod volumes;

pub use agent::{Agent, AgentConfig, AgentView};
pub use prober::ProbeUpdate;
pub use sync_loop::{SourceMessage, SourceUpdate};
