//! The runtime floor: what the real containerd costs through wasmlet's CRI client.
//! Every later performance figure of wasmlet is read against this table.
//!
//! `cargo bench -p wasmlet-tests --bench runtime_floor` on a node started by
//! `scripts/node.sh up`. WASMLET_BENCH_PODS (default 100) sets the large node size.

use std::time::{Duration, Instant};

use wasmlet_core::{
    ContainerFilter, ContainerId, ContainerRuntime, ExecTimeout, RuntimeInfo, SandboxFilter,
    SandboxId, SandboxRuntime,
};
use wasmlet_cri::CriClient;
use wasmlet_tests::{Node, container_config, sandbox_config, unique};

struct Row {
    call: &'static str,
    pods: usize,
    samples: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

async fn timed<T, F: Future<Output = T>>(samples: &mut Vec<Duration>, f: F) -> T {
    let start = Instant::now();
    let out = f.await;
    samples.push(start.elapsed());
    out
}

async fn list_containers(runtime: &CriClient, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        timed(
            &mut samples,
            runtime.list_containers(&ContainerFilter::default()),
        )
        .await
        .expect("ListContainers");
    }
    samples
}

/// One pod: a sandbox and a sleeping container. Records both steps.
async fn add_pod(
    runtime: &CriClient,
    image: &str,
    run: &mut Vec<Duration>,
    start: &mut Vec<Duration>,
) -> (SandboxId, ContainerId) {
    let sc = sandbox_config(&unique("bench"));
    let sandbox = timed(run, runtime.run_sandbox(&sc, ""))
        .await
        .expect("RunPodSandbox");
    let config = container_config("app", image, &["sleep", "3600"]);
    let id = timed(start, async {
        let id = runtime.create_container(&sandbox, &config, &sc).await?;
        runtime.start_container(&id).await.map(|()| id)
    })
    .await
    .expect("CreateContainer + StartContainer");
    (sandbox, id)
}

#[tokio::main]
async fn main() {
    let node = Node::from_env();
    let runtime = node.client();
    let pods: usize = std::env::var("WASMLET_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let version = runtime.version().await.expect("runtime reachable");
    let already = runtime
        .list_sandboxes(&SandboxFilter::default())
        .await
        .expect("list")
        .len();
    assert_eq!(
        already, 0,
        "the node must start empty for a clean floor (scripts/node.sh down && up)"
    );

    let (mut run, mut start) = (Vec::new(), Vec::new());
    let mut created = vec![add_pod(&runtime, &node.test_image, &mut run, &mut start).await];
    let list_one = list_containers(&runtime, 500).await;
    while created.len() < pods {
        created.push(add_pod(&runtime, &node.test_image, &mut run, &mut start).await);
    }
    let list_many = list_containers(&runtime, 200).await;
    let mut list_sandboxes = Vec::new();
    for _ in 0..200 {
        timed(
            &mut list_sandboxes,
            runtime.list_sandboxes(&SandboxFilter::default()),
        )
        .await
        .expect("ListPodSandbox");
    }
    let mut exec = Vec::new();
    let cmd = ["true".to_owned()];
    for _ in 0..200 {
        let out = timed(
            &mut exec,
            runtime.exec_sync(
                &created[0].1,
                &cmd,
                ExecTimeout::After(Duration::from_secs(5)),
            ),
        )
        .await
        .expect("ExecSync");
        assert_eq!(out.exit_code, 0);
    }
    let mut teardown = Vec::new();
    for (sandbox, _) in &created {
        timed(&mut teardown, async {
            runtime.stop_sandbox(sandbox).await?;
            runtime.remove_sandbox(sandbox).await
        })
        .await
        .expect("teardown");
    }

    let rows = [
        Row {
            call: "RunPodSandbox",
            pods,
            samples: run,
        },
        Row {
            call: "CreateContainer+StartContainer",
            pods,
            samples: start,
        },
        Row {
            call: "ExecSync (true)",
            pods,
            samples: exec,
        },
        Row {
            call: "ListContainers",
            pods: 1,
            samples: list_one,
        },
        Row {
            call: "ListContainers",
            pods,
            samples: list_many,
        },
        Row {
            call: "ListPodSandbox",
            pods,
            samples: list_sandboxes,
        },
        Row {
            call: "StopPodSandbox+RemovePodSandbox",
            pods,
            samples: teardown,
        },
    ];
    println!(
        "\nruntime floor: {} {} via wasmlet-cri over {}",
        version.runtime_name,
        version.runtime_version,
        node.socket.display()
    );
    println!(
        "{:<32} {:>5} {:>5} {:>10} {:>10} {:>10}",
        "call", "pods", "n", "p50", "p99", "max"
    );
    for mut row in rows {
        row.samples.sort();
        println!(
            "{:<32} {:>5} {:>5} {:>10} {:>10} {:>10}",
            row.call,
            row.pods,
            row.samples.len(),
            show(percentile(&row.samples, 50.0)),
            show(percentile(&row.samples, 99.0)),
            show(row.samples.last().copied().unwrap_or_default()),
        );
    }
}
