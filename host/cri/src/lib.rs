//! The container-runtime port over CRI `runtime.v1` on a unix socket.
//!
//! The only crate in wasmlet that sees gRPC. Every call has a deadline (a short
//! one by default, a long one for image pulls), every failure becomes a typed
//! [`RuntimeError`], and a call that finds the connection dead (containerd was
//! restarted) reconnects; idempotent calls are retried once on a fresh
//! connection, so callers see the restart only if it is still going on.

#![forbid(unsafe_code)]

mod convert;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod status;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};
use wasmlet_core::{
    Container, ContainerConfig, ContainerFilter, ContainerId, ContainerRuntime, ContainerStats,
    ContainerStatsFilter, ContainerStatus, ErrorKind, ExecOutput, ExecTimeout, FilesystemUsage,
    Image, ImageRuntime, LinuxResources, RegistryAuth, Result, RuntimeCondition, RuntimeError,
    RuntimeInfo, RuntimeStatus, RuntimeVersion, Sandbox, SandboxConfig, SandboxFilter, SandboxId,
    SandboxRuntime, SandboxStatus, StreamRequest, StreamingRuntime,
};

/// The CRI wire types, generated from `proto/runtime/v1/api.proto`.
#[allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

use proto::image_service_client::ImageServiceClient;
use proto::runtime_service_client::RuntimeServiceClient;

/// The CRI version this client speaks, sent in `Version`.
const CRI_CLIENT_VERSION: &str = "0.1.0";
/// Same cap as the kubelet: a node with many containers lists more than gRPC's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Where the runtime is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct CriConfig {
    /// The runtime's unix socket; a `unix://` prefix is accepted.
    pub endpoint: PathBuf,
    /// Deadline of every call except image pulls (the kubelet's `--runtime-request-timeout`).
    pub call_timeout: Duration,
    /// Deadline of `PullImage`.
    pub pull_timeout: Duration,
    /// How long to wait for the socket to accept a connection.
    pub connect_timeout: Duration,
}

impl CriConfig {
    pub fn new(endpoint: impl AsRef<Path>) -> Self {
        let endpoint = endpoint.as_ref();
        let endpoint = endpoint
            .to_str()
            .and_then(|s| s.strip_prefix("unix://"))
            .map_or_else(|| endpoint.to_path_buf(), PathBuf::from);
        Self {
            endpoint,
            call_timeout: Duration::from_secs(120),
            pull_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
        }
    }

    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }
}

/// Whether a call may be sent again after the connection was found dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, and writes that are idempotent by the CRI's contract (stop, remove, pull).
    Once,
    /// Creating calls: a second attempt could create twice. The caller's own
    /// back-off decides.
    Never,
}

#[derive(Clone)]
struct Stubs {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

/// A CRI runtime client. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct CriClient {
    stubs: Stubs,
    config: CriConfig,
}

impl std::fmt::Debug for CriClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriClient")
            .field("config", &self.config)
            .finish()
    }
}

impl CriClient {
    /// A client that connects on its first call (and reconnects whenever the
    /// connection is lost). Never fails: an unreachable runtime shows up as
    /// [`ErrorKind::Unavailable`] on the calls.
    pub fn new(config: CriConfig) -> Self {
        let socket = config.endpoint.clone();
        // The URI is a placeholder: the connector below dials the unix socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(config.connect_timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move { UnixStream::connect(socket).await.map(TokioIo::new) }
            }));
        let stubs = Stubs {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            images: ImageServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        };
        Self { stubs, config }
    }

    pub fn config(&self) -> &CriConfig {
        &self.config
    }

    async fn call<T, F, Fut>(
        &self,
        call: &'static str,
        deadline: Duration,
        retry: Retry,
        rpc: F,
    ) -> Result<T>
    where
        F: Fn(Stubs, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match self.attempt(call, deadline, &rpc).await {
            Err(e) if retry == Retry::Once && e.kind == ErrorKind::Unavailable => {
                tracing::debug!(call, error = %e, "runtime connection lost; retrying on a new one");
                self.attempt(call, deadline, &rpc).await
            }
            result => result,
        }
    }

    async fn attempt<T, F, Fut>(&self, call: &'static str, deadline: Duration, rpc: &F) -> Result<T>
    where
        F: Fn(Stubs, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = tokio::time::Instant::now();
        let past_deadline = || {
            RuntimeError::new(
                call,
                ErrorKind::DeadlineExceeded,
                format!("no answer within {deadline:?}"),
            )
        };
        match tokio::time::timeout(deadline, rpc(self.stubs.clone(), deadline)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            // tonic enforces the grpc-timeout we send as well, and may fire first,
            // reporting a cancellation: at the deadline, that is the deadline.
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled && start.elapsed() >= deadline =>
            {
                Err(past_deadline())
            }
            Ok(Err(status)) => Err(status::from_status(call, &status)),
            Err(_) => Err(past_deadline()),
        }
    }

    async fn unary<T, F, Fut>(&self, call: &'static str, retry: Retry, rpc: F) -> Result<T>
    where
        F: Fn(Stubs, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(call, self.config.call_timeout, retry, rpc).await
    }
}

/// A request that also tells the runtime our deadline, so it can give up too.
fn request<M>(message: M, deadline: Duration) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Stop and remove are idempotent by contract: "already gone" is success.
fn gone_is_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

impl RuntimeInfo for CriClient {
    async fn version(&self) -> Result<RuntimeVersion> {
        let v = self
            .unary("Version", Retry::Once, |mut s, d| async move {
                let msg = proto::VersionRequest {
                    version: CRI_CLIENT_VERSION.into(),
                };
                s.runtime.version(request(msg, d)).await
            })
            .await?;
        Ok(RuntimeVersion {
            version: v.version,
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        })
    }

    async fn status(&self) -> Result<RuntimeStatus> {
        let status = self
            .unary("Status", Retry::Once, |mut s, d| async move {
                let msg = proto::StatusRequest { verbose: false };
                s.runtime.status(request(msg, d)).await
            })
            .await?;
        let conditions = status
            .status
            .map(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| RuntimeCondition {
                kind: c.r#type,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect();
        Ok(RuntimeStatus { conditions })
    }
}

impl SandboxRuntime for CriClient {
    async fn run_sandbox(
        &self,
        config: &SandboxConfig,
        runtime_handler: &str,
    ) -> Result<SandboxId> {
        let msg = proto::RunPodSandboxRequest {
            config: Some(convert::sandbox_config(config)),
            runtime_handler: runtime_handler.to_owned(),
        };
        let response = self
            .unary("RunPodSandbox", Retry::Never, |mut s, d| {
                let msg = msg.clone();
                async move { s.runtime.run_pod_sandbox(request(msg, d)).await }
            })
            .await?;
        Ok(response.pod_sandbox_id.into())
    }

    async fn stop_sandbox(&self, id: &SandboxId) -> Result<()> {
        let id = id.to_string();
        gone_is_ok(
            self.unary("StopPodSandbox", Retry::Once, |mut s, d| {
                let msg = proto::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                async move { s.runtime.stop_pod_sandbox(request(msg, d)).await }
            })
            .await
            .map(drop),
        )
    }

    async fn remove_sandbox(&self, id: &SandboxId) -> Result<()> {
        let id = id.to_string();
        gone_is_ok(
            self.unary("RemovePodSandbox", Retry::Once, |mut s, d| {
                let msg = proto::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                async move { s.runtime.remove_pod_sandbox(request(msg, d)).await }
            })
            .await
            .map(drop),
        )
    }

    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus> {
        let id = id.to_string();
        let response = self
            .unary("PodSandboxStatus", Retry::Once, |mut s, d| {
                let msg = proto::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                };
                async move { s.runtime.pod_sandbox_status(request(msg, d)).await }
            })
            .await?;
        let status = response.status.ok_or_else(|| {
            RuntimeError::new(
                "PodSandboxStatus",
                ErrorKind::Internal,
                "answer without a status",
            )
        })?;
        Ok(convert::sandbox_status(status))
    }

    async fn list_sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Sandbox>> {
        let filter = convert::sandbox_filter(filter);
        let response = self
            .unary("ListPodSandbox", Retry::Once, |mut s, d| {
                let msg = proto::ListPodSandboxRequest {
                    filter: Some(filter.clone()),
                };
                async move { s.runtime.list_pod_sandbox(request(msg, d)).await }
            })
            .await?;
        Ok(response.items.into_iter().map(convert::sandbox).collect())
    }
}

impl ContainerRuntime for CriClient {
    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
        sandbox_config: &SandboxConfig,
    ) -> Result<ContainerId> {
        let msg = proto::CreateContainerRequest {
            pod_sandbox_id: sandbox.to_string(),
            config: Some(convert::container_config(config)),
            sandbox_config: Some(convert::sandbox_config(sandbox_config)),
        };
        let response = self
            .unary("CreateContainer", Retry::Never, |mut s, d| {
                let msg = msg.clone();
                async move { s.runtime.create_container(request(msg, d)).await }
            })
            .await?;
        Ok(response.container_id.into())
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let id = id.to_string();
        self.unary("StartContainer", Retry::Never, |mut s, d| {
            let msg = proto::StartContainerRequest {
                container_id: id.clone(),
            };
            async move { s.runtime.start_container(request(msg, d)).await }
        })
        .await
        .map(drop)
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let id = id.to_string();
        let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        // The runtime may take the whole grace before it kills: wait that long too.
        let deadline = self.config.call_timeout.saturating_add(grace);
        gone_is_ok(
            self.call("StopContainer", deadline, Retry::Once, |mut s, d| {
                let msg = proto::StopContainerRequest {
                    container_id: id.clone(),
                    timeout: grace_secs,
                };
                async move { s.runtime.stop_container(request(msg, d)).await }
            })
            .await
            .map(drop),
        )
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        let id = id.to_string();
        gone_is_ok(
            self.unary("RemoveContainer", Retry::Once, |mut s, d| {
                let msg = proto::RemoveContainerRequest {
                    container_id: id.clone(),
                };
                async move { s.runtime.remove_container(request(msg, d)).await }
            })
            .await
            .map(drop),
        )
    }

    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        let filter = convert::container_filter(filter);
        let response = self
            .unary("ListContainers", Retry::Once, |mut s, d| {
                let msg = proto::ListContainersRequest {
                    filter: Some(filter.clone()),
                };
                async move { s.runtime.list_containers(request(msg, d)).await }
            })
            .await?;
        Ok(response
            .containers
            .into_iter()
            .map(convert::container)
            .collect())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let id = id.to_string();
        let response = self
            .unary("ContainerStatus", Retry::Once, |mut s, d| {
                let msg = proto::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                };
                async move { s.runtime.container_status(request(msg, d)).await }
            })
            .await?;
        let status = response.status.ok_or_else(|| {
            RuntimeError::new(
                "ContainerStatus",
                ErrorKind::Internal,
                "answer without a status",
            )
        })?;
        Ok(convert::container_status(status))
    }

    async fn update_container_resources(
        &self,
        id: &ContainerId,
        resources: &LinuxResources,
    ) -> Result<()> {
        let msg = proto::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(convert::resources(resources)),
            annotations: Default::default(),
        };
        self.unary("UpdateContainerResources", Retry::Once, |mut s, d| {
            let msg = msg.clone();
            async move { s.runtime.update_container_resources(request(msg, d)).await }
        })
        .await
        .map(drop)
    }

    async fn reopen_container_log(&self, id: &ContainerId) -> Result<()> {
        let id = id.to_string();
        self.unary("ReopenContainerLog", Retry::Once, |mut s, d| {
            let msg = proto::ReopenContainerLogRequest {
                container_id: id.clone(),
            };
            async move { s.runtime.reopen_container_log(request(msg, d)).await }
        })
        .await
        .map(drop)
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: &[String],
        timeout: ExecTimeout,
    ) -> Result<ExecOutput> {
        let (timeout_secs, deadline) = match timeout {
            ExecTimeout::Unlimited => (0, self.config.call_timeout),
            ExecTimeout::After(t) => {
                // The CRI counts whole seconds; round up so a command is never cut early.
                let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
                let secs = secs.max(1);
                (
                    i64::try_from(secs).unwrap_or(i64::MAX),
                    self.config
                        .call_timeout
                        .saturating_add(Duration::from_secs(secs)),
                )
            }
        };
        let msg = proto::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.to_vec(),
            timeout: timeout_secs,
        };
        let response = self
            .call("ExecSync", deadline, Retry::Never, |mut s, d| {
                let msg = msg.clone();
                async move { s.runtime.exec_sync(request(msg, d)).await }
            })
            .await?;
        Ok(ExecOutput {
            stdout: response.stdout,
            stderr: response.stderr,
            exit_code: response.exit_code,
        })
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let id = id.to_string();
        let response = self
            .unary("ContainerStats", Retry::Once, |mut s, d| {
                let msg = proto::ContainerStatsRequest {
                    container_id: id.clone(),
                };
                async move { s.runtime.container_stats(request(msg, d)).await }
            })
            .await?;
        let stats = response.stats.ok_or_else(|| {
            RuntimeError::new(
                "ContainerStats",
                ErrorKind::Internal,
                "answer without stats",
            )
        })?;
        Ok(convert::container_stats(stats))
    }

    async fn list_container_stats(
        &self,
        filter: &ContainerStatsFilter,
    ) -> Result<Vec<ContainerStats>> {
        let filter = convert::container_stats_filter(filter);
        let response = self
            .unary("ListContainerStats", Retry::Once, |mut s, d| {
                let msg = proto::ListContainerStatsRequest {
                    filter: Some(filter.clone()),
                };
                async move { s.runtime.list_container_stats(request(msg, d)).await }
            })
            .await?;
        Ok(response
            .stats
            .into_iter()
            .map(convert::container_stats)
            .collect())
    }
}

impl StreamingRuntime for CriClient {
    async fn exec_stream(&self, stream: &StreamRequest) -> Result<String> {
        let msg = proto::ExecRequest {
            container_id: stream.container.to_string(),
            cmd: stream.cmd.clone(),
            tty: stream.tty,
            stdin: stream.stdin,
            stdout: stream.stdout,
            stderr: stream.stderr,
        };
        let response = self
            .unary("Exec", Retry::Once, |mut s, d| {
                let msg = msg.clone();
                async move { s.runtime.exec(request(msg, d)).await }
            })
            .await?;
        Ok(response.url)
    }

    async fn attach_stream(&self, stream: &StreamRequest) -> Result<String> {
        let msg = proto::AttachRequest {
            container_id: stream.container.to_string(),
            stdin: stream.stdin,
            tty: stream.tty,
            stdout: stream.stdout,
            stderr: stream.stderr,
        };
        let response = self
            .unary("Attach", Retry::Once, |mut s, d| {
                let msg = msg.clone();
                async move { s.runtime.attach(request(msg, d)).await }
            })
            .await?;
        Ok(response.url)
    }

    async fn port_forward_stream(&self, sandbox: &SandboxId, ports: &[u16]) -> Result<String> {
        let msg = proto::PortForwardRequest {
            pod_sandbox_id: sandbox.to_string(),
            port: ports.iter().map(|p| i32::from(*p)).collect(),
        };
        let response = self
            .unary("PortForward", Retry::Once, |mut s, d| {
                let msg = msg.clone();
                async move { s.runtime.port_forward(request(msg, d)).await }
            })
            .await?;
        Ok(response.url)
    }
}

impl ImageRuntime for CriClient {
    async fn pull_image(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<String> {
        let msg = proto::PullImageRequest {
            image: Some(convert::image_ref(image)),
            auth: auth.map(convert::auth),
            sandbox_config: None,
        };
        let response = self
            .call(
                "PullImage",
                self.config.pull_timeout,
                Retry::Once,
                |mut s, d| {
                    let msg = msg.clone();
                    async move { s.images.pull_image(request(msg, d)).await }
                },
            )
            .await?;
        Ok(response.image_ref)
    }

    async fn image_status(&self, image: &str) -> Result<Option<Image>> {
        let spec = convert::image_ref(image);
        let response = self
            .unary("ImageStatus", Retry::Once, |mut s, d| {
                let msg = proto::ImageStatusRequest {
                    image: Some(spec.clone()),
                    verbose: false,
                };
                async move { s.images.image_status(request(msg, d)).await }
            })
            .await?;
        Ok(response.image.map(convert::image))
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        let response = self
            .unary("ListImages", Retry::Once, |mut s, d| async move {
                let msg = proto::ListImagesRequest { filter: None };
                s.images.list_images(request(msg, d)).await
            })
            .await?;
        Ok(response.images.into_iter().map(convert::image).collect())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let spec = convert::image_ref(image);
        gone_is_ok(
            self.unary("RemoveImage", Retry::Once, |mut s, d| {
                let msg = proto::RemoveImageRequest {
                    image: Some(spec.clone()),
                };
                async move { s.images.remove_image(request(msg, d)).await }
            })
            .await
            .map(drop),
        )
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>> {
        let response = self
            .unary("ImageFsInfo", Retry::Once, |mut s, d| async move {
                s.images
                    .image_fs_info(request(proto::ImageFsInfoRequest {}, d))
                    .await
            })
            .await?;
        Ok(response
            .image_filesystems
            .into_iter()
            .map(convert::filesystem_usage)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_the_kubelet_unix_url_form() {
        let config = CriConfig::new("unix:///run/containerd/containerd.sock");
        assert_eq!(
            config.endpoint,
            PathBuf::from("/run/containerd/containerd.sock")
        );
        let config = CriConfig::new("/tmp/x.sock");
        assert_eq!(config.endpoint, PathBuf::from("/tmp/x.sock"));
    }

    #[tokio::test]
    async fn missing_socket_is_unavailable() {
        let dir = std::env::temp_dir().join(format!("wasmlet-cri-test-{}", std::process::id()));
        let client = CriClient::new(CriConfig::new(dir.join("absent.sock")));
        let err = client.version().await.expect_err("nothing listens there");
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert_eq!(err.call, "Version");
    }

    #[tokio::test]
    async fn a_runtime_that_never_answers_hits_the_deadline() {
        let dir = std::env::temp_dir().join(format!("wasmlet-cri-mute-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("mute.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        // Accept connections and hold them open without ever speaking.
        let mute = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client =
            CriClient::new(CriConfig::new(&socket).with_call_timeout(Duration::from_millis(200)));
        let err = client
            .list_containers(&ContainerFilter::default())
            .await
            .expect_err("the runtime never answers");
        assert_eq!(err.kind, ErrorKind::DeadlineExceeded, "{err}");
        assert_eq!(err.call, "ListContainers");
        mute.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn not_found_on_teardown_is_success() {
        let gone = RuntimeError::new("RemoveContainer", ErrorKind::NotFound, "gone");
        assert_eq!(gone_is_ok(Err(gone)), Ok(()));
        let other = RuntimeError::new("RemoveContainer", ErrorKind::Unavailable, "down");
        assert!(gone_is_ok(Err(other)).is_err());
    }
}
