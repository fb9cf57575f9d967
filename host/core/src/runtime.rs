//! The container-runtime port, split as the CRI splits it.
//!
//! Contract shared by every implementation:
//! - stopping or removing something that is already stopped or gone succeeds, so
//!   that teardown can always be retried;
//! - "does not exist" is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), never a
//!   string to parse; an absent image in [`ImageRuntime::image_status`] is `Ok(None)`.
//!
//! Methods return `impl Future + Send` so that callers can drive them from any
//! executor's spawned tasks while this crate stays executor-free.

use std::future::Future;
use std::time::Duration;

use crate::{
    Container, ContainerConfig, ContainerFilter, ContainerId, ContainerStats, ContainerStatsFilter,
    ContainerStatus, ExecOutput, ExecTimeout, FilesystemUsage, Image, LinuxResources, RegistryAuth,
    RuntimeError, Sandbox, SandboxConfig, SandboxFilter, SandboxId, SandboxStatus,
};

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Name and version of the runtime and of the CRI it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// The CRI version the runtime answered with (e.g. `0.1.0`).
    pub version: String,
    pub runtime_name: String,
    pub runtime_version: String,
    /// The CRI API the runtime serves (e.g. `v1`).
    pub runtime_api_version: String,
}

/// One readiness fact of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCondition {
    /// `RuntimeReady`, `NetworkReady`, or something runtime-specific.
    pub kind: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeStatus {
    pub conditions: Vec<RuntimeCondition>,
}

impl RuntimeStatus {
    /// The conditions a node cannot run pods without.
    pub const REQUIRED: [&'static str; 2] = ["RuntimeReady", "NetworkReady"];

    pub fn condition(&self, kind: &str) -> Option<&RuntimeCondition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Required conditions that are false or missing.
    pub fn unmet(&self) -> Vec<&'static str> {
        Self::REQUIRED
            .into_iter()
            .filter(|kind| !self.condition(kind).is_some_and(|c| c.status))
            .collect()
    }
}

/// Who the runtime is and whether it is ready.
pub trait RuntimeInfo: Send + Sync {
    fn version(&self) -> impl Future<Output = Result<RuntimeVersion>> + Send;
    fn status(&self) -> impl Future<Output = Result<RuntimeStatus>> + Send;
}

/// Pod sandboxes.
pub trait SandboxRuntime: Send + Sync {
    /// Creates and starts a sandbox; on success it is ready, with its network set up.
    /// `runtime_handler` selects a runtime class; empty is the runtime's default.
    fn run_sandbox(
        &self,
        config: &SandboxConfig,
        runtime_handler: &str,
    ) -> impl Future<Output = Result<SandboxId>> + Send;

    /// Kills every container in the sandbox and releases its network.
    fn stop_sandbox(&self, id: &SandboxId) -> impl Future<Output = Result<()>> + Send;

    /// Removes the sandbox and all of its containers.
    fn remove_sandbox(&self, id: &SandboxId) -> impl Future<Output = Result<()>> + Send;

    fn sandbox_status(&self, id: &SandboxId) -> impl Future<Output = Result<SandboxStatus>> + Send;

    fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
    ) -> impl Future<Output = Result<Vec<Sandbox>>> + Send;
}

/// Containers.
pub trait ContainerRuntime: Send + Sync {
    fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
        sandbox_config: &SandboxConfig,
    ) -> impl Future<Output = Result<ContainerId>> + Send;

    fn start_container(&self, id: &ContainerId) -> impl Future<Output = Result<()>> + Send;

    /// Sends SIGTERM (or the image's stop signal), then SIGKILL after `grace`.
    fn stop_container(
        &self,
        id: &ContainerId,
        grace: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    fn remove_container(&self, id: &ContainerId) -> impl Future<Output = Result<()>> + Send;

    fn list_containers(
        &self,
        filter: &ContainerFilter,
    ) -> impl Future<Output = Result<Vec<Container>>> + Send;

    fn container_status(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerStatus>> + Send;

    fn update_container_resources(
        &self,
        id: &ContainerId,
        resources: &LinuxResources,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Asks the runtime to reopen the container's log file (after rotation).
    fn reopen_container_log(&self, id: &ContainerId) -> impl Future<Output = Result<()>> + Send;

    /// Runs `cmd` in the container and waits for it. A command that outlives
    /// `timeout` is [`ErrorKind::DeadlineExceeded`](crate::ErrorKind::DeadlineExceeded).
    fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: &[String],
        timeout: ExecTimeout,
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    fn container_stats(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerStats>> + Send;

    fn list_container_stats(
        &self,
        filter: &ContainerStatsFilter,
    ) -> impl Future<Output = Result<Vec<ContainerStats>>> + Send;
}

/// Images.
pub trait ImageRuntime: Send + Sync {
    /// Pulls `image` and returns the reference the runtime resolved it to.
    fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> impl Future<Output = Result<String>> + Send;

    /// `Ok(None)` when the runtime does not have the image.
    fn image_status(&self, image: &str) -> impl Future<Output = Result<Option<Image>>> + Send;

    fn list_images(&self) -> impl Future<Output = Result<Vec<Image>>> + Send;

    fn remove_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send;

    fn image_fs_info(&self) -> impl Future<Output = Result<Vec<FilesystemUsage>>> + Send;
}

/// What an interactive stream asks of a container (the CRI's Exec and
/// Attach; Attach has no command).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamRequest {
    pub container: ContainerId,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Interactive streams: each call answers with the URL of the runtime's
/// streaming server, where the client's upgraded connection is proxied.
pub trait StreamingRuntime: Send + Sync {
    fn exec_stream(&self, request: &StreamRequest) -> impl Future<Output = Result<String>> + Send;

    fn attach_stream(&self, request: &StreamRequest)
    -> impl Future<Output = Result<String>> + Send;

    /// `ports`: those the client named up front (may be empty).
    fn port_forward_stream(
        &self,
        sandbox: &SandboxId,
        ports: &[u16],
    ) -> impl Future<Output = Result<String>> + Send;
}

/// The whole port: what a node agent needs from its container runtime.
pub trait Runtime: RuntimeInfo + SandboxRuntime + ContainerRuntime + ImageRuntime {}

impl<T: RuntimeInfo + SandboxRuntime + ContainerRuntime + ImageRuntime> Runtime for T {}
