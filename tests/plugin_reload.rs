//! Hot reload of the plugin directory, against the real binary and
//! containerd: a plugin added, broken, removed, and a pod source replaced,
//! while a pod runs on untouched.

use std::time::Duration;

use serde_json::Value;
use wasmlet_tests::Node;
use wasmlet_tests::daemon::{Daemon, first_container, phase, repo};

const MINUTE: Duration = Duration::from_secs(60);

/// Waits until the agent's /metrics has `sample`.
async fn wait_metric(agent: &Daemon, sample: &str) {
    let give_up = tokio::time::Instant::now() + MINUTE;
    loop {
        let metrics = agent.get_text("/metrics").await.unwrap_or_default();
        if metrics.contains(sample) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{sample} never counted:\n{metrics}\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn container_id(pod: &Value) -> String {
    first_container(pod)["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_added_kept_when_broken_removed_and_sources_replaced_with_pods_running() {
    let node = Node::from_env();
    let mut agent =
        Daemon::new(&node, "reload", "pluginReloadPeriod: 300ms\n").with_private_plugins();
    agent.start();
    let plugins = agent.plugin_dir().to_path_buf();
    agent.add_pod("keeper", &node.test_image, &["sleep", "3600"]);
    let keeper = agent
        .wait_pod("keeper", MINUTE, |p| phase(p) == "Running")
        .await;

    // Added: an admission plugin that wants a `team` label.
    let example = repo().join("plugins/examples/require-labels");
    std::fs::copy(
        example.join("require-labels.wasm"),
        plugins.join("require-labels.wasm"),
    )
    .expect("component");
    let manifest = "kind = \"admission\"\nwit = \"0.1.0\"\n\n[settings]\nlabels = [\"team\"]\n";
    std::fs::write(plugins.join("require-labels.toml"), manifest).expect("manifest");
    wait_metric(
        &agent,
        "wasmlet_plugin_reloads_total{plugin=\"require-labels\",result=\"loaded\"} 1",
    )
    .await;
    agent.add_pod("first", &node.test_image, &["sleep", "3600"]);
    let first = agent
        .wait_pod("first", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(first["status"]["reason"], "MissingLabels", "{first}");

    // Broken: the previous version stays in force.
    std::fs::write(plugins.join("require-labels.toml"), "kind = \"nonsense\"\n").expect("broken");
    wait_metric(
        &agent,
        "wasmlet_plugin_reloads_total{plugin=\"require-labels\",result=\"failed\"} 1",
    )
    .await;
    agent
        .wait_log("plugin reload failed; the previous version stays", MINUTE)
        .await;
    agent.add_pod("second", &node.test_image, &["sleep", "3600"]);
    let second = agent
        .wait_pod("second", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(second["status"]["reason"], "MissingLabels", "{second}");

    // Removed: new pods are admitted again.
    std::fs::remove_file(plugins.join("require-labels.toml")).expect("remove");
    std::fs::remove_file(plugins.join("require-labels.wasm")).expect("remove");
    wait_metric(
        &agent,
        "wasmlet_plugin_reloads_total{plugin=\"require-labels\",result=\"removed\"} 1",
    )
    .await;
    agent.add_pod("third", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("third", MINUTE, |p| phase(p) == "Running")
        .await;

    // Added broken, a fail-closed admission plugin holds up admission (as at
    // start); removed, it no longer does.
    std::fs::write(plugins.join("gate.wasm"), b"not a component").expect("gate");
    std::fs::write(
        plugins.join("gate.toml"),
        "kind = \"admission\"\nwit = \"0.1.0\"\nfailure-policy = \"fail-closed\"\n",
    )
    .expect("gate manifest");
    wait_metric(
        &agent,
        "wasmlet_plugin_reloads_total{plugin=\"gate\",result=\"failed\"} 1",
    )
    .await;
    agent.add_pod("blocked", &node.test_image, &["sleep", "3600"]);
    let blocked = agent
        .wait_pod("blocked", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(
        blocked["status"]["reason"], "AdmissionPluginUnavailable",
        "{blocked}"
    );
    std::fs::remove_file(plugins.join("gate.toml")).expect("remove");
    std::fs::remove_file(plugins.join("gate.wasm")).expect("remove");
    wait_metric(
        &agent,
        "wasmlet_plugin_reloads_total{plugin=\"gate\",result=\"removed\"} 1",
    )
    .await;
    agent.add_pod("fourth", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("fourth", MINUTE, |p| phase(p) == "Running")
        .await;

    // A pod source replaced (its component rewritten): its pods stay, and
    // the new instance serves new manifests.
    let component = plugins.join("file-source.wasm");
    let bytes = std::fs::read(&component).expect("file-source");
    std::fs::write(&component, bytes).expect("rewrite");
    wait_metric(
        &agent,
        "wasmlet_plugin_reloads_total{plugin=\"file-source\",result=\"loaded\"} 1",
    )
    .await;
    agent.add_pod("after", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("after", MINUTE, |p| phase(p) == "Running")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = agent.pod("keeper").await.expect("keeper is still there");
    assert_eq!(phase(&now), "Running", "{now}");
    assert_eq!(container_id(&now), container_id(&keeper), "never restarted");
    assert_eq!(first_container(&now)["restartCount"], 0);
    let third = agent.pod("third").await.expect("third is still there");
    assert_eq!(phase(&third), "Running", "{third}");
    // keeper, third, fourth and after run; the rejected pods have no sandbox.
    assert_eq!(agent.runtime_objects().await, (4, 4));
    agent.finish().await;
}
