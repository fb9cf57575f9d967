//! What the real-runtime tests, benchmarks and the smoke pod share: where the node
//! is (as `scripts/node.sh env` describes it) and how to make a throw-away pod.

#![forbid(unsafe_code)]

pub mod apiserver;
pub mod cluster_api;
pub mod daemon;
pub mod grpc_health;
pub mod https;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmlet_core::{
    ContainerConfig, ContainerId, ContainerMetadata, ContainerRuntime, ContainerState,
    ContainerStatus, Labels, SandboxConfig, SandboxId, SandboxMetadata, SandboxRuntime,
};
use wasmlet_cri::{CriClient, CriConfig};

/// The label every object made by these tests carries, so tests can filter their own.
pub const RUN_LABEL: &str = "wasmlet.test/run";

/// The node started by `scripts/node.sh up`.
#[derive(Debug, Clone)]
pub struct Node {
    pub socket: PathBuf,
    /// Preloaded busybox image (sh, httpd, nc, sleep, ...).
    pub test_image: String,
    /// In the local registry only: pulling it is a real pull.
    pub pull_image: String,
    /// Not in the registry.
    pub missing_image: String,
    /// Only in the private registry, which answers only with this login
    /// (`user:password`).
    pub private_image: String,
    pub private_login: String,
    pub node_script: PathBuf,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

impl Node {
    /// The node from the environment, with `scripts/node.sh`'s defaults.
    /// Panics with the fix if the runtime's socket is not there.
    pub fn from_env() -> Self {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let node = Self {
            socket: env_or(
                "WASMLET_RUNTIME_ENDPOINT",
                "/run/wasmlet/containerd/containerd.sock",
            )
            .into(),
            test_image: env_or("WASMLET_TEST_IMAGE", "127.0.0.1:5000/wasmlet/busybox:1.35"),
            pull_image: env_or("WASMLET_PULL_IMAGE", "127.0.0.1:5000/wasmlet/pulltest:1"),
            missing_image: env_or("WASMLET_MISSING_IMAGE", "127.0.0.1:5000/wasmlet/absent:0"),
            private_image: env_or("WASMLET_PRIVATE_IMAGE", "127.0.0.1:5001/wasmlet/private:1"),
            private_login: env_or("WASMLET_PRIVATE_LOGIN", "wasmlet:wasmlet-pull"),
            node_script: std::env::var_os("WASMLET_NODE_SCRIPT")
                .map_or_else(|| repo.join("scripts/node.sh"), PathBuf::from),
        };
        assert!(
            node.socket.exists(),
            "no container runtime at {}: these tests run against a real containerd; \
             start it with `scripts/node.sh up` (or run the README's test command)",
            node.socket.display()
        );
        node
    }

    pub fn client(&self) -> CriClient {
        CriClient::new(CriConfig::new(&self.socket).with_call_timeout(Duration::from_secs(30)))
    }
}

/// A name no other test (or earlier run) has used.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pod sandbox on the pod network, labelled with [`RUN_LABEL`] = its own name.
pub fn sandbox_config(name: &str) -> SandboxConfig {
    let log_directory = std::env::temp_dir().join("wasmlet-test-logs").join(name);
    SandboxConfig {
        metadata: SandboxMetadata {
            name: name.to_owned(),
            namespace: "wasmlet-test".to_owned(),
            uid: format!("uid-{name}").into(),
            attempt: 0,
        },
        hostname: name.chars().take(63).collect(),
        log_directory,
        labels: Labels::from([(RUN_LABEL.to_owned(), name.to_owned())]),
        ..Default::default()
    }
}

/// A container of `image` running `command`, logging to `<name>/0.log`.
pub fn container_config(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        },
        image: image.to_owned(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        log_path: format!("{name}/0.log").into(),
        ..Default::default()
    }
}

/// Polls the container's status until `done` holds (or panics after `within`).
pub async fn wait_for_container(
    runtime: &CriClient,
    id: &ContainerId,
    within: Duration,
    done: impl Fn(&ContainerStatus) -> bool,
) -> ContainerStatus {
    let give_up = tokio::time::Instant::now() + within;
    loop {
        let status = runtime
            .container_status(id)
            .await
            .expect("container status");
        if done(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "container {id} still {:?} after {within:?}",
            status.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_running(status: &ContainerStatus) -> bool {
    status.state == ContainerState::Running
}

/// `GET /` over plain HTTP/1.0 from the host, retried while the server is still
/// binding. Returns the whole response (status line, headers, body).
pub async fn http_get(
    ip: std::net::IpAddr,
    port: u16,
    within: Duration,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let give_up = tokio::time::Instant::now() + within;
    loop {
        match tokio::net::TcpStream::connect((ip, port)).await {
            Ok(mut conn) => {
                conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
                let mut response = String::new();
                conn.read_to_string(&mut response).await?;
                return Ok(response);
            }
            Err(e) if tokio::time::Instant::now() >= give_up => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A sandbox with one running container, for a test to work with.
#[derive(Debug)]
pub struct TestPod {
    pub config: SandboxConfig,
    pub sandbox: SandboxId,
    pub container: ContainerId,
}

impl TestPod {
    /// Runs a sandbox named after `prefix` with a container "app" running `command`
    /// in the test image, and waits until it runs.
    pub async fn start(runtime: &CriClient, node: &Node, prefix: &str, command: &[&str]) -> Self {
        let config = sandbox_config(&unique(prefix));
        let sandbox = runtime.run_sandbox(&config, "").await.expect("run sandbox");
        let app = container_config("app", &node.test_image, command);
        let container = runtime
            .create_container(&sandbox, &app, &config)
            .await
            .expect("create container");
        runtime
            .start_container(&container)
            .await
            .expect("start container");
        wait_for_container(runtime, &container, Duration::from_secs(30), is_running).await;
        Self {
            config,
            sandbox,
            container,
        }
    }

    /// Stops and removes the sandbox and with it the container.
    pub async fn remove(self, runtime: &CriClient) {
        runtime
            .stop_sandbox(&self.sandbox)
            .await
            .expect("stop sandbox");
        runtime
            .remove_sandbox(&self.sandbox)
            .await
            .expect("remove sandbox");
    }
}

/// `promtool check metrics` on `metrics`: whether it found nothing, and
/// what it said. scripts/test.sh unpacks promtool from Debian's prometheus
/// package and names it in WASMLET_PROMTOOL.
pub fn promtool_check_metrics(metrics: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let promtool = std::env::var("WASMLET_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool}: {e} (run the tests through scripts/test.sh)"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(metrics.as_bytes())
            .expect("metrics to promtool");
    }
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}
