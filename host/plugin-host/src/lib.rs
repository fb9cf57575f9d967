//! wasmlet's plugin host: loads WebAssembly components from the plugin directory
//! and runs them sandboxed. The only crate in wasmlet that sees wasmtime.
//!
//! Every call has a deadline (epochs, plus a timeout for time spent in host
//! calls) and a memory cap; a plugin sees only what its manifest asks for and
//! the operator grants (read-only directories, allowed hosts, exec in the
//! container a call is about). A failure is a [`CallError`] naming the plugin,
//! the call and the reason, and never takes the agent down.

#![deny(unsafe_code)]

mod admission;
pub use admission::{AdmissionInstance, Verdict, admit_all};
mod bindings;
mod bounds;
mod call;
mod capability;
mod connection;
mod contract;
mod directory;
mod engine;
mod epochs;
mod error;
mod fd_budget;
mod grants;
mod imports;
mod last_words;
mod load;
mod manifest;
mod metrics;
mod outgoing_http;
mod plugin;
mod pod_view;
mod probe;
pub use probe::ContainerCall;
mod slots;
mod source;
mod state;
mod tls;
mod watch_stream;

pub use bindings::admission_handler::Decision;
pub use bindings::pod_source_handler::{Problem, Snapshot, SourcePod};
pub use bindings::probe_handler::{Outcome, ProbeResult};
pub use bindings::types;
pub use capability::{
    ApiEventKind, ApiList, ApiQuery, ApiReader, ApiWatch, ContainerExec, HostContext, WatchEnd,
};
pub use contract::{ComponentFacts, Kind, WIT_VERSION, wit_compatible};
pub use directory::{PluginSet, Skipped};
pub use engine::{EngineError, PluginEngine};
pub use error::{CallError, Failure, FieldError, LoadError, ManifestError};
pub use grants::CallTarget;
pub use manifest::{
    ApiAccess, Capabilities, Destination, FailurePolicy, Grant, LimitCaps, Limits, Manifest, Mode,
};
pub use metrics::PluginMetrics;
pub use plugin::Plugin;
pub use pod_view::{
    config_source, container_ports, default_pull_policy, lifecycle_handler, node_view, pod_view,
    probe_handler,
};
pub use source::SourceEvent;
pub use wasmlet_rules::quantity::milli as quantity_milli;
