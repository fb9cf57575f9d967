//! The `wasmlet run` daemon as a test drives it: its own node name (so agents
//! sharing the containerd never touch each other's pods), manifest directory,
//! log directory and port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wasmlet_core::{
    ContainerFilter, ContainerRuntime, ExecTimeout, Labels, SandboxFilter, SandboxRuntime,
};

use crate::{Node, unique};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The agent binary: `WASMLET_BIN`, else the workspace's debug build (the
/// test command builds the workspace before it tests).
pub fn wasmlet_bin() -> PathBuf {
    std::env::var_os("WASMLET_BIN")
        .map_or_else(|| repo().join("target/debug/wasmlet"), PathBuf::from)
}

#[derive(Debug)]
pub struct Daemon {
    pub node_name: String,
    pub dir: PathBuf,
    pub manifests: PathBuf,
    /// The read-only port's address.
    pub address: SocketAddr,
    /// The kubelet port (HTTPS) and the healthz port, on 127.0.0.1.
    pub kubelet_port: u16,
    pub healthz_port: u16,
    node: Node,
    child: Option<Child>,
    /// Extra YAML for the config file.
    config: String,
    plugin_dir: PathBuf,
    /// Extra environment of the agent process.
    pub env: Vec<(String, String)>,
    /// Start the agent with this soft open-file limit (through the shell's `ulimit`).
    pub soft_open_files: Option<u64>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Daemon {
    /// A daemon (not yet started) with the built-in plugins and `config` as
    /// extra lines of its config file.
    pub fn new(node: &Node, tag: &str, config: &str) -> Self {
        let node_name = unique(tag).to_lowercase();
        let dir = std::env::temp_dir().join(format!("wasmlet-agent-{node_name}"));
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests).expect("manifest dir");
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], free_port())),
            kubelet_port: free_port(),
            healthz_port: free_port(),
            node_name,
            manifests,
            dir,
            node: node.clone(),
            child: None,
            config: config.to_owned(),
            plugin_dir: repo().join("target/plugins"),
            env: Vec::new(),
            soft_open_files: None,
        }
    }

    /// A started daemon with the built-in plugins and no extra config.
    pub fn started(node: &Node, tag: &str) -> Self {
        let mut daemon = Self::new(node, tag, "");
        daemon.start();
        daemon
    }

    /// Drops a manifest of pod `name` running `command` in `image`.
    pub fn add_pod(&self, name: &str, image: &str, command: &[&str]) {
        self.write_manifest(&format!("{name}.yaml"), &pod_yaml(name, image, command, ""));
    }

    /// Waits until the runtime has `expected` (sandboxes, containers) of this agent.
    pub async fn wait_runtime_objects(&self, expected: (usize, usize), within: Duration) {
        let give_up = tokio::time::Instant::now() + within;
        loop {
            let now = self.runtime_objects().await;
            if now == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "runtime objects {now:?}, expected {expected:?}; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for an event with `reason` whose message contains `text`.
    pub async fn wait_event(&self, reason: &str, text: &str, within: Duration) {
        let give_up = tokio::time::Instant::now() + within;
        loop {
            let events = self.events().await;
            let found = events.iter().any(|e| {
                e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text))
            });
            if found {
                return;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "no {reason} event containing {text:?}; events: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the agent's log contains `needle`.
    pub async fn wait_log(&self, needle: &str, within: Duration) {
        let give_up = tokio::time::Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                tokio::time::Instant::now() < give_up,
                "{needle:?} never logged:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn with_plugin_dir(mut self, dir: PathBuf) -> Self {
        self.plugin_dir = dir;
        self
    }

    /// Copies the built-in plugins into a directory of this daemon's own and
    /// uses it: the test may then add, change or break plugins.
    pub fn with_private_plugins(self) -> Self {
        let plugins = self.dir.join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugin dir");
        for entry in std::fs::read_dir(repo().join("target/plugins"))
            .expect("built-in plugins")
            .flatten()
        {
            std::fs::copy(entry.path(), plugins.join(entry.file_name())).expect("copy plugin");
        }
        self.with_plugin_dir(plugins)
    }

    pub fn plugin_dir(&self) -> &std::path::Path {
        &self.plugin_dir
    }

    /// Replaces the extra lines of the config file (used at the next start).
    pub fn set_config(&mut self, config: &str) {
        self.config = config.to_owned();
    }

    /// Waits for the agent process to exit by itself: its status, or None
    /// if it still runs after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let give_up = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < give_up {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    /// The agent's `rootDir` (pod directories, volumes).
    pub fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts (or restarts) the agent process.
    pub fn start(&mut self) {
        let config = self.dir.join("config.yaml");
        // The kubelet port lets anyone in unless the test sets its own gate.
        let gate = if self.config.contains("authentication:") {
            ""
        } else {
            "authentication:\n  anonymous:\n    enabled: true\n  webhook:\n    enabled: false\nauthorization:\n  mode: AlwaysAllow\n"
        };
        let read_only = if self.config.contains("readOnlyPort:") {
            String::new()
        } else {
            format!("readOnlyPort: {}\n", self.address.port())
        };
        std::fs::write(
            &config,
            format!(
                "nodeName: {}\nstaticPodPath: {}\npluginDir: {}\npodLogsDir: {}\ncontainerLogsDir: {}\nrootDir: {}\naddress: 127.0.0.1\n{read_only}port: {}\nhealthzPort: {}\nshutdownGracePeriod: 2s\n{gate}{}",
                self.node_name,
                self.manifests.display(),
                self.plugin_dir.display(),
                self.dir.join("logs").display(),
                self.dir.join("containers").display(),
                self.root_dir().display(),
                self.kubelet_port,
                self.healthz_port,
                self.config
            ),
        )
        .expect("config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut command = match self.soft_open_files {
            None => Command::new(wasmlet_bin()),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -Sn {n} && exec \"$0\" \"$@\"")])
                    .arg(wasmlet_bin());
                sh
            }
        };
        let child = command
            .args(["run", "--config"])
            .arg(&config)
            .env("WASMLET_RUNTIME_ENDPOINT", &self.node.socket)
            .env(
                "WASMLET_PLUGIN_CACHE",
                std::env::temp_dir().join("wasmlet-test-plugin-cache"),
            )
            .env(
                "RUST_LOG",
                "wasmlet=info,wasmlet_agent=info,wasmlet_plugin_host=info,wasmlet_kube=info",
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", wasmlet_bin().display()));
        self.child = Some(child);
    }

    /// The agent process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the agent with SIGKILL (pods stay as they are).
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the agent with SIGTERM and waits for it.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    pub fn write_manifest(&self, file: &str, text: &str) {
        // Written aside and renamed in, so the source never reads half a file.
        let tmp = self.manifests.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, self.manifests.join(file)).expect("rename manifest");
    }

    pub fn remove_manifest(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).expect("remove manifest");
    }

    /// GET `path` from the agent: the body; None while it is not serving.
    pub async fn get_text(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(self.address).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).await.ok()?;
        Some(response.split_once("\r\n\r\n")?.1.to_owned())
    }

    /// GET `path` from the agent, as JSON.
    pub async fn get(&self, path: &str) -> Option<Value> {
        serde_json::from_str(&self.get_text(path).await?).ok()
    }

    pub async fn pods(&self) -> Vec<Value> {
        self.get("/pods")
            .await
            .and_then(|list| list["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The pod named `name` (a static pod's without the node suffix), if
    /// the agent lists it.
    pub async fn pod(&self, name: &str) -> Option<Value> {
        let full = format!("{name}-{}", self.node_name);
        self.pods().await.into_iter().find(|p| {
            let listed = &p["metadata"]["name"];
            listed == full.as_str() || listed == name
        })
    }

    pub async fn events(&self) -> Vec<Value> {
        self.get("/events")
            .await
            .and_then(|list| list["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Polls pod `name` until `check` holds; panics with the pod and the
    /// agent's log after `within`.
    pub async fn wait_pod(
        &self,
        name: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let give_up = tokio::time::Instant::now() + within;
        loop {
            let pod = self.pod(name).await;
            if let Some(pod) = &pod
                && check(pod)
            {
                return pod.clone();
            }
            if tokio::time::Instant::now() > give_up {
                panic!(
                    "pod {name} never got there; last seen: {}\nagent log:\n{}",
                    pod.map_or_else(|| "nothing".into(), |p| p["status"].to_string()),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the agent no longer lists pod `name`.
    pub async fn wait_gone(&self, name: &str, within: Duration) {
        let give_up = tokio::time::Instant::now() + within;
        while self.pod(name).await.is_some() {
            assert!(
                tokio::time::Instant::now() < give_up,
                "pod {name} was not removed; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many sandboxes and containers the runtime has of this agent.
    pub async fn runtime_objects(&self) -> (usize, usize) {
        let runtime = self.node.client();
        let labels = Labels::from([("io.wasmlet.agent".to_owned(), self.node_name.clone())]);
        let sandboxes = runtime
            .list_sandboxes(&SandboxFilter {
                labels: labels.clone(),
                ..Default::default()
            })
            .await
            .expect("list sandboxes");
        let containers = runtime
            .list_containers(&ContainerFilter {
                labels,
                ..Default::default()
            })
            .await
            .expect("list containers");
        (sandboxes.len(), containers.len())
    }

    /// Removes every manifest, waits until the runtime has nothing of this
    /// agent left, and stops it.
    pub async fn finish(mut self) {
        for entry in std::fs::read_dir(&self.manifests)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_file(entry.path());
        }
        self.wait_runtime_objects((0, 0), Duration::from_secs(60))
            .await;
        self.terminate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test leaves its pods; the node's teardown removes them.
        self.kill_9();
    }
}

/// A single-container pod manifest.
pub fn pod_yaml(name: &str, image: &str, command: &[&str], extra_spec: &str) -> String {
    let command = command
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 2\n{extra_spec}  containers:\n  - name: main\n    image: {image}\n    command: [{command}]\n"
    )
}

/// `status.containerStatuses[0]` of a listed pod.
pub fn first_container(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

pub fn condition(pod: &Value, kind: &str) -> Option<String> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

/// Why a listed container waits (`state.waiting.reason`), or "".
pub fn waiting_reason(container: &Value) -> &str {
    container["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
}

/// The status of the container called `name`.
pub fn container_named<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Runs `script` in the container called `name`: its stdout, or its exit code.
pub async fn exec_in(node: &Node, pod: &Value, name: &str, script: &str) -> Result<String, i32> {
    let id = container_named(pod, name)["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("container id");
    let command = ["sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let out = node
        .client()
        .exec_sync(
            &id.into(),
            &command,
            ExecTimeout::After(Duration::from_secs(60)),
        )
        .await
        .expect("exec");
    match out.exit_code {
        0 => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        code => Err(code),
    }
}
