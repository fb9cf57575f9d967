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

/// Facts and services of the agent that plugin calls may use.
#[derive(Clone, Default)]
pub struct HostContext {
    pub node_name: String,
    /// `None`: no runtime (e.g. `wasmlet plugin run`); exec calls then fail.
    pub exec: Option<Arc<dyn ContainerExec>>,
}

impl std::fmt::Debug for HostContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostContext")
            .field("node_name", &self.node_name)
            .field("exec", &self.exec.is_some())
            .finish()
    }
}
