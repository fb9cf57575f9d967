//! The agent in steady state with probes: N pods (default 100), each with a
//! readiness (httpGet) and a liveness (tcpSocket) probe every 10 s, against
//! the same pods without probes. Prints the agent's CPU (share of one core)
//! and RSS over a window.
//!
//! `cargo bench -p wasmlet-tests --bench probe_load` on a node started by
//! `scripts/node.sh up`, after scripts/build-plugins.sh and a build of the
//! agent. WASMLET_BENCH_PODS (default 100), WASMLET_BENCH_WINDOW seconds
//! (default 30).

use std::time::Duration;

use wasmlet_tests::Node;
use wasmlet_tests::daemon::{Daemon, first_container, phase};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn manifest(name: &str, image: &str, probes: bool) -> String {
    let probes = if probes {
        "    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 10}\n    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 10}\n"
    } else {
        ""
    };
    format!(
        "kind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: {image}\n    command: [sh, -c, 'echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp']\n{probes}"
    )
}

/// Runs `pods` pods (with or without probes) and measures a window.
async fn measure(node: &Node, pods: u64, window: Duration, probes: bool) -> (f64, f64) {
    let mut agent = Daemon::new(node, if probes { "load-probed" } else { "load-plain" }, "");
    agent.start();
    for i in 0..pods {
        agent.write_manifest(
            &format!("p{i}.yaml"),
            &manifest(&format!("p{i}"), &node.test_image, probes),
        );
    }
    for i in 0..pods {
        agent
            .wait_pod(&format!("p{i}"), Duration::from_secs(600), |p| {
                phase(p) == "Running" && first_container(p)["ready"] == true
            })
            .await;
    }
    let pid = agent.pid().expect("agent running");
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let before = cpu_ticks(pid);
    tokio::time::sleep(window).await;
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_second;
    let rss = rss_mib(pid);
    agent.finish().await;
    (100.0 * used / window.as_secs_f64(), rss)
}

#[tokio::main]
async fn main() {
    let node = Node::from_env();
    let pods = env_u64("WASMLET_BENCH_PODS", 100);
    let window = Duration::from_secs(env_u64("WASMLET_BENCH_WINDOW", 30));
    let (plain_cpu, plain_rss) = measure(&node, pods, window, false).await;
    let (probed_cpu, probed_rss) = measure(&node, pods, window, true).await;
    println!(
        "agent in steady state, {pods} pods, {}s window; probes: readiness httpGet + liveness tcpSocket every 10 s",
        window.as_secs()
    );
    println!(
        "{:<28} {:>12} {:>10} {:>10}",
        "case", "probes/s", "CPU %", "RSS MiB"
    );
    println!(
        "{:<28} {:>12} {:>10.2} {:>10.1}",
        "without probes", 0, plain_cpu, plain_rss
    );
    println!(
        "{:<28} {:>12.1} {:>10.2} {:>10.1}",
        "with probes",
        pods as f64 * 2.0 / 10.0,
        probed_cpu,
        probed_rss
    );
}
