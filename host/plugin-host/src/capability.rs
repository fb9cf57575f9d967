//! What the agent lends the plugin host: the node's name and a way to exec in containers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wasmlet_core::{ContainerId, ContainerRuntime, ExecOutput, ExecTimeout, RuntimeError};

type ExecFuture<'a> = Pin<Box<dyn Future<Output = Result<ExecOutput, RuntimeError>> + Send + 'a>>;

/// Runs a command in a container on a plugin's behalf (the `exec` capability).
/// Every [`ContainerRuntime`] is one.
pub trait ContainerExec: Send + Sync + 'static {
    fn exec<'a>(
        &'a self,
        container: &'a ContainerId,
        command: &'a [String],
        timeout: Duration,
    ) -> ExecFuture<'a>;
}

impl<R: ContainerRuntime + 'static> ContainerExec for R {
    fn exec<'a>(
        &'a self,
        container: &'a ContainerId,
        command: &'a [String],
        timeout: Duration,
    ) -> ExecFuture<'a> {
        Box::pin(self.exec_sync(container, command, ExecTimeout::After(timeout)))
    }
}

/// What a plugin reads of the Kubernetes API (the `kube-api` capability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiQuery {
    pub resource: String,
    pub namespace: Option<String>,
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
}

/// A list: its resourceVersion and one JSON object per item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiList {
    pub resource_version: String,
    pub items: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiEventKind {
    Added,
    Modified,
    Deleted,
    Bookmark,
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// 410 Gone: list again.
    Gone,
    Closed(String),
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An open watch; `next` waits for its next event.
pub trait ApiWatch: Send + 'static {
    fn next(&mut self) -> Boxed<'_, Result<(ApiEventKind, String), WatchEnd>>;
}

/// The Kubernetes API as plugins may read it, with the node's credentials
/// (which stay on the host's side).
pub trait ApiReader: Send + Sync + 'static {
    fn list<'a>(&'a self, query: &'a ApiQuery) -> Boxed<'a, Result<ApiList, String>>;
    fn watch<'a>(
        &'a self,
        query: &'a ApiQuery,
        resource_version: &'a str,
    ) -> Boxed<'a, Result<Box<dyn ApiWatch>, String>>;
}

/// Facts and services of the agent that plugin calls may use.
#[derive(Clone, Default)]
pub struct HostContext {
    pub node_name: String,
    /// `None`: no runtime (e.g. `wasmlet plugin run`); exec calls then fail.
    pub exec: Option<Arc<dyn ContainerExec>>,
    /// `None`: not joined to a cluster; `kube-api` calls are then denied.
    pub kube: Option<Arc<dyn ApiReader>>,
}

impl std::fmt::Debug for HostContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostContext")
            .field("node_name", &self.node_name)
            .field("exec", &self.exec.is_some())
            .field("kube", &self.kube.is_some())
            .finish()
    }
}
