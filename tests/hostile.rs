//! What a broken plugin, source, manifest or client may cost, against the real
//! binary and the real containerd: never a running pod, never the agent.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmlet_tests::Node;
use wasmlet_tests::daemon::{Daemon, first_container, phase, pod_yaml};

const MINUTE: Duration = Duration::from_secs(60);
/// Housekeeping runs every 2 s: this is several rounds of it.
const HOUSEKEEPING_ROUNDS: Duration = Duration::from_secs(7);

fn restarts(pod: &Value) -> i64 {
    first_container(pod)["restartCount"].as_i64().unwrap_or(-1)
}

async fn metrics(agent: &Daemon) -> String {
    agent.get_text("/metrics").await.unwrap_or_default()
}

/// The prober's metrics (`/metrics/probes`, as the kubelet serves them).
async fn probe_metrics(agent: &Daemon) -> String {
    agent.get_text("/metrics/probes").await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_source_plugin_removes_no_running_pod() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "brokensrc", "").with_private_plugins();
    agent.start();
    agent.add_pod("keep", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("keep", MINUTE, |p| phase(p) == "Running")
        .await;
    agent.terminate();

    // A half-finished upgrade: the file source's component is cut short.
    let wasm = agent.plugin_dir().join("file-source.wasm");
    let good = std::fs::read(&wasm).expect("file-source.wasm");
    std::fs::write(&wasm, &good[..good.len() / 2]).expect("truncate");
    agent.start();
    agent
        .wait_log("configured pod source is not running", MINUTE)
        .await;
    tokio::time::sleep(HOUSEKEEPING_ROUNDS).await;
    assert_eq!(
        agent.runtime_objects().await,
        (1, 1),
        "the pod of a source that did not load is not an orphan:\n{}",
        agent.log()
    );
    let health = agent.get_text("/healthz").await.unwrap_or_default();
    assert!(
        health.contains("pod source file-source failed") && health.contains("file-source.wasm"),
        "{health}"
    );
    let text = metrics(&agent).await;
    assert!(
        text.contains("wasmlet_pod_source_ready{source=\"file-source\"} 0"),
        "{text}"
    );
    let failures = text
        .lines()
        .find_map(|l| l.strip_prefix("wasmlet_pod_source_failures_total{source=\"file-source\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(failures.is_some_and(|n| n >= 1), "{text}");

    // Repaired while the agent runs, the source is loaded again (no restart)
    // and the pod adopted as it was.
    let tmp = wasm.with_extension("wasm.new");
    std::fs::write(&tmp, &good).expect("repair");
    std::fs::rename(&tmp, &wasm).expect("repair");
    agent.wait_log("pod source loaded on retry", MINUTE).await;
    let pod = agent
        .wait_pod("keep", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(restarts(&pod), 0);
    let give_up = tokio::time::Instant::now() + MINUTE;
    while agent.get_text("/healthz").await.as_deref() != Some("ok") {
        assert!(tokio::time::Instant::now() < give_up, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.add_pod("later", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("later", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(agent.runtime_objects().await, (2, 2));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_cannot_be_configured_are_named_by_healthz() {
    let node = Node::from_env();
    // staticPodPath is a file, and the manifest URL's host does not resolve.
    let mut agent = Daemon::new(
        &node,
        "noconf",
        "staticPodURL: http://no-such-host.invalid/pods.yaml\n",
    );
    std::fs::remove_dir_all(&agent.manifests).expect("rm");
    std::fs::write(&agent.manifests, "not a directory").expect("file");
    agent.start();
    let give_up = tokio::time::Instant::now() + MINUTE;
    let health = loop {
        let health = agent.get_text("/healthz").await.unwrap_or_default();
        if health.contains("http-source") || tokio::time::Instant::now() > give_up {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        health.contains("pod source file-source failed") && health.contains("staticPodPath"),
        "{health}\n{}",
        agent.log()
    );
    assert!(
        health.contains("pod source http-source failed") && health.contains("no-such-host"),
        "{health}"
    );
    agent.terminate();
}

/// Swaps `link` to point at `target`, atomically (a new link renamed over it).
fn swap_symlink(link: &std::path::Path, target: &std::path::Path) {
    let tmp = link.with_extension("swap");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).expect("symlink");
    std::fs::rename(&tmp, link).expect("swap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_source_follows_a_swapped_or_vanished_directory() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "swapdir", "");
    let (a, b) = (agent.dir.join("a"), agent.dir.join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).expect("dir");
    }
    std::fs::remove_dir_all(&agent.manifests).expect("rm");
    std::os::unix::fs::symlink(&a, &agent.manifests).expect("symlink");
    let one = pod_yaml("one", &node.test_image, &["sleep", "3600"], "");
    let two = pod_yaml("two", &node.test_image, &["sleep", "3600"], "");
    std::fs::write(a.join("one.yaml"), &one).expect("write");
    std::fs::write(b.join("two.yaml"), &two).expect("write");
    agent.start();
    agent
        .wait_pod("one", MINUTE, |p| phase(p) == "Running")
        .await;

    // The directory is swapped: what the new one holds is what runs.
    swap_symlink(&agent.manifests, &b);
    agent
        .wait_pod("two", MINUTE, |p| phase(p) == "Running")
        .await;
    agent.wait_gone("one", MINUTE).await;

    // The directory goes away: a failed snapshot, not an empty one.
    std::fs::remove_dir_all(&b).expect("rm");
    agent.wait_log("granted directory", MINUTE).await;
    tokio::time::sleep(HOUSEKEEPING_ROUNDS).await;
    assert_eq!(agent.runtime_objects().await, (1, 1), "{}", agent.log());
    assert!(agent.pod("two").await.is_some());

    // Back, with the same manifest: the same pod, not restarted.
    std::fs::create_dir_all(&b).expect("dir");
    std::fs::write(b.join("two.yaml"), &two).expect("write");
    std::fs::write(
        b.join("three.yaml"),
        pod_yaml("three", &node.test_image, &["sleep", "3600"], ""),
    )
    .expect("write");
    agent
        .wait_pod("three", MINUTE, |p| phase(p) == "Running")
        .await;
    let pod = agent.pod("two").await.expect("two");
    assert_eq!(restarts(&pod), 0);
    assert_eq!(agent.runtime_objects().await, (2, 2));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_manifest_is_read() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "symfile");
    let elsewhere = agent.dir.join("kept.yaml");
    std::fs::write(
        &elsewhere,
        pod_yaml("linked", &node.test_image, &["sleep", "3600"], ""),
    )
    .expect("write");
    // Inside the granted directory, pointing at a file in it.
    std::fs::write(
        agent.manifests.join(".real.yaml"),
        pod_yaml("inside", &node.test_image, &["sleep", "3600"], ""),
    )
    .expect("write");
    std::os::unix::fs::symlink(".real.yaml", agent.manifests.join("inside.yaml")).expect("link");
    // Pointing out of it: not followed, and reported by name.
    std::os::unix::fs::symlink(&elsewhere, agent.manifests.join("outside.yaml")).expect("link");
    agent
        .wait_pod("inside", MINUTE, |p| phase(p) == "Running")
        .await;
    agent.wait_log("outside.yaml", MINUTE).await;
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_is_one_pods_whatever_the_manifests_say() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "uids");
    let with_uid = |name: &str, uid: &str| {
        pod_yaml(name, &node.test_image, &["sleep", "3600"], "").replace(
            &format!("name: {name}\n"),
            &format!("name: {name}\n  uid: {uid}\n"),
        )
    };
    agent.write_manifest("a.yaml", &with_uid("a", "shared-uid"));
    agent.write_manifest("b.yaml", &with_uid("b", "shared-uid"));
    agent.write_manifest("c.yaml", &with_uid("c", "../../../escape"));
    agent.wait_pod("a", MINUTE, |p| phase(p) == "Running").await;
    agent
        .wait_log(
            "metadata.uid \"shared-uid\" is already the UID of pod a-",
            MINUTE,
        )
        .await;
    agent.wait_log("metadata.uid: Invalid value", MINUTE).await;
    tokio::time::sleep(HOUSEKEEPING_ROUNDS).await;
    assert!(agent.pod("b").await.is_none());
    assert!(agent.pod("c").await.is_none());
    assert_eq!(agent.runtime_objects().await, (1, 1));
    let logs: Vec<String> = std::fs::read_dir(agent.dir.join("logs"))
        .expect("log root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        logs,
        [format!("default_a-{}_shared-uid", agent.node_name)],
        "one pod log directory, inside the root"
    );
    assert!(!agent.dir.join("escape").exists());
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_manifest_is_one_files_problem() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "deepyaml");
    // ~620 bytes of nested mappings: once enough to trap the file source on
    // every scan, so that no other manifest was seen.
    let mut deep = String::from("apiVersion: v1\nkind: Pod\nmetadata:\n  name: deep\n  labels:\n");
    for level in 0..32 {
        deep.push_str(&" ".repeat(4 + level));
        deep.push_str("a:\n");
    }
    agent.write_manifest("deep.yaml", &deep);
    agent.write_manifest(
        "flow.yaml",
        &format!(
            "kind: Pod\nspec: {}{}\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        ),
    );
    agent.add_pod("fine", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("fine", MINUTE, |p| phase(p) == "Running")
        .await;
    agent.wait_log("deep.yaml", MINUTE).await;
    agent.wait_log("flow.yaml", MINUTE).await;
    // The source still sees changes.
    agent.add_pod("later", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("later", MINUTE, |p| phase(p) == "Running")
        .await;
    assert!(!agent.log().contains("trapped"), "{}", agent.log());
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_values_stop_the_start_naming_the_field() {
    let node = Node::from_env();
    for (line, field) in [
        ("relistPeriod: 0s\n", "relistPeriod"),
        // (`syncFrequency: 0s` is the kubelet's default, as kubeadm writes it.)
        ("containerLogMaxFiles: 1\n", "containerLogMaxFiles"),
        ("nodeNmae: typo\n", "nodeNmae"),
        (
            "pluginGrants:\n  file-source:\n    read-dirs: [/tmp/../etc]\n",
            "pluginGrants.file-source.read-dirs",
        ),
    ] {
        let mut agent = Daemon::new(&node, "badconf", line);
        agent.start();
        let status = agent.wait_exit(MINUTE).await.expect("the agent exits");
        assert!(!status.success(), "{line}");
        assert!(agent.log().contains(field), "{line}: {}", agent.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_fail_closed_admission_plugin_admits_nothing_and_stops_what_it_refuses() {
    let node = Node::from_env();
    let mut agent = Daemon::started(&node, "failclosed");
    agent.add_pod("before", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("before", MINUTE, |p| phase(p) == "Running")
        .await;
    agent.terminate();

    // The operator now requires a policy that is not in the directory.
    agent.set_config("admissionPlugins: [node-resources, site-policy]\n");
    agent.start();
    let pod = agent
        .wait_pod("before", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(pod["status"]["reason"], "AdmissionPluginUnavailable");
    let message = pod["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("site-policy"), "{message}");
    // Stopped, and it stays rejected.
    agent.wait_runtime_objects((1, 1), MINUTE).await;
    let give_up = tokio::time::Instant::now() + MINUTE;
    loop {
        let runtime = node.client();
        let running = wasmlet_core::ContainerRuntime::list_containers(
            &runtime,
            &wasmlet_core::ContainerFilter {
                labels: [("io.wasmlet.agent".to_owned(), agent.node_name.clone())].into(),
                state: Some(wasmlet_core::ContainerState::Running),
                ..Default::default()
            },
        )
        .await
        .expect("list");
        if running.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "still running:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(HOUSEKEEPING_ROUNDS).await;
    let pod = agent.pod("before").await.expect("listed");
    assert_eq!(pod["status"]["reason"], "AdmissionPluginUnavailable");

    agent.add_pod("after", &node.test_image, &["sleep", "3600"]);
    let after = agent
        .wait_pod("after", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(after["status"]["reason"], "AdmissionPluginUnavailable");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_endpoint_drops_a_client_that_sends_nothing() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "slowloris", "");
    agent.soft_open_files = Some(256);
    agent.start();
    let give_up = tokio::time::Instant::now() + MINUTE;
    while agent.get_text("/healthz").await.is_none() {
        assert!(tokio::time::Instant::now() < give_up, "not serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut silent = tokio::net::TcpStream::connect(agent.address)
        .await
        .expect("connect");
    silent
        .write_all(b"GET /pods HTTP/1.1\r\n")
        .await
        .expect("half a request");
    let mut buf = [0u8; 512];
    // The endpoint allows 10 s for a request head (hyper alone would wait 30 s).
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "a client that never finishes its request head is cut off"
    );
    assert_eq!(agent.get_text("/healthz").await.as_deref(), Some("ok"));

    // Started with a soft open-file limit of 256, the agent raised it to the hard one.
    let pid = agent.pid().expect("running");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().skip(3).take(2).collect())
        .unwrap_or_default();
    assert_eq!(open_files.len(), 2, "{limits}");
    assert_eq!(open_files[0], open_files[1], "soft = hard: {limits}");
    assert_ne!(open_files[0], "256");
    agent.finish().await;
}

/// A manifest server whose behaviour the test switches: the pods, a body
/// shorter than it announces, or silence after the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Serve {
    Pods,
    Short,
    Silent,
}

async fn manifest_server(
    body: String,
) -> (std::net::SocketAddr, tokio::sync::watch::Sender<Serve>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (mode, modes) = tokio::sync::watch::channel(Serve::Pods);
    tokio::spawn(async move {
        // Bounded: a test runs for minutes, at one fetch a second.
        for _ in 0..2_000 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let serve = *modes.borrow();
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request).await;
                match serve {
                    Serve::Pods => {
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
                    }
                    Serve::Short => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                            body.len() + 100
                        );
                        let _ = conn
                            .write_all(format!("{head}{}", &body[..body.len() / 2]).as_bytes())
                            .await;
                    }
                    Serve::Silent => tokio::time::sleep(Duration::from_secs(120)).await,
                }
            });
        }
    });
    (address, mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_or_silent_manifest_url_keeps_the_last_pods() {
    let node = Node::from_env();
    let (address, mode) = manifest_server(pod_yaml(
        "fromurl",
        &node.test_image,
        &["sleep", "3600"],
        "",
    ))
    .await;
    let mut agent = Daemon::new(
        &node,
        "urlfail",
        &format!("staticPodURL: http://{address}/pods.yaml\nhttpCheckFrequency: 1s\n"),
    );
    agent.start();
    agent
        .wait_pod("fromurl", MINUTE, |p| phase(p) == "Running")
        .await;

    mode.send(Serve::Short).expect("server");
    agent
        .wait_log("reading the body: incomplete HTTP response", MINUTE)
        .await;
    mode.send(Serve::Silent).expect("server");
    // Cut at the source's 10 s deadline (a silent server once held it for 10 minutes).
    agent
        .wait_log("next-snapshot: deadline of 10s exceeded", MINUTE)
        .await;
    tokio::time::sleep(HOUSEKEEPING_ROUNDS).await;
    let pod = agent.pod("fromurl").await.expect("kept");
    assert_eq!(phase(&pod), "Running");
    assert_eq!(restarts(&pod), 0);

    mode.send(Serve::Pods).expect("server");
    agent.set_config("");
    agent.terminate();
    // Without the URL the pod is no one's: the agent removes it.
    agent.start();
    agent.wait_gone("fromurl", MINUTE).await;
    agent.finish().await;
}

/// The hostile admission plugin (plugins/testing/hostile), added to `agent`'s
/// plugin directory with `limits`.
fn add_hostile_admission(agent: &Daemon, limits: &str) {
    let wasm =
        wasmlet_tests::daemon::repo().join("plugins/target/wasm32-wasip2/release/hostile.wasm");
    std::fs::copy(&wasm, agent.plugin_dir().join("hostile.wasm")).expect("hostile.wasm");
    std::fs::write(
        agent.plugin_dir().join("hostile.toml"),
        format!(
            "kind = \"admission\"\nwit = \"0.1.0\"\n[settings]\nmode = \"ok\"\n[limits]\n{limits}"
        ),
    )
    .expect("hostile.toml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thinking_admission_plugin_stalls_nothing_else_and_is_capped() {
    let node = Node::from_env();
    let mut agent = Daemon::new(
        &node,
        "thinker",
        "pluginLimits:\n  maxAdmissionDeadline: 20s\n",
    )
    .with_private_plugins();
    add_hostile_admission(&agent, "deadline-ms = 120000\n");
    agent.start();
    agent.add_pod("steady", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("steady", MINUTE, |p| phase(p) == "Running")
        .await;
    agent
        .wait_log("pluginLimits: deadline 120s capped to 20s", MINUTE)
        .await;

    // A pod the plugin thinks about for ever (up to the operator's cap).
    let thinker = pod_yaml("thinker", &node.test_image, &["sleep", "3600"], "").replace(
        "name: thinker\n",
        "name: thinker\n  labels:\n    mode: loop\n",
    );
    agent.write_manifest("thinker.yaml", &thinker);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let judging_since = tokio::time::Instant::now();
    // Meanwhile the node's other work goes on: `steady` is stopped and removed.
    agent.remove_manifest("steady.yaml");
    agent
        .wait_runtime_objects((0, 0), Duration::from_secs(10))
        .await;
    assert!(
        agent.pod("thinker").await.is_none(),
        "no verdict yet after {:?}",
        judging_since.elapsed()
    );
    // The plugin asked for 120 s; the operator allows 20 s: then fail-closed.
    let pod = agent
        .wait_pod("thinker", MINUTE, |p| phase(p) == "Failed")
        .await;
    let message = pod["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("hostile") && message.contains("20s"),
        "{message}"
    );
    agent.finish().await;
}

/// A pod of `containers`, each running `sleep 3600` with the probes `probes`
/// (YAML lines at container level).
fn probed_pod(name: &str, image: &str, containers: usize, probes: &str) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n"
    );
    for n in 0..containers {
        yaml.push_str(&format!(
            "  - name: c{n}\n    image: {image}\n    command: [sleep, '3600']\n{probes}"
        ));
    }
    yaml
}

/// Readiness probes of `hog` that each hold a probe-exec slot for 20 s.
const HOG_PROBES: &str =
    "    readinessProbe: {exec: {command: [sleep, '20']}, timeoutSeconds: 30, periodSeconds: 1}\n";
/// Probes of `calm` that answer at once: a liveness failure restarts it.
const CALM_PROBES: &str = "    livenessProbe: {exec: {command: ['true']}, timeoutSeconds: 1, periodSeconds: 1, failureThreshold: 1}\n    readinessProbe: {exec: {command: ['true']}, timeoutSeconds: 1, periodSeconds: 1}\n";

fn unhealthy_events(events: &[Value], pod: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["reason"] == "Unhealthy")
        .filter(|e| {
            e["involvedObject"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(pod))
        })
        .map(|e| e["message"].to_string())
        .collect()
}

/// An agent whose probe-exec has `slots` slots (it asks for 64), running
/// `hog` with `hog_containers` hanging probes, then `calm`.
async fn hog_and_calm(node: &Node, tag: &str, slots: u32, hog_containers: usize) -> Daemon {
    let mut agent = Daemon::new(
        node,
        tag,
        &format!("pluginLimits:\n  maxConcurrency: {slots}\n"),
    );
    agent.start();
    agent.write_manifest(
        "hog.yaml",
        &probed_pod("hog", &node.test_image, hog_containers, HOG_PROBES),
    );
    agent
        .wait_pod("hog", MINUTE, |p| phase(p) == "Running")
        .await;
    // Time for the hog's probes to take their slots.
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.write_manifest(
        "calm.yaml",
        &probed_pod("calm", &node.test_image, 1, CALM_PROBES),
    );
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_probes_hang_does_not_starve_another_pods() {
    let node = Node::from_env();
    // Two slots: a pod may hold one, whatever it asks.
    let agent = hog_and_calm(&node, "probefair", 2, 2).await;
    let calm = agent
        .wait_pod("calm", Duration::from_secs(20), |p| {
            first_container(p)["ready"] == true
        })
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calm = agent.pod("calm").await.unwrap_or(calm);
    assert_eq!(restarts(&calm), 0, "{calm}");
    let unhealthy = unhealthy_events(&agent.events().await, "calm");
    assert!(unhealthy.is_empty(), "{unhealthy:?}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_finds_no_free_slot_is_unknown_and_restarts_nothing() {
    let node = Node::from_env();
    // One slot, held for 20 s at a time by `hog`'s probe.
    let agent = hog_and_calm(&node, "probebusy", 1, 1).await;
    agent
        .wait_pod("calm", MINUTE, |p| phase(p) == "Running")
        .await;
    let unknown =
        "prober_probe_total{probe_type=\"Liveness\",result=\"unknown\",container=\"c0\",pod=\"calm";
    let give_up = tokio::time::Instant::now() + MINUTE;
    while !probe_metrics(&agent).await.contains(unknown) {
        assert!(
            tokio::time::Instant::now() < give_up,
            "{}",
            probe_metrics(&agent).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calm = agent.pod("calm").await.expect("calm");
    assert_eq!(
        restarts(&calm),
        0,
        "a probe that did not run restarts nothing: {calm}"
    );
    let unhealthy = unhealthy_events(&agent.events().await, "calm");
    assert!(unhealthy.is_empty(), "{unhealthy:?}");
    assert!(
        agent
            .log()
            .contains("did not run: every slot was busy for 1s"),
        "{}",
        agent.log()
    );
    agent.finish().await;
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn failed_probes(agent: &Daemon, pod: &str) -> u64 {
    let prefix = format!(
        "prober_probe_total{{probe_type=\"Readiness\",result=\"failed\",container=\"main\",pod=\"{pod}"
    );
    probe_metrics(agent)
        .await
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_of_exec_probe_output_leave_the_agents_memory_flat() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "chatty");
    let manifest = pod_yaml("chatty", &node.test_image, &["sleep", "3600"], "").replace(
        "    command: [\"sleep\", \"3600\"]\n",
        "    command: [\"sleep\", \"3600\"]\n    readinessProbe: {exec: {command: [sh, -c, 'head -c 8000000 /dev/zero; exit 1']}, periodSeconds: 1, timeoutSeconds: 5}\n",
    );
    agent.write_manifest("chatty.yaml", &manifest);
    let pid = agent.pid().expect("running");
    let wait_for = |n: u64| {
        let agent = &agent;
        async move {
            let give_up = tokio::time::Instant::now() + MINUTE;
            while failed_probes(agent, "chatty").await < n {
                assert!(tokio::time::Instant::now() < give_up, "{}", agent.log());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Warm: allocator pools and plugin instances are in place.
    wait_for(5).await;
    let warm = rss_kib(pid);
    wait_for(30).await;
    let after = rss_kib(pid);
    println!("agent RSS after 5 probes of 8 MB output: {warm} KiB; after 30: {after} KiB");
    assert!(
        after <= warm + 24 * 1024,
        "the agent grew from {warm} KiB to {after} KiB"
    );
    let pod = agent.pod("chatty").await.expect("chatty");
    assert_eq!(first_container(&pod)["ready"], false);
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_plugin_hoarding_sockets_gets_sixteen_and_cannot_listen() {
    let node = Node::from_env();
    // The tcpSocket probe handler replaced by one that hoards sockets
    // (plugins/testing/hostile-probe), granted only the probed pod's IP.
    let mut agent = Daemon::new(&node, "hoarder", "").with_private_plugins();
    let wasm = wasmlet_tests::daemon::repo()
        .join("plugins/target/wasm32-wasip2/release/hostile_probe.wasm");
    std::fs::copy(&wasm, agent.plugin_dir().join("probe-tcp-socket.wasm")).expect("wasm");
    agent.start();
    let manifest = pod_yaml(
        "hoarder",
        &node.test_image,
        &["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"],
        "",
    )
    .replace(
        "    command: [",
        "    ports: [{name: wasi-first, containerPort: 8080}, {name: listen, containerPort: 9090}]\n    readinessProbe: {tcpSocket: {port: wasi-first}, periodSeconds: 1}\n    livenessProbe: {tcpSocket: {port: listen}, periodSeconds: 1}\n    command: [",
    );
    agent.write_manifest("hoarder.yaml", &manifest);
    // WASI sockets and `net` share one cap of 16.
    agent.wait_log("held 8 wasi + 8 net", MINUTE).await;
    // No listening: the bind is refused, and nothing listens on 9090.
    agent.wait_log("TcpBind 0.0.0.0:9090", MINUTE).await;
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    assert!(
        !listening
            .lines()
            .any(|l| l.contains(":2382 ") && l.contains(" 0A ")),
        "{listening}"
    );
    // A probe that could not run restarts nothing; the agent is fine.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = agent.pod("hoarder").await.expect("hoarder");
    assert_eq!(restarts(&pod), 0, "{pod}");
    assert_eq!(agent.get_text("/healthz").await.as_deref(), Some("ok"));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_task_that_dies_takes_the_process_down_and_no_pod() {
    let node = Node::from_env();
    let mut agent = Daemon::started(&node, "zombie");
    agent.add_pod("stays", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("stays", MINUTE, |p| phase(p) == "Running")
        .await;
    for task in ["read-only port server", "agent", "pod source file-source"] {
        agent.terminate();
        // A debug build's failpoint: the task panics a second after start.
        agent.env = vec![("WASMLET_FAIL_TASK".into(), task.into())];
        agent.start();
        let status = agent
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("still running with {task} dead:\n{}", agent.log()));
        assert!(!status.success(), "{task}: {status}");
        assert!(
            agent
                .log()
                .contains(&format!("core task {task} panicked: failpoint")),
            "{}",
            agent.log()
        );
        assert_eq!(agent.runtime_objects().await, (1, 1), "the pod runs on");
    }
    // Started again as a service manager would: the pod is adopted as it was.
    agent.env.clear();
    agent.start();
    let pod = agent
        .wait_pod("stays", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(restarts(&pod), 0);
    agent.finish().await;
}
