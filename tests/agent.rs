//! The agent (`wasmlet run`) against the real containerd: static pods from a
//! manifest directory, through the built-in admission plugins, to running
//! containers and back to nothing.

use std::time::Duration;

use serde_json::Value;
use wasmlet_core::{ContainerRuntime, ExecTimeout, SandboxRuntime};
use wasmlet_tests::daemon::{Daemon, condition, first_container, phase, pod_yaml, waiting_reason};
use wasmlet_tests::{Node, http_get, promtool_check_metrics};

const MINUTE: Duration = Duration::from_secs(60);

fn restarts(pod: &Value) -> i64 {
    first_container(pod)["restartCount"].as_i64().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pod_runs_with_an_ip_is_ready_and_leaves_nothing_behind() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "web", "");
    agent.start();
    agent.write_manifest(
        "web.yaml",
        &pod_yaml("web", &node.test_image, &["httpd", "-f", "-p", "8080"], ""),
    );
    let pod = agent
        .wait_pod("web", MINUTE, |p| {
            phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    let ip: std::net::IpAddr = pod["status"]["podIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .expect("a pod IP");
    let response = http_get(ip, 8080, Duration::from_secs(10))
        .await
        .expect("httpd answers on the pod IP");
    assert!(response.starts_with("HTTP/1."), "{response}");
    let reasons: Vec<String> = agent
        .events()
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    for expected in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected} in {reasons:?}"
        );
    }
    assert_eq!(agent.runtime_objects().await, (1, 1));
    assert_eq!(agent.get_text("/healthz").await.as_deref(), Some("ok"));
    // The gauges follow housekeeping (every 2 s).
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = agent.get_text("/metrics").await.unwrap_or_default();
        if metrics.contains("kubelet_running_pods 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in [
        "kubelet_running_pods 1",
        "kubelet_pod_start_duration_seconds_count 1",
        "kubelet_pleg_relist_duration_seconds_count",
        "kubelet_pod_worker_duration_seconds_count{operation=\"create\"}",
        "wasmlet_plugin_calls_total{plugin=\"node-resources\",call=\"admit\"}",
    ] {
        assert!(metrics.contains(name), "{name} in:\n{metrics}");
    }
    // Prometheus's own linter reads it as a scraper would.
    let (clean, said) = promtool_check_metrics(&metrics);
    assert!(clean, "promtool check metrics:\n{said}\n{metrics}");

    // A sandbox that dies is recreated, with the next attempt.
    let runtime = node.client();
    let sandbox = runtime
        .list_sandboxes(&wasmlet_core::SandboxFilter {
            labels: [("io.wasmlet.agent".to_owned(), agent.node_name.clone())].into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .remove(0);
    runtime
        .stop_sandbox(&sandbox.id)
        .await
        .expect("stop the sandbox");
    agent
        .wait_pod("web", MINUTE, |p| {
            phase(p) == "Running" && first_container(p)["containerID"] != pod_container_id(&pod)
        })
        .await;
    let attempts: Vec<u32> = runtime
        .list_sandboxes(&wasmlet_core::SandboxFilter {
            labels: [("io.wasmlet.agent".to_owned(), agent.node_name.clone())].into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .iter()
        .map(|s| s.metadata.attempt)
        .collect();
    assert!(
        attempts.contains(&1),
        "a new sandbox, attempt 1: {attempts:?}"
    );

    agent.remove_manifest("web.yaml");
    agent.wait_gone("web", MINUTE).await;
    assert_eq!(
        agent.runtime_objects().await,
        (0, 0),
        "every runtime object is gone"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_keeps_its_last_run_as_last_state() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "laststate");
    // Exits 3 when told to (SIGUSR1); otherwise runs on.
    let command = [
        "sh",
        "-c",
        "trap 'exit 3' USR1; while true; do sleep 0.2; done",
    ];
    agent.add_pod("again", &node.test_image, &command);
    let first = agent
        .wait_pod("again", MINUTE, |p| phase(p) == "Running")
        .await;
    let id = first_container(&first)["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("container id")
        .to_owned();
    let signal = ["kill".to_owned(), "-USR1".to_owned(), "1".to_owned()];
    node.client()
        .exec_sync(&id.as_str().into(), &signal, ExecTimeout::After(MINUTE))
        .await
        .expect("exec");
    agent
        .wait_pod("again", MINUTE, |p| {
            restarts(p) == 1 && first_container(p)["state"]["running"].is_object()
        })
        .await;
    // Several syncs (and garbage collections) later, still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = agent.pod("again").await.expect("listed");
    let container = first_container(&pod);
    assert!(container["state"]["running"].is_object(), "{container}");
    assert_eq!(
        container["lastState"]["terminated"]["exitCode"], 3,
        "{container}"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_manifest_replaces_the_pod_with_the_new_spec() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "edit", "");
    agent.start();
    agent.write_manifest(
        "app.yaml",
        &pod_yaml("app", &node.test_image, &["sleep", "3600"], ""),
    );
    let before = agent
        .wait_pod("app", MINUTE, |p| phase(p) == "Running")
        .await;
    let old_uid = before["metadata"]["uid"].clone();

    agent.write_manifest(
        "app.yaml",
        &pod_yaml("app", &node.test_image, &["sleep", "7200"], ""),
    );
    let after = agent
        .wait_pod("app", MINUTE, |p| {
            p["metadata"]["uid"] != old_uid && phase(p) == "Running"
        })
        .await;
    assert_eq!(after["spec"]["containers"][0]["command"][1], "7200");
    assert_ne!(
        first_container(&after)["containerID"],
        first_container(&before)["containerID"]
    );
    // The old pod's objects go once it has stopped: one sandbox, one container.
    agent.wait_runtime_objects((1, 1), MINUTE).await;
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_restarts_with_growing_back_off() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "crash", "");
    agent.start();
    agent.write_manifest(
        "crash.yaml",
        &pod_yaml(
            "crash",
            &node.test_image,
            &["sh", "-c", "sleep 1; exit 3"],
            "",
        ),
    );
    // Exits: 1st restarts at once, 2nd waits 10 s, 3rd is told to wait 20 s.
    let pod = agent
        .wait_pod("crash", Duration::from_secs(90), |p| {
            first_container(p)["state"]["waiting"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("back-off 20s"))
        })
        .await;
    let container = first_container(&pod);
    assert_eq!(waiting_reason(container), "CrashLoopBackOff");
    assert!(restarts(&pod) >= 2, "{container}");
    assert_eq!(container["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(container["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(
        phase(&pod),
        "Running",
        "restartPolicy Always keeps the pod Running"
    );
    let backoffs = agent
        .events()
        .await
        .iter()
        .filter(|e| e["reason"] == "BackOff")
        .count();
    assert!(backoffs >= 2, "a BackOff event per back-off");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_never_and_on_failure_are_honoured() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "policy", "");
    agent.start();
    agent.write_manifest(
        "never.yaml",
        &pod_yaml(
            "never",
            &node.test_image,
            &["sh", "-c", "exit 1"],
            "  restartPolicy: Never\n",
        ),
    );
    agent.write_manifest(
        "onfailure.yaml",
        &pod_yaml(
            "onfailure",
            &node.test_image,
            &["sh", "-c", "exit 0"],
            "  restartPolicy: OnFailure\n",
        ),
    );
    let never = agent
        .wait_pod("never", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(restarts(&never), 0);
    assert_eq!(
        first_container(&never)["state"]["terminated"]["reason"],
        "Error"
    );
    let done = agent
        .wait_pod("onfailure", MINUTE, |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(restarts(&done), 0);
    assert_eq!(
        first_container(&done)["state"]["terminated"]["reason"],
        "Completed"
    );
    // Finished pods keep their containers (for status and logs), not their sandboxes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let never = agent.pod("never").await.expect("still listed");
    assert_eq!(restarts(&never), 0, "Never: not restarted");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_serves_the_init_and_app_containers_and_goes_when_they_are_done() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "sidecar");
    let image = &node.test_image;
    // The init container and the app reach the sidecar's httpd: it must be up
    // before them. The app finishes after a while; under Never the pod is
    // then done, and the sidecar is stopped.
    let reach = "for i in $(seq 100); do wget -q -O- http://127.0.0.1:8081/ && exit 0; sleep 0.1; done; exit 1";
    agent.write_manifest(
        "sidecar.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: sidecar}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  initContainers:\n  - {{name: proxy, image: {image}, restartPolicy: Always, command: [sh, -c, 'echo up > /tmp/index.html; exec httpd -f -p 8081 -h /tmp']}}\n  - {{name: setup, image: {image}, command: [sh, -c, '{reach}']}}\n  containers:\n  - {{name: app, image: {image}, command: [sh, -c, '{reach} && sleep 3']}}\n"
        ),
    );
    let running = agent
        .wait_pod("sidecar", MINUTE, |p| phase(p) == "Running")
        .await;
    let inits = &running["status"]["initContainerStatuses"];
    assert!(inits[0]["state"]["running"].is_object(), "{inits}");
    assert_eq!(inits[1]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(condition(&running, "Initialized").as_deref(), Some("True"));

    let done = agent
        .wait_pod("sidecar", MINUTE, |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(first_container(&done)["state"]["terminated"]["exitCode"], 0);
    assert!(
        done["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object(),
        "the sidecar was stopped: {done}"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_and_a_failing_one_blocks_the_app() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "init", "");
    agent.start();
    let image = &node.test_image;
    agent.write_manifest(
        "ordered.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: ordered}}\nspec:\n  terminationGracePeriodSeconds: 2\n  initContainers:\n  - {{name: first, image: {image}, command: [sh, -c, 'sleep 1']}}\n  - {{name: second, image: {image}, command: [sh, -c, 'sleep 1']}}\n  containers:\n  - {{name: app, image: {image}, command: [sleep, '3600']}}\n"
        ),
    );
    agent.write_manifest(
        "blocked.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: blocked}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  initContainers:\n  - {{name: fails, image: {image}, command: [sh, -c, 'exit 7']}}\n  containers:\n  - {{name: app, image: {image}, command: [sleep, '3600']}}\n"
        ),
    );
    let ordered = agent
        .wait_pod("ordered", MINUTE, |p| phase(p) == "Running")
        .await;
    let inits = ordered["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses");
    let finished = |i: usize| {
        inits[i]["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let started = |i: usize| {
        inits[i]["state"]["terminated"]["startedAt"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(inits[1]["state"]["terminated"]["reason"], "Completed");
    assert!(
        finished(0) <= started(1),
        "second started after first finished: {inits:?}"
    );
    assert_eq!(condition(&ordered, "Initialized").as_deref(), Some("True"));

    let blocked = agent
        .wait_pod("blocked", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(
        blocked["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        7
    );
    let app = first_container(&blocked);
    assert_eq!(waiting_reason(app), "PodInitializing", "{app}");
    assert!(
        app["containerID"].is_null(),
        "the app container was never created"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_per_policy_and_a_missing_one_backs_off() {
    let node = Node::from_env();
    // IfNotPresent pulls only what is absent: make sure it is.
    wasmlet_core::ImageRuntime::remove_image(&node.client(), &node.pull_image)
        .await
        .expect("remove the pull image");
    let agent = Daemon::started(&node, "pull");
    agent.add_pod("pulled", &node.pull_image, &["sleep", "3600"]);
    agent.add_pod("missing", &node.missing_image, &["sleep", "3600"]);
    let pulled = agent
        .wait_pod("pulled", MINUTE, |p| phase(p) == "Running")
        .await;
    assert!(
        first_container(&pulled)["imageID"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{pulled}"
    );
    agent
        .wait_pod("missing", MINUTE, |p| {
            waiting_reason(first_container(p)) == "ErrImagePull"
        })
        .await;
    agent
        .wait_pod("missing", MINUTE, |p| {
            waiting_reason(first_container(p)) == "ImagePullBackOff"
        })
        .await;
    let events = agent.events().await;
    let pulled_from_registry = events.iter().any(|e| {
        e["reason"] == "Pulled"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Successfully pulled image"))
    });
    assert!(pulled_from_registry, "{events:?}");
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_plugins_reject_what_they_should_and_start_nothing() {
    let node = Node::from_env();
    let mut agent = Daemon::new(
        &node,
        "admit",
        "nodeLabels: {zone: east}\nregisterWithTaints:\n- {key: dedicated, value: infra, effect: NoExecute}\n",
    );
    agent.start();
    let image = &node.test_image;
    agent.write_manifest(
        "ports-a.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: ports-a}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {{name: main, image: {image}, command: [sleep, '3600'], ports: [{{containerPort: 80, hostPort: 18080}}]}}\n"
        ),
    );
    // Static pods are exempt from taints, as in the kubelet: it runs.
    agent
        .wait_pod("ports-a", MINUTE, |p| phase(p) == "Running")
        .await;

    let mut rejected = [
        (
            "hungry",
            "  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1'], resources: {requests: {cpu: '4000'}}}\n",
            "OutOfcpu",
        ),
        (
            "elsewhere",
            "  nodeSelector: {zone: west}\n  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1']}\n",
            "NodeAffinity",
        ),
        (
            "ports-b",
            "  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1'], ports: [{containerPort: 81, hostPort: 18080}]}\n",
            "NodePorts",
        ),
        // A field the runtime cannot honour yet: refused, not run without it.
        (
            "with-volume",
            "  volumes: [{name: data, configMap: {name: settings}}]\n  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1'], volumeMounts: [{name: data, mountPath: /data}]}\n",
            "UnsupportedPodSpec",
        ),
        (
            "windows",
            "  os: {name: windows}\n  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1']}\n",
            "PodOSNotSupported",
        ),
        (
            "with-nfs",
            "  volumes: [{name: data, nfs: {server: 10.0.0.1, path: /exports}}]\n  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1'], volumeMounts: [{name: data, mountPath: /data}]}\n",
            "UnsupportedPodSpec",
        ),
    ]
    .to_vec();
    // A kernel without AppArmor cannot confine a pod that asks for it.
    if !std::path::Path::new("/sys/kernel/security/apparmor").is_dir() {
        rejected.push((
            "confined",
            "  containers:\n  - {name: main, image: IMAGE, command: [sleep, '1'], securityContext: {appArmorProfile: {type: RuntimeDefault}}}\n",
            "AppArmor",
        ));
    }
    for (name, spec, _) in &rejected {
        agent.write_manifest(
            &format!("{name}.yaml"),
            &format!(
                "kind: Pod\nmetadata: {{name: {name}}}\nspec:\n{}",
                spec.replace("IMAGE", image)
            ),
        );
    }
    for (name, _, reason) in rejected {
        let pod = agent.wait_pod(name, MINUTE, |p| phase(p) == "Failed").await;
        assert_eq!(pod["status"]["reason"], reason, "{name}");
        assert!(
            pod["status"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Pod was rejected: ")),
            "{pod}"
        );
        let event = agent.events().await.into_iter().any(|e| {
            e["reason"] == reason
                && e["involvedObject"]["name"] == format!("{name}-{}", agent.node_name)
        });
        assert!(event, "a {reason} event for {name}");
    }
    for (name, says) in [
        (
            "with-volume",
            "spec.volumes[0].configMap: a static pod may not reference configMap volumes",
        ),
        (
            "with-nfs",
            "spec.volumes[0].nfs: nfs volumes is not implemented by wasmlet yet",
        ),
    ] {
        let pod = agent.wait_pod(name, MINUTE, |p| phase(p) == "Failed").await;
        let message = pod["status"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "names the field: {pod}");
    }
    assert_eq!(agent.runtime_objects().await, (1, 1), "only ports-a runs");
    let metrics = agent.get_text("/metrics").await.unwrap_or_default();
    assert!(
        metrics.contains("kubelet_admission_rejections_total{reason=\"OutOfcpu\"} 1"),
        "{metrics}"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_is_reported_and_the_good_ones_still_run() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "bad", "");
    agent.start();
    agent.write_manifest(
        "good.yaml",
        &pod_yaml("good", &node.test_image, &["sleep", "3600"], ""),
    );
    agent.write_manifest(
        "bad.yaml",
        "kind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - {name: main}\n",
    );
    agent
        .wait_pod("good", MINUTE, |p| phase(p) == "Running")
        .await;
    let log = agent.log();
    assert!(
        log.lines()
            .any(|l| l.contains("bad.yaml")
                && l.contains("spec.containers[0].image: Required value")),
        "the agent's log names the file and the field:\n{log}"
    );
    assert!(agent.pod("bad").await.is_none());
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_pod_from_two_sources_runs_once() {
    let node = Node::from_env();
    // A second file source, next to the built-in plugins, reading its own directory.
    let mut agent = Daemon::new(&node, "dup", "").with_private_plugins();
    let second_dir = agent.dir.join("second");
    let plugins = agent.plugin_dir().to_path_buf();
    std::fs::create_dir_all(&second_dir).expect("dir");
    let dir = second_dir.display().to_string();
    std::fs::write(
        plugins.join("second-files.toml"),
        format!(
            "kind = \"pod-source\"\nwit = \"0.1.0\"\ncomponent = \"file-source.wasm\"\n[settings]\npath = {dir:?}\n[capabilities]\nread-dirs = [{dir:?}]\n"
        ),
    )
    .expect("manifest");
    agent.start();
    let yaml = pod_yaml("twin", &node.test_image, &["sleep", "3600"], "");
    agent.write_manifest("twin.yaml", &yaml);
    std::fs::write(second_dir.join("twin.yaml"), &yaml).expect("write");

    agent
        .wait_pod("twin", MINUTE, |p| phase(p) == "Running")
        .await;
    agent.wait_log("already comes from source", MINUTE).await;
    assert_eq!(agent.pods().await.len(), 1);
    assert_eq!(agent.runtime_objects().await, (1, 1), "runs once");
    let _ = std::fs::remove_file(second_dir.join("twin.yaml"));
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_with_sigkill_or_stopped_adopts_its_pods_on_restart() {
    let node = Node::from_env();
    let mut agent = Daemon::new(&node, "adopt", "");
    agent.start();
    let image = &node.test_image;
    agent.write_manifest(
        "adopt.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: adopt}}\nspec:\n  terminationGracePeriodSeconds: 2\n  initContainers:\n  - {{name: once, image: {image}, command: [sh, -c, 'exit 0']}}\n  containers:\n  - {{name: main, image: {image}, command: [sleep, '3600']}}\n"
        ),
    );
    let before = agent
        .wait_pod("adopt", MINUTE, |p| phase(p) == "Running")
        .await;
    let init_id = before["status"]["initContainerStatuses"][0]["containerID"].clone();
    let main_id = first_container(&before)["containerID"].clone();

    agent.kill_9();
    agent.start();
    // Wait for the new agent's view, then give it several sync rounds.
    agent
        .wait_pod("adopt", MINUTE, |p| phase(p) == "Running")
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = agent.pod("adopt").await.expect("listed");
    assert_eq!(
        first_container(&after)["containerID"],
        main_id,
        "not restarted"
    );
    assert_eq!(restarts(&after), 0);
    assert_eq!(
        after["status"]["initContainerStatuses"][0]["containerID"], init_id,
        "the finished init container did not run again"
    );
    assert_eq!(agent.runtime_objects().await, (1, 2));

    // A graceful stop (SIGTERM) leaves the pod running too.
    agent.terminate();
    assert_eq!(agent.runtime_objects().await, (1, 2));
    agent.start();
    let again = agent
        .wait_pod("adopt", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(first_container(&again)["containerID"], main_id);
    agent.finish().await;
}

/// A manifest server: answers every request with the current (status, body).
async fn manifest_server(
    response: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut request = vec![0; 4096];
            let _ = conn.read(&mut request).await;
            let (status, body) = response.lock().map(|r| r.clone()).unwrap_or_default();
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_from_a_manifest_url_survive_server_errors_and_go_when_dropped() {
    let node = Node::from_env();
    let body = pod_yaml("remote", &node.test_image, &["sleep", "3600"], "");
    let response = std::sync::Arc::new(std::sync::Mutex::new((200, body)));
    let server = manifest_server(response.clone()).await;
    let mut agent = Daemon::new(
        &node,
        "url",
        &format!("staticPodURL: http://{server}/pods.yaml\nhttpCheckFrequency: 1s\n"),
    );
    agent.start();
    let pod = agent
        .wait_pod("remote", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/config.source"],
        "http"
    );
    let id = first_container(&pod)["containerID"].clone();

    // A failing server changes nothing.
    if let Ok(mut r) = response.lock() {
        *r = (503, "down".into());
    }
    agent.wait_log("HTTP status 503", MINUTE).await;
    let still = agent.pod("remote").await.expect("still there");
    assert_eq!(first_container(&still)["containerID"], id);

    // An empty list removes it.
    if let Ok(mut r) = response.lock() {
        *r = (200, "kind: PodList\nitems: []\n".into());
    }
    agent.wait_gone("remote", MINUTE).await;
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_manifest_url_needs_a_certificate_the_node_trusts() {
    let node = Node::from_env();
    let body = pod_yaml("secure", &node.test_image, &["sleep", "3600"], "");
    let (acceptor, served) = wasmlet_tests::https::self_signed_for("127.0.0.1");
    let pages = std::sync::Arc::new(std::sync::Mutex::new(vec![("/pods.yaml".to_owned(), body)]));
    let port = wasmlet_tests::https::serve_pages(acceptor, pages.clone()).await;
    let config =
        format!("staticPodURL: https://127.0.0.1:{port}/pods.yaml\nhttpCheckFrequency: 1s\n");
    // Each agent trusts one certificate (rustls-native-certs reads SSL_CERT_FILE).
    let trusting = |agent: &mut Daemon, pem: &str| {
        let file = agent.dir.join("trusted.pem");
        std::fs::write(&file, pem).expect("trusted roots");
        agent
            .env
            .push(("SSL_CERT_FILE".into(), file.display().to_string()));
        agent.start();
    };

    let mut doubting = Daemon::new(&node, "https-doubt", &config);
    let (_, other) = wasmlet_tests::https::self_signed_for("127.0.0.1");
    trusting(&mut doubting, &other);
    doubting.wait_log("invalid peer certificate", MINUTE).await;
    assert!(
        doubting.pod("secure").await.is_none(),
        "nothing from an untrusted server"
    );
    doubting.finish().await;

    let mut agent = Daemon::new(&node, "https-url", &config);
    trusting(&mut agent, &served);
    agent
        .wait_pod("secure", MINUTE, |p| phase(p) == "Running")
        .await;
    if let Ok(mut pages) = pages.lock() {
        *pages = vec![("/pods.yaml".into(), "kind: PodList\nitems: []\n".into())];
    }
    agent.wait_gone("secure", MINUTE).await;
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_removed_while_the_agent_was_down_is_cleaned_up_after_restart() {
    let node = Node::from_env();
    let mut agent = Daemon::started(&node, "orphan");
    for name in ["stay", "leave"] {
        agent.add_pod(name, &node.test_image, &["sleep", "3600"]);
        agent
            .wait_pod(name, MINUTE, |p| phase(p) == "Running")
            .await;
    }
    agent.kill_9();
    agent.remove_manifest("leave.yaml");
    agent.start();
    // Housekeeping finds the pod no source wants and removes it.
    agent.wait_runtime_objects((1, 1), MINUTE).await;
    let stay = agent
        .wait_pod("stay", MINUTE, |p| phase(p) == "Running")
        .await;
    assert_eq!(restarts(&stay), 0);
    agent.finish().await;
}

fn pod_container_id(pod: &Value) -> Value {
    first_container(pod)["containerID"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_logs_are_linked_rotated_and_go_with_the_pod() {
    let node = Node::from_env();
    let config =
        "containerLogMaxSize: 2Ki\ncontainerLogMaxFiles: 4\ncontainerLogMonitorInterval: 1s\n";
    let mut agent = Daemon::new(&node, "logs", config);
    agent.start();
    agent.write_manifest(
        "chatty.yaml",
        &pod_yaml(
            "chatty",
            &node.test_image,
            &[
                "sh",
                "-c",
                "while true; do echo 0123456789abcdefghijklmnopqrstuvwxyz; sleep 0.01; done",
            ],
            "",
        ),
    );
    let pod = agent
        .wait_pod("chatty", MINUTE, |p| phase(p) == "Running")
        .await;
    let id = first_container(&pod)["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("container id")
        .to_owned();
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let name = format!("chatty-{}", agent.node_name);
    let link = agent
        .dir
        .join("containers")
        .join(format!("{name}_default_main-{id}.log"));
    let pod_logs = agent.dir.join("logs").join(format!("default_{name}_{uid}"));
    let log_dir = pod_logs.join("main");
    assert_eq!(
        std::fs::canonicalize(&link).ok(),
        std::fs::canonicalize(log_dir.join("0.log")).ok(),
        "the link leads to the container's log"
    );
    // Rotated: at most 4 files, the older ones compressed, the live one
    // written on.
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&log_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let mut seen = Vec::new();
    for _ in 0..150 {
        seen = files();
        if seen.iter().any(|n| n.ends_with(".gz")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.iter().any(|n| n.ends_with(".gz")), "{seen:?}");
    assert!(seen.len() <= 4, "{seen:?}");
    // The runtime made the live log anew when asked to reopen it, and
    // writes to it (or it has been rotated once more).
    let size = || std::fs::metadata(log_dir.join("0.log")).map_or(0, |m| m.len());
    let (before, rotated_before) = (size(), files());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        size() > before || files() != rotated_before,
        "the reopened log is written: {:?}",
        files()
    );
    assert!(log_dir.join("0.log").exists(), "{:?}", files());

    agent.remove_manifest("chatty.yaml");
    agent.wait_gone("chatty", MINUTE).await;
    for _ in 0..50 {
        if !pod_logs.exists() && std::fs::symlink_metadata(&link).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!pod_logs.exists(), "{} is removed", pod_logs.display());
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is removed"
    );
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_requests_fit_the_node_s_disk_and_unknown_extended_resources_are_dropped() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "disk");
    let requests = "    resources: {requests: {ephemeral-storage: 1Mi, example.com/gpu: '1'}, limits: {example.com/gpu: '1'}}\n";
    let fits = pod_yaml("fits", &node.test_image, &["sleep", "3600"], "")
        .replace("    command: [", &format!("{requests}    command: ["));
    agent.write_manifest("fits.yaml", &fits);
    let huge = pod_yaml("huge", &node.test_image, &["sleep", "3600"], "").replace(
        "    command: [",
        "    resources: {requests: {ephemeral-storage: 1Ei}}\n    command: [",
    );
    agent.write_manifest("huge.yaml", &huge);
    let pod = agent
        .wait_pod("fits", MINUTE, |p| matches!(phase(p), "Running" | "Failed"))
        .await;
    assert_eq!(phase(&pod), "Running", "{pod}");
    let huge = agent
        .wait_pod("huge", MINUTE, |p| phase(p) == "Failed")
        .await;
    assert_eq!(huge["status"]["reason"], "OutOfephemeral-storage", "{huge}");
    agent.finish().await;
}
