//! Pod start through the agent against the runtime floor: the time from a
//! source's snapshot reaching the agent to the pod reported Running, next to
//! the same CRI calls made directly (RunPodSandbox, ImageStatus,
//! CreateContainer, StartContainer), for one pod at a time and for a burst.
//!
//! `cargo bench -p wasmlet-tests --bench pod_start` on a node started by
//! `scripts/node.sh up`. WASMLET_BENCH_RUNS (default 20) single-pod runs;
//! WASMLET_BENCH_PODS (default 100) pods in the burst.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmlet_agent::admission::AdmitAll;
use wasmlet_agent::handlers::NoHandlers;
use wasmlet_agent::kuberuntime::runtime_pod::{container_config, environment, sandbox_config};
use wasmlet_agent::kuberuntime::security_context::container_security;
use wasmlet_agent::metrics::AgentMetrics;
use wasmlet_agent::network::DnsSettings;
use wasmlet_agent::network::dns::{ResolvConf, pod_dns};
use wasmlet_agent::{Agent, AgentConfig, AgentView, SourceMessage, SourceUpdate};
use wasmlet_core::{ContainerRuntime, ImageRuntime, PodUid, SandboxRuntime};
use wasmlet_cri::CriClient;
use wasmlet_rules::security::ImageUser;
use wasmlet_tests::{Node, unique};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "bench", "uid": format!("uid-{name}")},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}]
        }
    }))
    .expect("pod")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The floor: the agent's CRI calls for one pod, made directly.
async fn floor_pod(
    runtime: &CriClient,
    pod: &Pod,
    agent: &str,
    logs: &std::path::Path,
) -> Duration {
    let started = Instant::now();
    // The agent's resolver for it, as the agent works it out.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let settings = DnsSettings::default();
    let dns = pod_dns(pod, &settings, Some(&ResolvConf::parse(&resolv))).config;
    let sandbox_config = sandbox_config(pod, 0, agent, logs, Some(dns), "").expect("valid pod");
    let _ = std::fs::create_dir_all(&sandbox_config.log_directory);
    let sandbox = runtime
        .run_sandbox(&sandbox_config, "")
        .await
        .expect("RunPodSandbox");
    let spec = pod.spec.as_ref().expect("spec");
    let image = spec.containers[0].image.clone().unwrap_or_default();
    let user = runtime
        .image_status(&image)
        .await
        .expect("ImageStatus")
        .unwrap_or_default();
    let security = container_security(
        pod,
        &spec.containers[0],
        sandbox_config.namespaces,
        ImageUser::new(user.uid, &user.username),
        std::path::Path::new("/var/lib/wasmlet/seccomp"),
    )
    .expect("security context");
    let (env, _) = environment(
        pod,
        &spec.containers[0],
        Default::default(),
        &Default::default(),
    )
    .expect("env");
    let config = container_config(
        pod,
        &spec.containers[0],
        0,
        agent,
        env,
        security,
        Vec::new(),
    );
    let id = runtime
        .create_container(&sandbox, &config, &sandbox_config)
        .await
        .expect("CreateContainer");
    runtime.start_container(&id).await.expect("StartContainer");
    started.elapsed()
}

async fn remove_all(runtime: &CriClient, agent: &str) {
    let filter = wasmlet_core::SandboxFilter {
        labels: [("io.wasmlet.agent".to_owned(), agent.to_owned())].into(),
        ..Default::default()
    };
    for sandbox in runtime.list_sandboxes(&filter).await.expect("list") {
        runtime.stop_sandbox(&sandbox.id).await.expect("stop");
        runtime.remove_sandbox(&sandbox.id).await.expect("remove");
    }
}

fn running(view: &AgentView, uid: &PodUid) -> bool {
    view.statuses
        .get(uid)
        .and_then(|p| p.status?.phase)
        .is_some_and(|phase| phase == "Running")
}

/// Sends `pods` as the source's whole set and returns, per pod, the time
/// until the agent reported it Running.
async fn agent_start(
    view: &AgentView,
    config: &mpsc::Sender<SourceMessage>,
    pods: Vec<Pod>,
) -> Vec<Duration> {
    let uids: Vec<PodUid> = pods
        .iter()
        .map(|p| p.metadata.uid.clone().unwrap_or_default().into())
        .collect();
    let started = Instant::now();
    config
        .send(
            SourceUpdate {
                source: "bench".into(),
                pods,
                problems: Vec::new(),
            }
            .into(),
        )
        .await
        .expect("agent alive");
    let mut done: Vec<Option<Duration>> = vec![None; uids.len()];
    while done.iter().any(Option::is_none) {
        for (i, uid) in uids.iter().enumerate() {
            if done[i].is_none() && running(view, uid) {
                done[i] = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "pods never ran"
        );
    }
    done.into_iter().flatten().collect()
}

async fn agent_clear(view: &AgentView, config: &mpsc::Sender<SourceMessage>) {
    config
        .send(
            SourceUpdate {
                source: "bench".into(),
                ..Default::default()
            }
            .into(),
        )
        .await
        .expect("agent alive");
    while !view.statuses.list().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Row {
    case: String,
    agent: Vec<Duration>,
    floor: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let node = Node::from_env();
    let runtime = Arc::new(node.client());
    let runs = env_usize("WASMLET_BENCH_RUNS", 20);
    let burst = env_usize("WASMLET_BENCH_PODS", 100);
    let agent_name = unique("bench-agent").to_lowercase();
    let floor_name = unique("bench-floor").to_lowercase();
    let logs = std::env::temp_dir().join(format!("wasmlet-bench-{}", std::process::id()));

    let mut cfg = AgentConfig::new(agent_name.clone());
    cfg.sources = vec!["bench".into()];
    cfg.log_root = logs.clone();
    cfg.container_logs_dir = logs.join("containers");
    cfg.root_dir = logs.join("root");
    let agent = Agent::new(
        runtime.clone(),
        AdmitAll,
        Arc::new(NoHandlers),
        cfg,
        AgentMetrics::default(),
    );
    let view = agent.view();
    let (config, config_rx) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let task = tokio::spawn(agent.run(config_rx, stop.clone()));

    let mut rows = Vec::new();
    // Single pods, alternating agent and floor so drift hits both alike.
    let mut single = Row {
        case: "1 pod".into(),
        agent: Vec::new(),
        floor: Vec::new(),
    };
    for i in 0..runs {
        let name = format!("single-{i}");
        single
            .agent
            .extend(agent_start(&view, &config, vec![pod(&name, &node.test_image)]).await);
        agent_clear(&view, &config).await;
        single.floor.push(
            floor_pod(
                &runtime,
                &pod(&format!("floor-{i}"), &node.test_image),
                &floor_name,
                &logs,
            )
            .await,
        );
        remove_all(&runtime, &floor_name).await;
    }
    rows.push(single);

    let pods: Vec<Pod> = (0..burst)
        .map(|i| pod(&format!("burst-{i}"), &node.test_image))
        .collect();
    let agent_burst = agent_start(&view, &config, pods).await;
    agent_clear(&view, &config).await;
    let started = Instant::now();
    let mut floor_tasks = tokio::task::JoinSet::new();
    for i in 0..burst {
        let runtime = runtime.clone();
        let (image, floor_name, logs) = (node.test_image.clone(), floor_name.clone(), logs.clone());
        floor_tasks.spawn(async move {
            floor_pod(
                &runtime,
                &pod(&format!("fburst-{i}"), &image),
                &floor_name,
                &logs,
            )
            .await;
            started.elapsed()
        });
    }
    let mut floor_burst = Vec::new();
    while let Some(done) = floor_tasks.join_next().await {
        floor_burst.push(done.expect("floor task"));
    }
    remove_all(&runtime, &floor_name).await;
    rows.push(Row {
        case: format!("burst of {burst} (from the burst's start)"),
        agent: agent_burst,
        floor: floor_burst,
    });

    println!("manifest seen → Running reported, against the same CRI calls made directly");
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "case", "agent p50", "agent p99", "floor p50", "floor p99", "p50 ×", "p99 ×"
    );
    for mut row in rows {
        row.agent.sort();
        row.floor.sort();
        let (a50, a99) = (percentile(&row.agent, 50.0), percentile(&row.agent, 99.0));
        let (f50, f99) = (percentile(&row.floor, 50.0), percentile(&row.floor, 99.0));
        println!(
            "{:<34} {:>10} {:>10} {:>10} {:>10} {:>8.3} {:>8.3}",
            row.case,
            ms(a50),
            ms(a99),
            ms(f50),
            ms(f99),
            a50.as_secs_f64() / f50.as_secs_f64(),
            a99.as_secs_f64() / f99.as_secs_f64()
        );
    }
    stop.cancel();
    let _ = task.await;
    remove_all(&runtime, &agent_name).await;
    let _ = std::fs::remove_dir_all(&logs);
}
