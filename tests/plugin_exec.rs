//! A plugin's exec capability against the real runtime: the host runs CRI
//! ExecSync in the container the call is about, and only when granted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmlet_plugin_host::types::Handler;
use wasmlet_plugin_host::{
    CallTarget, ContainerCall, Failure, HostContext, Outcome, Plugin, PluginEngine, PluginMetrics,
};
use wasmlet_tests::{Node, TestPod, unique};

fn probe_wasm() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/hostile_probe.wasm");
    assert!(
        path.is_file(),
        "{} missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}

async fn load(host: &Arc<HostContext>, exec: bool) -> Plugin {
    let dir = std::env::temp_dir().join(unique("plugin-exec"));
    std::fs::create_dir_all(&dir).expect("dir");
    let manifest = dir.join("prober.toml");
    std::fs::write(
        &manifest,
        format!(
            "component = {:?}\nkind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\nexec = {exec}\n",
            probe_wasm().display().to_string()
        ),
    )
    .expect("manifest");
    let engine = Arc::new(PluginEngine::new(None).expect("engine"));
    let plugin = Plugin::load(&engine, host, &PluginMetrics::default(), &manifest, None)
        .await
        .expect("load");
    let _ = std::fs::remove_dir_all(&dir);
    plugin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_target_container_and_only_when_granted() {
    let node = Node::from_env();
    let runtime = node.client();
    let pod = TestPod::start(
        &runtime,
        &node,
        "plugin-exec",
        &["sh", "-c", "echo marker > /tmp/here; exec sleep 3600"],
    )
    .await;
    let host = Arc::new(HostContext {
        node_name: "test-node".into(),
        exec: Some(Arc::new(runtime.clone())),
        kube: None,
    });
    let grant = CallTarget {
        pod_uid: pod.config.metadata.uid.clone(),
        container_id: pod.container.clone(),
        pod_ip: None,
        address: None,
    };
    let meta = &pod.config.metadata;
    let target =
        ContainerCall::new(grant, &meta.name, &meta.namespace, "app", &[]).expect("a target");
    let second = Duration::from_secs(5);

    let granted = load(&host, true).await;
    // The file only that container has: the command really ran there.
    let seen = granted
        .check(
            &target,
            &Handler::Exec(vec!["cat".into(), "/tmp/here".into()]),
            second,
        )
        .await
        .expect("exec granted");
    assert_eq!(
        (seen.outcome, seen.message.as_str()),
        (Outcome::Success, "exit 0 (got 7 bytes): marker")
    );
    let failing = granted
        .check(
            &target,
            &Handler::Exec(vec!["sh".into(), "-c".into(), "exit 3".into()]),
            second,
        )
        .await
        .expect("exec granted");
    assert_eq!(
        (failing.outcome, failing.message.as_str()),
        (Outcome::Failure, "exit 3 (got 0 bytes):")
    );

    let refused = load(&host, false).await;
    let err = refused
        .check(&target, &Handler::Exec(vec!["true".into()]), second)
        .await
        .expect_err("exec not granted");
    assert!(
        matches!(&err.failure, Failure::DeniedCapability(w) if w.contains("exec")),
        "{err}"
    );

    pod.remove(&runtime).await;
}
