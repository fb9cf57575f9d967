//! Admission call latency through the plugin host, with a realistic pod (5
//! containers, 10 labels, ~4 KiB of JSON): a fresh store per call (what the
//! agent does), a reused instance, and instantiation alone.
//!
//! `cargo bench -p wasmlet-plugin-host --bench admission` after
//! scripts/build-plugins.sh. Prints a table; asserts nothing.
//! `WASMLET_BENCH_PLUGINS=require-labels` runs only the plugins named.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use wasmlet_plugin_host::{
    AdmissionInstance, HostContext, Plugin, PluginEngine, PluginMetrics, pod_view, types,
};

fn realistic_pod() -> Pod {
    let labels: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| {
            (
                format!("example.com/label-{i}"),
                format!("value-{i}").into(),
            )
        })
        .collect();
    let containers: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "name": format!("container-{i}"),
                "image": format!("registry.example.com/team/app-{i}:1.{i}.0"),
                "command": ["/bin/app", "--serve"],
                "args": ["--port", format!("{}", 8080 + i), "--log-level", "info"],
                "ports": [{"name": "http", "containerPort": 8080 + i, "protocol": "TCP"}],
                "env": [
                    {"name": "APP_MODE", "value": "production"},
                    {"name": "APP_REGION", "value": "eu-west-1"},
                    {"name": "APP_INSTANCE", "value": format!("instance-{i}")}
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"}
                },
                "securityContext": {"runAsNonRoot": true, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
            })
        })
        .collect();
    let mut labels = labels;
    labels.insert("app".into(), "bench".into());
    labels.insert("team".into(), "platform".into());
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "realistic", "namespace": "default", "uid": "9f0d3c1e-bench", "labels": labels},
        "spec": {"containers": containers, "restartPolicy": "Always", "terminationGracePeriodSeconds": 30}
    }))
    .expect("pod")
}

fn node() -> types::NodeInfo {
    types::NodeInfo {
        name: "bench-node".into(),
        labels: Vec::new(),
        taints: Vec::new(),
        capacity: Vec::new(),
        allocatable: Vec::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn row(name: &str, mode: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<16} {mode:<20} {:>6} {:>11} {:>11}",
        samples.len(),
        show(percentile(&samples, 50.0)),
        show(percentile(&samples, 99.0))
    );
}

async fn bench(engine: &Arc<PluginEngine>, manifest: &Path, calls: usize) {
    let host = Arc::new(HostContext::default());
    let plugin = Arc::new(
        Plugin::load(engine, &host, &PluginMetrics::default(), manifest, None)
            .await
            .unwrap_or_else(|e| panic!("{e} (build the plugins first: scripts/build-plugins.sh)")),
    );
    let pod = pod_view(&realistic_pod(), "file").expect("view");
    let node = node();

    let mut fresh = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        let decision = plugin.admit(&pod, &node, &[]).await.expect("admit");
        fresh.push(start.elapsed());
        std::hint::black_box(decision);
    }
    let mut instantiate = Vec::with_capacity(calls / 10);
    for _ in 0..calls / 10 {
        let start = Instant::now();
        let instance = AdmissionInstance::new(plugin.clone())
            .await
            .expect("instance");
        instantiate.push(start.elapsed());
        drop(instance);
    }
    let mut instance = AdmissionInstance::new(plugin.clone())
        .await
        .expect("instance");
    let mut reused = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        let decision = instance.admit(&pod, &node, &[]).await.expect("admit");
        reused.push(start.elapsed());
        std::hint::black_box(decision);
    }
    row(&plugin.name, "fresh store per call", fresh);
    row(&plugin.name, "reused instance", reused);
    row(&plugin.name, "instantiate", instantiate);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let engine = Arc::new(PluginEngine::new(None).expect("engine"));
    let pod_json = serde_json::to_string(&realistic_pod()).expect("json").len();
    println!(
        "\nadmission plugin calls: pod with 5 containers, 12 labels, {pod_json} bytes of JSON"
    );
    println!(
        "{:<16} {:<20} {:>6} {:>11} {:>11}",
        "plugin", "mode", "n", "p50", "p99"
    );
    // WASMLET_BENCH_PLUGINS=require-labels limits the run to the plugins named.
    let only = std::env::var("WASMLET_BENCH_PLUGINS").unwrap_or_default();
    for (name, calls) in [("require-labels", 20_000), ("py-baseline", 500)] {
        if only.is_empty() || only.split(',').any(|o| o == name) {
            let manifest = repo.join(format!("plugins/examples/{name}/{name}.toml"));
            bench(&engine, &manifest, calls).await;
        }
    }
}
