//! The container-handlers port: how probes and lifecycle hooks are carried
//! out (in the daemon: probe and hook plugins). Next to the admission port;
//! the prober decides *when* to probe, a [`ContainerHandlers`] *how*.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use crate::pod_ext::{PodExt, PodUidExt};
use k8s_openapi::api::core::v1::{Container, ContainerPort, LifecycleHandler, Pod, Probe};
use wasmlet_core::{ContainerId, PodUid};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// The check could not be carried out; the result is thrown away.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub outcome: Outcome,
    pub message: String,
}

/// The container a probe or hook is about.
#[derive(Debug, Clone)]
pub struct HandlerTarget {
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: PodUid,
    pub pod_ip: Option<IpAddr>,
    pub container_name: String,
    pub container_id: ContainerId,
    pub ports: Vec<ContainerPort>,
}

impl HandlerTarget {
    pub fn new(pod: &Pod, container: &Container, id: ContainerId, pod_ip: Option<IpAddr>) -> Self {
        Self {
            pod_name: pod.name_str().to_owned(),
            pod_namespace: pod.namespace_or_default().to_owned(),
            pod_uid: pod.pod_uid(),
            pod_ip,
            container_name: container.name.clone(),
            container_id: id,
            ports: container.ports.clone().unwrap_or_default(),
        }
    }
}

/// Why a lifecycle hook did not succeed; the text is the hook event's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// No handler can run this kind of hook (none configured or loaded).
    #[error("{0}")]
    NoHandler(String),
    /// The hook in the spec cannot be carried out as written.
    #[error("{0}")]
    Invalid(String),
    #[error("the hook did not finish within {0:?}")]
    Deadline(Duration),
    /// It never ran: every slot of its handler stayed taken.
    #[error("the hook could not run: {0}")]
    Busy(String),
    /// It ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// How probes and lifecycle hooks are carried out.
pub trait ContainerHandlers: Send + Sync + 'static {
    /// One check; one still running at `timeout` is a failure.
    fn probe<'a>(
        &'a self,
        target: &'a HandlerTarget,
        probe: &'a Probe,
        timeout: Duration,
    ) -> BoxFuture<'a, Checked>;

    /// A postStart or preStop handler, cut off after `within`.
    fn hook<'a>(
        &'a self,
        target: &'a HandlerTarget,
        handler: &'a LifecycleHandler,
        pre_stop: bool,
        within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>>;
}

/// Answers every probe and hook with "not configured": an agent without
/// handler plugins.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHandlers;

impl ContainerHandlers for NoHandlers {
    fn probe<'a>(
        &'a self,
        _target: &'a HandlerTarget,
        _probe: &'a Probe,
        _timeout: Duration,
    ) -> BoxFuture<'a, Checked> {
        Box::pin(async {
            Checked {
                outcome: Outcome::Unknown,
                message: "no probe handlers are configured".into(),
            }
        })
    }

    fn hook<'a>(
        &'a self,
        _target: &'a HandlerTarget,
        _handler: &'a LifecycleHandler,
        _pre_stop: bool,
        _within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async {
            Err(HookError::NoHandler(
                "no lifecycle hook handlers are configured".into(),
            ))
        })
    }
}
