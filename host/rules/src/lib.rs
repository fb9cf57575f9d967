//! Kubernetes' rules, one definition each, for the host and the plugins
//! alike (it builds for `wasm32-wasip2`), so the two cannot disagree:
//! errors that name the [`field`], resource [`quantity`], the names that identify a pod ([`identity`]), the
//! default pull policy ([`image`]), the pod and container accessors with
//! their defaults ([`pod`]: `PodExt`, `ContainerExt`, in the manner of
//! kube-core's `ResourceExt`), and toleration and node-selector matching
//! ([`scheduling`]), a container's effective security ([`security`]) and what
//! the downward API reads of a pod ([`downward`]), and the API's checks of a
//! pod's hostname, host aliases and DNS settings ([`network`]), and which of a
//! pod's pull secrets' logins go with an image ([`keyring`]). It depends on
//! k8s-openapi only.

#![forbid(unsafe_code)]

pub mod downward;
pub mod expansion;
pub mod field;
pub mod identity;
pub mod image;
pub mod keyring;
pub mod network;
pub mod pod;
pub mod quantity;
pub mod scheduling;
pub mod security;
pub mod service_env;

pub use field::FieldError;
pub use image::default_pull_policy;
pub use pod::{ContainerExt, PodExt};
