//! Probes and lifecycle hooks through the agent (`wasmlet run`) against the
//! real containerd, with the busybox image (httpd, sh).

use std::time::Duration;

use serde_json::Value;
use wasmlet_core::{ContainerRuntime, ExecTimeout};
use wasmlet_tests::Node;
use wasmlet_tests::daemon::{Daemon, condition, first_container, phase};

const MINUTE: Duration = Duration::from_secs(60);

fn ready(pod: &Value) -> bool {
    first_container(pod)["ready"] == true
}

fn restarts(pod: &Value) -> i64 {
    first_container(pod)["restartCount"].as_i64().unwrap_or(-1)
}

/// A pod whose one container runs `command`, with `extra` YAML under the
/// container (probes, lifecycle) and `spec` lines under the spec.
fn pod(name: &str, image: &str, command: &str, extra: &str, spec: &str) -> String {
    format!(
        "kind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 3\n{spec}  containers:\n  - name: main\n    image: {image}\n    command: {command}\n    ports: [{{name: http, containerPort: 8080}}]\n{extra}"
    )
}

/// httpd on 8080 serving `/` (an index page) and a 404 for anything missing.
const HTTPD: &str = "[sh, -c, 'echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp']";

fn has_event(events: &[Value], reason: &str, text: &str) -> bool {
    events
        .iter()
        .any(|e| e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_probe_kind_passes_and_fails() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "kinds");
    let image = &node.test_image;
    let readiness = |handler: &str| {
        format!("    readinessProbe: {{{handler}, periodSeconds: 1, failureThreshold: 1}}\n")
    };
    let cases = [
        ("http-pass", "httpGet: {path: /, port: http}", true),
        ("http-fail", "httpGet: {path: /missing, port: 8080}", false),
        ("tcp-pass", "tcpSocket: {port: 8080}", true),
        ("tcp-fail", "tcpSocket: {port: 9999}", false),
        ("exec-pass", "exec: {command: [sh, -c, 'true']}", true),
        ("exec-fail", "exec: {command: [sh, -c, 'exit 1']}", false),
        (
            "exec-timeout",
            "exec: {command: [sleep, '5']}, timeoutSeconds: 1",
            false,
        ),
    ];
    for (name, handler, _) in &cases {
        agent.write_manifest(
            &format!("{name}.yaml"),
            &pod(name, image, HTTPD, &readiness(handler), ""),
        );
    }
    for (name, _, pass) in &cases {
        let pod = agent
            .wait_pod(name, MINUTE, |p| phase(p) == "Running" && ready(p) == *pass)
            .await;
        if !pass {
            // Give a failing readiness probe a few rounds: still not ready, never restarted.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let pod = agent.pod(name).await.expect("listed");
            assert!(!ready(&pod), "{name}");
            assert_eq!(restarts(&pod), 0, "{name}: readiness never restarts");
            assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));
        } else {
            assert_eq!(condition(&pod, "Ready").as_deref(), Some("True"), "{name}");
        }
    }
    let events = agent.events().await;
    assert!(has_event(
        &events,
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 404"
    ));
    assert!(
        has_event(&events, "Unhealthy", "timeout"),
        "the exec timeout is a failure"
    );
    // The prober's metrics are apart, as the kubelet serves them.
    let metrics = agent.get_text("/metrics/probes").await.unwrap_or_default();
    assert!(
        metrics.contains("prober_probe_total{probe_type=\"Readiness\",result=\"successful\""),
        "{metrics}"
    );
    let (clean, said) = wasmlet_tests::promtool_check_metrics(&metrics);
    assert!(clean, "promtool check metrics:\n{said}\n{metrics}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_with_a_rising_count() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "liveness");
    agent.write_manifest(
        "live.yaml",
        &pod(
            "live",
            &node.test_image,
            HTTPD,
            "    livenessProbe: {httpGet: {path: /missing, port: 8080}, periodSeconds: 1, failureThreshold: 2}\n",
            "",
        ),
    );
    let pod = agent
        .wait_pod("live", Duration::from_secs(90), |p| restarts(p) >= 2)
        .await;
    assert_eq!(phase(&pod), "Running");
    let events = agent.events().await;
    assert!(has_event(&events, "Unhealthy", "Liveness probe failed"));
    assert!(has_event(
        &events,
        "Killing",
        "failed liveness probe, will be restarted"
    ));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_probe_holds_off_liveness() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "startup");
    // The marker appears after 4 s. Liveness fails at once without it, so a
    // liveness probe that ran before startup succeeded would restart it.
    let check = "exec: {command: [test, -f, /tmp/started]}";
    agent.write_manifest(
        "slow.yaml",
        &pod(
            "slow",
            &node.test_image,
            "[sh, -c, 'sleep 4; touch /tmp/started; exec sleep 3600']",
            &format!(
                "    startupProbe: {{{check}, periodSeconds: 1, failureThreshold: 30}}\n    livenessProbe: {{{check}, periodSeconds: 1, failureThreshold: 1}}\n"
            ),
            "",
        ),
    );
    let pod = agent
        .wait_pod("slow", MINUTE, |p| first_container(p)["started"] == true)
        .await;
    assert_eq!(restarts(&pod), 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = agent.pod("slow").await.expect("listed");
    assert_eq!(restarts(&pod), 0, "liveness passes once started");
    assert!(ready(&pod));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_probe_checks_a_health_server() {
    let node = Node::from_env();
    let port = wasmlet_tests::grpc_health::serve().await;
    // A host-network pod: its IP is the node's, where the health server listens.
    let mut agent = Daemon::new(&node, "grpc", "nodeIP: 127.0.0.1\n");
    agent.start();
    for (name, service, pass) in [("serving", "db", true), ("notserving", "down", false)] {
        // Host-network pods share the node's ports: no declared port here.
        let manifest = pod(
            name,
            &node.test_image,
            "[sleep, '3600']",
                &format!("    readinessProbe: {{grpc: {{port: {port}, service: {service}}}, periodSeconds: 1, failureThreshold: 1}}\n"),
            "  hostNetwork: true\n",
        )
        .replace("    ports: [{name: http, containerPort: 8080}]\n", "");
        agent.write_manifest(&format!("{name}.yaml"), &manifest);
        let pod = agent
            .wait_pod(name, MINUTE, |p| phase(p) == "Running" && ready(p) == pass)
            .await;
        assert_eq!(pod["status"]["podIP"], "127.0.0.1");
    }
    agent.wait_event("Unhealthy", "NOT_SERVING", MINUTE).await;
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_probe_accepts_a_self_signed_certificate() {
    let node = Node::from_env();
    let port = wasmlet_tests::https::serve().await;
    // As the grpc case: a host-network pod, so the pod IP is where the server is.
    let mut agent = Daemon::new(&node, "https", "nodeIP: 127.0.0.1\n");
    agent.start();
    for (name, path, pass) in [("https-ok", "/ok", true), ("https-fail", "/fail", false)] {
        let manifest = pod(
            name,
            &node.test_image,
            "[sleep, '3600']",
            &format!("    readinessProbe: {{httpGet: {{scheme: HTTPS, path: {path}, port: {port}}}, periodSeconds: 1, failureThreshold: 1}}\n"),
            "  hostNetwork: true\n",
        )
        .replace("    ports: [{name: http, containerPort: 8080}]\n", "");
        agent.write_manifest(&format!("{name}.yaml"), &manifest);
        agent
            .wait_pod(name, MINUTE, |p| phase(p) == "Running" && ready(p) == pass)
            .await;
    }
    agent
        .wait_event(
            "Unhealthy",
            "HTTP probe failed with statuscode: 500",
            MINUTE,
        )
        .await;
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_start_runs_before_the_container_goes_on_and_a_failing_one_restarts_it() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "poststart");
    // The container waits for the file postStart writes; without it, it exits 1.
    agent.write_manifest(
        "seen.yaml",
        &pod(
            "seen",
            &node.test_image,
            "[sh, -c, 'for i in $(seq 100); do [ -f /tmp/hook ] && exec sleep 3600; sleep 0.1; done; exit 1']",
            "    lifecycle: {postStart: {exec: {command: [sh, -c, 'echo hi > /tmp/hook']}}}\n",
            "",
        ),
    );
    agent.write_manifest(
        "failing.yaml",
        &pod(
            "failing",
            &node.test_image,
            "[sleep, '3600']",
            "    lifecycle: {postStart: {exec: {command: [sh, -c, 'exit 4']}}}\n",
            "",
        ),
    );
    agent
        .wait_pod("seen", MINUTE, |p| phase(p) == "Running" && ready(p))
        .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let seen = agent.pod("seen").await.expect("listed");
    assert_eq!(
        restarts(&seen),
        0,
        "the container saw the hook's file: {seen}"
    );
    let failing = agent
        .wait_pod("failing", MINUTE, |p| restarts(p) >= 1)
        .await;
    assert!(restarts(&failing) >= 1);
    assert!(has_event(
        &agent.events().await,
        "FailedPostStartHook",
        "exited with 4"
    ));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_stop_runs_before_sigterm_and_a_hung_one_is_cut_at_the_grace() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "prestop");
    // On SIGTERM the container says whether preStop's file was there
    // already, in a host directory (its logs go with the pod).
    let out = agent.dir.join("out");
    agent.write_manifest(
        "observer.yaml",
        &pod(
            "observer",
            &node.test_image,
            "[sh, -c, 'trap \"[ -f /tmp/prestop ] && echo PRESTOP-BEFORE-TERM > /out/said; exit 0\" TERM; while true; do sleep 0.1; done']",
            "    lifecycle: {preStop: {exec: {command: [touch, /tmp/prestop]}}}\n    volumeMounts: [{name: out, mountPath: /out}]\n",
            &format!(
                "  volumes: [{{name: out, hostPath: {{path: {}, type: DirectoryOrCreate}}}}]\n",
                out.display()
            ),
        ),
    );
    agent.write_manifest(
        "hung.yaml",
        &pod(
            "hung",
            &node.test_image,
            "[sleep, '3600']",
            "    lifecycle: {preStop: {exec: {command: [sleep, '600']}}}\n",
            "",
        ),
    );
    let observer = agent
        .wait_pod("observer", MINUTE, |p| phase(p) == "Running")
        .await;
    agent
        .wait_pod("hung", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(phase(&observer), "Running");

    agent.remove_manifest("observer.yaml");
    agent.remove_manifest("hung.yaml");
    agent.wait_gone("observer", MINUTE).await;
    // A preStop of 10 minutes, cut at the 3 s grace period.
    agent.wait_gone("hung", MINUTE).await;
    let said = std::fs::read_to_string(out.join("said")).unwrap_or_default();
    assert_eq!(said, "PRESTOP-BEFORE-TERM\n");
    assert!(has_event(
        &agent.events().await,
        "FailedPreStopHook",
        "did not finish"
    ));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_go_to_the_host_they_name_or_the_node_for_host_network_pods() {
    let node = Node::from_env();
    // No nodeIP: the agent finds the node's address itself.
    let agent = Daemon::started(&node, "targets");
    let image = &node.test_image;
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let serve = format!("[sh, -c, 'echo ok > /tmp/index.html; exec httpd -f -p {port} -h /tmp']");
    // A host-network server: probed at the node's address.
    agent.write_manifest(
        "onnode.yaml",
        &pod(
            "onnode",
            image,
            &serve,
            &format!(
                "    readinessProbe: {{httpGet: {{path: /, port: {port}}}, periodSeconds: 1}}\n"
            ),
            "  hostNetwork: true\n",
        ),
    );
    // A pod whose probes name a host: checked from the node, by name and by IP.
    agent.write_manifest(
        "named.yaml",
        &pod(
            "named",
            image,
            "[sleep, '3600']",
            &format!(
                "    readinessProbe: {{httpGet: {{host: localhost, path: /, port: {port}}}, periodSeconds: 1}}\n    livenessProbe: {{tcpSocket: {{host: 127.0.0.1, port: {port}}}, periodSeconds: 1}}\n"
            ),
            "",
        ),
    );
    let onnode = agent.wait_pod("onnode", MINUTE, ready).await;
    let pod_ip = onnode["status"]["podIP"].as_str().unwrap_or_default();
    assert!(
        !pod_ip.is_empty() && pod_ip != "127.0.0.1",
        "the node's address: {onnode}"
    );
    assert_eq!(
        onnode["status"]["hostIP"].as_str(),
        Some(pod_ip),
        "{onnode}"
    );
    let named = agent.wait_pod("named", MINUTE, ready).await;
    assert_eq!(restarts(&named), 0, "the liveness probe passes: {named}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_is_probed_and_its_readiness_is_the_pod_s() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "sideprobe");
    let image = &node.test_image;
    agent.write_manifest(
        "sided.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: sided}}\nspec:\n  terminationGracePeriodSeconds: 1\n  initContainers:\n  - name: proxy\n    image: {image}\n    restartPolicy: Always\n    command: [sleep, '3600']\n    readinessProbe: {{exec: {{command: [test, -f, /tmp/ready]}}, periodSeconds: 1}}\n  containers:\n  - {{name: app, image: {image}, command: [sleep, '3600']}}\n"
        ),
    );
    let sidecar = |pod: &Value| {
        pod["status"]["initContainerStatuses"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == "proxy"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let pod = agent
        .wait_pod("sided", MINUTE, |p| phase(p) == "Running")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod = agent.pod("sided").await.unwrap_or(pod);
    assert_eq!(sidecar(&pod)["ready"], false, "{pod}");
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"), "{pod}");
    // Its probe passes once the file is there: the sidecar, then the pod, is ready.
    let id = sidecar(&pod)["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("sidecar id")
        .to_owned();
    let touch = ["touch".to_owned(), "/tmp/ready".to_owned()];
    node.client()
        .exec_sync(&id.into(), &touch, ExecTimeout::After(MINUTE))
        .await
        .expect("exec");
    let pod = agent
        .wait_pod("sided", MINUTE, |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    assert_eq!(sidecar(&pod)["ready"], true, "{pod}");
    agent.finish().await;
}
