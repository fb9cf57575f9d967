//! Probe overhead of the plugin path: the built-in probe-http-get and
//! probe-tcp-socket plugins against a direct check of the same target (an
//! HTTP server and a listener on 127.0.0.1), timed in turns on a worker
//! thread as the prober runs them: p50/p99 and the difference.
//!
//! The direct httpGet is what the host would do without a plugin: the same
//! request through the same HTTP stack (hyper, as the plugin host's
//! `wasi:http` sends it), so the difference is the plugin boundary alone.
//! A second row, `httpGet/raw`, times the plugin against a hand-written
//! HTTP/1.1 exchange (no HTTP library at all), which also counts hyper's cost.
//!
//! `cargo bench -p wasmlet-plugin-host --bench probes` after
//! scripts/build-plugins.sh. Prints a table; asserts nothing.
//! WASMLET_BENCH_PROBES (default 2000) checks per row; WASMLET_BENCH_PROBE
//! names the one row to time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
#[path = "../tests/support/mod.rs"]
mod support;

use wasmlet_core::{ContainerId, ContainerRuntime, ExecTimeout};
use wasmlet_plugin_host::types::{Handler, HttpGetAction, Port, TcpSocketAction};
use wasmlet_plugin_host::{
    CallTarget, ContainerCall, HostContext, Outcome, Plugin, PluginEngine, PluginMetrics,
};
use wasmlet_runtime_fake::FakeRuntime;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// The probed server, on a thread and runtime of its own as a container's
/// process is: sharing the prober's runtime would time that runtime's
/// cross-thread hand-overs, not the probe.
fn server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the server's runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(RESPONSE).await;
                });
            }
        });
    });
    port
}

/// What the plugin does, natively and through the same HTTP stack: connect,
/// GET with the probe's headers, read the body, judge the status. The
/// connection is driven in the caller's task, as the plugin host drives it.
async fn direct_http(port: u16) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if tcp.set_nodelay(true).is_err() {
        return false;
    }
    let Ok((mut sender, conn)) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
    else {
        return false;
    };
    let Ok(request) = http::Request::get("/")
        .header(http::header::HOST, format!("127.0.0.1:{port}"))
        .header(http::header::USER_AGENT, "kube-probe/wasmlet")
        .header(http::header::ACCEPT, "*/*")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
    else {
        return false;
    };
    let exchange = async {
        let response = sender.send_request(request).await.ok()?;
        let status = response.status();
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .ok()?;
        Some(status)
    };
    let (status, _) = tokio::join!(exchange, conn);
    status.is_some_and(|s| s.is_success() || s.is_redirection())
}

/// The same exchange written by hand: no HTTP library's cost at all.
async fn raw_http(port: u16) -> bool {
    let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/wasmlet\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if conn.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response).await;
    response.starts_with(b"HTTP/1.1 2")
}

async fn direct_tcp(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

async fn plugin_check(plugin: &Plugin, target: &ContainerCall, handler: &Handler) -> bool {
    match plugin.check(target, handler, Duration::from_secs(1)).await {
        Ok(r) if r.outcome == Outcome::Success => true,
        other => {
            eprintln!("{}: {other:?}", plugin.name);
            false
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

/// The goal: the plugin path adds at most this much at p99.
const GOAL_P99_OVERHEAD_US: f64 = 100.0;

fn goal(overhead_p99_us: f64) -> String {
    let verdict = if overhead_p99_us <= GOAL_P99_OVERHEAD_US {
        "met"
    } else {
        "missed"
    };
    format!("p99 overhead <= {GOAL_P99_OVERHEAD_US} µs: {verdict}")
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn direct_exec(runtime: &FakeRuntime, id: &ContainerId) -> bool {
    runtime
        .exec_sync(
            id,
            &["true".to_owned()],
            ExecTimeout::After(Duration::from_secs(1)),
        )
        .await
        .is_ok_and(|out| out.exit_code == 0)
}

async fn load(engine: &Arc<PluginEngine>, name: &str, host: HostContext) -> Plugin {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/plugins")
        .join(format!("{name}.toml"));
    Plugin::load(
        engine,
        &Arc::new(host),
        &PluginMetrics::default(),
        &manifest,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e} (run scripts/build-plugins.sh)"))
}

/// `n` timings each of `direct` and `plugin`, taken in turns so that drift
/// in the machine's speed hits both alike; sorted.
async fn time_pair<D, DF, P, PF>(n: usize, mut direct: D, mut plugin: P) -> [Vec<Duration>; 2]
where
    D: FnMut() -> DF,
    DF: Future<Output = bool>,
    P: FnMut() -> PF,
    PF: Future<Output = bool>,
{
    let mut samples = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for _ in 0..n {
        let started = Instant::now();
        let ok = direct().await;
        samples[0].push(started.elapsed());
        let started = Instant::now();
        let ok = ok && plugin().await;
        samples[1].push(started.elapsed());
        assert!(ok, "a check failed during the benchmark");
    }
    for s in &mut samples {
        s.sort();
    }
    samples
}

#[tokio::main]
async fn main() {
    // On a worker thread, as the agent's prober runs.
    tokio::spawn(measure()).await.expect("the benchmark ran");
}

async fn measure() {
    let n = std::env::var("WASMLET_BENCH_PROBES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let port = server();
    let engine = Arc::new(PluginEngine::new(None).expect("engine"));
    let http = load(&engine, "probe-http-get", HostContext::default()).await;
    let tcp = load(&engine, "probe-tcp-socket", HostContext::default()).await;
    // Exec against the in-memory runtime: the plugin path's own cost, with
    // one host call and no I/O.
    let (runtime, container) = support::running_container().await;
    let exec = load(
        &engine,
        "probe-exec",
        HostContext {
            node_name: "bench".into(),
            exec: Some(Arc::new(runtime.clone())),
            kube: None,
        },
    )
    .await;
    let grant = CallTarget {
        pod_uid: "uid-bench".into(),
        container_id: "c".into(),
        pod_ip: Some([127, 0, 0, 1].into()),
        address: Some([127, 0, 0, 1].into()),
    };
    let target = ContainerCall::new(grant, "bench", "default", "app", &[]).expect("a target");
    let http_handler = Handler::HttpGet(HttpGetAction {
        scheme: "HTTP".into(),
        host: None,
        path: "/".into(),
        port: Port::Number(port),
        headers: Vec::new(),
    });
    let tcp_handler = Handler::TcpSocket(TcpSocketAction {
        host: None,
        port: Port::Number(port),
    });
    // Warm up both paths (compiled code, connection setup).
    for _ in 0..100 {
        direct_http(port).await;
        raw_http(port).await;
        plugin_check(&http, &target, &http_handler).await;
    }

    let exec_grant = CallTarget {
        pod_uid: "uid-bench".into(),
        container_id: container.clone(),
        pod_ip: Some([127, 0, 0, 1].into()),
        address: Some([127, 0, 0, 1].into()),
    };
    let exec_target =
        ContainerCall::new(exec_grant, "bench", "default", "app", &[]).expect("a target");
    let exec_handler = Handler::Exec(vec!["true".into()]);
    // WASMLET_BENCH_PROBE=httpGet (say) times that row alone.
    let only = std::env::var("WASMLET_BENCH_PROBE").ok();
    let checks = |row: &str| {
        if only.as_deref().is_none_or(|o| o == row) {
            n
        } else {
            0
        }
    };
    let rows = [
        (
            "exec*",
            time_pair(
                checks("exec*"),
                || direct_exec(&runtime, &container),
                || plugin_check(&exec, &exec_target, &exec_handler),
            )
            .await,
        ),
        (
            "httpGet",
            time_pair(
                checks("httpGet"),
                || direct_http(port),
                || plugin_check(&http, &target, &http_handler),
            )
            .await,
        ),
        (
            "httpGet/raw",
            time_pair(
                checks("httpGet/raw"),
                || raw_http(port),
                || plugin_check(&http, &target, &http_handler),
            )
            .await,
        ),
        (
            "tcpSocket",
            time_pair(
                checks("tcpSocket"),
                || direct_tcp(port),
                || plugin_check(&tcp, &target, &tcp_handler),
            )
            .await,
        ),
    ];
    println!("probe overhead of the plugin path, {n} checks each, 127.0.0.1 target");
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>11} {:>14} {:>14}  goal",
        "probe",
        "direct p50",
        "direct p99",
        "plugin p50",
        "plugin p99",
        "overhead p50",
        "overhead p99"
    );
    println!("* exec runs against the in-memory fake runtime: the plugin path alone, no I/O");
    println!("  httpGet: direct = the same GET through hyper (the plugin host's HTTP stack);");
    println!("  httpGet/raw: direct = a hand-written HTTP/1.1 exchange (no HTTP library)");
    for (name, [direct, plugin]) in rows.into_iter().filter(|(_, [d, _])| !d.is_empty()) {
        let (d50, d99) = (percentile(&direct, 50.0), percentile(&direct, 99.0));
        let (p50, p99) = (percentile(&plugin, 50.0), percentile(&plugin, 99.0));
        println!(
            "{name:<12} {:>8.1} µs {:>8.1} µs {:>8.1} µs {:>8.1} µs {:>11.1} µs {:>11.1} µs  {}",
            us(d50),
            us(d99),
            us(p50),
            us(p99),
            us(p50) - us(d50),
            us(p99) - us(d99),
            goal(us(p99) - us(d99)),
        );
    }
}
