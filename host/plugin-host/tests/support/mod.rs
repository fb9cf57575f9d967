//! Shared by the plugin host's tests: built components, temp plugin dirs, pods.

#![allow(dead_code)]

pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmlet_plugin_host::types::{KeyValue, NodeInfo, Pod};
use wasmlet_plugin_host::{HostContext, LoadError, Plugin, PluginEngine, PluginMetrics};

/// Where scripts/build-plugins.sh leaves the Rust components.
pub fn wasm(name: &str) -> PathBuf {
    let dir = std::env::var_os("WASMLET_PLUGIN_WASM_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../plugins/target/wasm32-wasip2/release")
        },
        PathBuf::from,
    );
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the plugins first (scripts/build-plugins.sh)",
        path.display()
    );
    path
}

/// One engine per test binary: engines reserve address space for their pools.
pub fn engine() -> Arc<PluginEngine> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(PluginEngine::new(None).expect("engine")))
        .clone()
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wasmlet-plugin-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `<dir>/<name>.toml` with `component` pointing at `wasm` and the rest of `body`.
pub fn manifest(dir: &Path, name: &str, wasm: &Path, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!("component = {:?}\n{body}", wasm.display().to_string());
    std::fs::write(&path, text).expect("write manifest");
    path
}

pub struct Harness {
    pub engine: Arc<PluginEngine>,
    pub host: Arc<HostContext>,
    pub metrics: PluginMetrics,
    pub dir: PathBuf,
}

impl Harness {
    pub fn new(tag: &str) -> Self {
        Self::with_host(
            tag,
            HostContext {
                node_name: "test-node".into(),
                exec: None,
                kube: None,
            },
        )
    }

    pub fn with_host(tag: &str, host: HostContext) -> Self {
        Self {
            engine: engine(),
            host: Arc::new(host),
            metrics: PluginMetrics::default(),
            dir: temp_dir(tag),
        }
    }

    /// The hostile admission plugin (mode `ok` unless a pod says otherwise),
    /// with `extra` manifest lines (e.g. a `[limits]` table).
    pub async fn hostile(&self, name: &str, extra: &str) -> Plugin {
        let body =
            format!("kind = \"admission\"\nwit = \"0.1.0\"\n{extra}\n[settings]\nmode = \"ok\"\n");
        self.load(name, "hostile", &body)
            .await
            .expect("load the hostile plugin")
    }

    pub async fn load(&self, name: &str, wasm_name: &str, body: &str) -> Result<Plugin, LoadError> {
        let path = manifest(&self.dir, name, &wasm(wasm_name), body);
        Plugin::load(&self.engine, &self.host, &self.metrics, &path, None).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        name: name.into(),
        namespace: "default".into(),
        uid: format!("uid-{name}"),
        labels: labels
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
        annotations: Vec::new(),
        source: "file".into(),
        node_name: "test-node".into(),
        node_selector: Vec::new(),
        host_network: false,
        host_pid: false,
        host_ipc: false,
        containers: Vec::new(),
        tolerations: Vec::new(),
        priority: None,
        priority_class_name: None,
        restart_policy: "Always".into(),
        json: "{}".into(),
    }
}

pub fn node() -> NodeInfo {
    NodeInfo {
        name: "test-node".into(),
        labels: Vec::new(),
        taints: Vec::new(),
        capacity: Vec::new(),
        allocatable: Vec::new(),
    }
}

/// The fake runtime with one running container (image `img`), for exec.
pub async fn running_container() -> (wasmlet_runtime_fake::FakeRuntime, wasmlet_core::ContainerId) {
    use wasmlet_core::{ContainerConfig, ContainerRuntime, SandboxConfig, SandboxRuntime};
    let runtime = wasmlet_runtime_fake::FakeRuntime::new().with_image("img");
    let sandbox_config = SandboxConfig::default();
    let sandbox = runtime
        .run_sandbox(&sandbox_config, "")
        .await
        .expect("sandbox");
    let config = ContainerConfig {
        image: "img".into(),
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox, &config, &sandbox_config)
        .await
        .expect("create");
    runtime.start_container(&id).await.expect("start");
    (runtime, id)
}
