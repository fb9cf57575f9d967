//! The CRI client against the real containerd started by `scripts/node.sh up`.

use std::time::Duration;

use wasmlet_core::{
    ContainerFilter, ContainerRuntime, ContainerState, ErrorKind, ExecTimeout, ImageRuntime,
    LinuxResources, NamespaceMode, Namespaces, RuntimeInfo, SandboxFilter, SandboxRuntime,
    SandboxState,
};
use wasmlet_tests::{
    Node, RUN_LABEL, TestPod, container_config, http_get, is_running, sandbox_config, unique,
    wait_for_container,
};

const UP: Duration = Duration::from_secs(30);

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn version_and_status_describe_a_ready_containerd() {
    let runtime = Node::from_env().client();
    let version = runtime.version().await.expect("version");
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.runtime_version.is_empty());

    let status = runtime.status().await.expect("status");
    assert_eq!(status.unmet(), Vec::<&str>::new(), "{status:?}");
}

#[tokio::test]
async fn sandbox_on_the_pod_network_is_reachable_from_the_host() {
    let node = Node::from_env();
    let runtime = node.client();
    let name = unique("net");
    let sc = sandbox_config(&name);
    let sandbox = runtime.run_sandbox(&sc, "").await.expect("run sandbox");

    let status = runtime
        .sandbox_status(&sandbox)
        .await
        .expect("sandbox status");
    assert_eq!(status.state, SandboxState::Ready);
    assert_eq!(status.metadata, sc.metadata);
    assert_eq!(status.labels.get(RUN_LABEL), Some(&name));
    let ip = status.ip.expect("a pod on the pod network has an IP");

    let web = container_config(
        "web",
        &node.test_image,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    let id = runtime
        .create_container(&sandbox, &web, &sc)
        .await
        .expect("create");
    runtime.start_container(&id).await.expect("start");
    wait_for_container(&runtime, &id, UP, is_running).await;

    let response = http_get(ip, 8080, UP).await.expect("GET / from the pod");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response:?}");
    assert!(
        response.contains(&format!("hello-from-{}", sc.hostname)),
        "{response:?}"
    );

    runtime.stop_sandbox(&sandbox).await.expect("stop");
    runtime.remove_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn host_network_sandbox_has_no_pod_ip() {
    let runtime = Node::from_env().client();
    let mut sc = sandbox_config(&unique("hostnet"));
    sc.namespaces = Namespaces {
        network: NamespaceMode::Node,
        ..Default::default()
    };
    sc.hostname.clear();
    let sandbox = runtime.run_sandbox(&sc, "").await.expect("run sandbox");
    let status = runtime.sandbox_status(&sandbox).await.expect("status");
    assert_eq!(status.namespaces.network, NamespaceMode::Node);
    assert_eq!(status.ip, None);
    runtime.stop_sandbox(&sandbox).await.expect("stop");
    runtime.remove_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn running_container_logs_in_cri_format() {
    let node = Node::from_env();
    let runtime = node.client();
    let sc = sandbox_config(&unique("logs"));
    let sandbox = runtime.run_sandbox(&sc, "").await.expect("run sandbox");
    let app = container_config(
        "app",
        &node.test_image,
        &[
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exec sleep 3600",
        ],
    );
    let id = runtime
        .create_container(&sandbox, &app, &sc)
        .await
        .expect("create");
    assert_eq!(
        runtime.container_status(&id).await.expect("status").state,
        ContainerState::Created
    );
    runtime.start_container(&id).await.expect("start");
    let status = wait_for_container(&runtime, &id, UP, is_running).await;
    assert_eq!(status.metadata.name, "app");
    assert!(status.started_at.is_some());
    assert!(
        status.image_ref.starts_with("sha256:"),
        "{}",
        status.image_ref
    );

    let log_path = sc.log_directory.join("app/0.log");
    assert_eq!(status.log_path, log_path);
    let mut log = String::new();
    for _ in 0..200 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut entries: Vec<(&str, &str, &str)> = log
        .lines()
        .map(|line| {
            // <RFC 3339 time> <stream> <F|P> <text>
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().unwrap_or_default();
            assert!(
                time.len() > 20 && time.contains('T'),
                "timestamp in {line:?}"
            );
            let (stream, tag, text) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            (stream, tag, text)
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec![("stderr", "F", "to-stderr"), ("stdout", "F", "to-stdout")],
        "{log}"
    );

    runtime.reopen_container_log(&id).await.expect("reopen log");
    runtime.stop_sandbox(&sandbox).await.expect("stop");
    runtime.remove_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn exec_sync_returns_output_and_exit_code_and_honours_its_timeout() {
    let node = Node::from_env();
    let runtime = node.client();
    let pod = TestPod::start(&runtime, &node, "exec", &["sleep", "3600"]).await;
    let (sandbox, id) = (pod.sandbox.clone(), pod.container.clone());

    let out = runtime
        .exec_sync(
            &id,
            &cmd(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            ExecTimeout::After(Duration::from_secs(10)),
        )
        .await
        .expect("exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.exit_code, 3);

    let err = runtime
        .exec_sync(
            &id,
            &cmd(&["sleep", "30"]),
            ExecTimeout::After(Duration::from_secs(1)),
        )
        .await
        .expect_err("the command outlives its timeout");
    assert_eq!(err.kind, ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(err.call, "ExecSync");

    runtime.stop_sandbox(&sandbox).await.expect("stop");
    runtime.remove_sandbox(&sandbox).await.expect("remove");
    let err = runtime
        .exec_sync(&id, &cmd(&["true"]), ExecTimeout::Unlimited)
        .await
        .expect_err("container removed");
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn exited_container_reports_its_exit_code() {
    let node = Node::from_env();
    let runtime = node.client();
    let sc = sandbox_config(&unique("exit"));
    let sandbox = runtime.run_sandbox(&sc, "").await.expect("run sandbox");
    let app = container_config("app", &node.test_image, &["sh", "-c", "exit 7"]);
    let id = runtime
        .create_container(&sandbox, &app, &sc)
        .await
        .expect("create");
    runtime.start_container(&id).await.expect("start");
    let status = wait_for_container(&runtime, &id, UP, |s| s.state == ContainerState::Exited).await;
    assert_eq!(status.exit_code, 7);
    assert_eq!(status.reason, "Error");
    assert!(status.finished_at.is_some());
    runtime.remove_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn stop_and_remove_twice_is_not_an_error() {
    let node = Node::from_env();
    let runtime = node.client();
    let pod = TestPod::start(&runtime, &node, "twice", &["sleep", "3600"]).await;
    let (sandbox, id) = (pod.sandbox.clone(), pod.container.clone());

    runtime
        .stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stop");
    runtime
        .stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stop again");
    let status = runtime.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Exited);
    runtime.remove_container(&id).await.expect("remove");
    runtime.remove_container(&id).await.expect("remove again");
    runtime
        .stop_container(&id, Duration::ZERO)
        .await
        .expect("stop after remove");
    let err = runtime.container_status(&id).await.expect_err("removed");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");

    runtime.stop_sandbox(&sandbox).await.expect("stop sandbox");
    runtime
        .stop_sandbox(&sandbox)
        .await
        .expect("stop sandbox again");
    let status = runtime.sandbox_status(&sandbox).await.expect("status");
    assert_eq!(status.state, SandboxState::NotReady);
    runtime
        .remove_sandbox(&sandbox)
        .await
        .expect("remove sandbox");
    runtime
        .remove_sandbox(&sandbox)
        .await
        .expect("remove sandbox again");
    runtime
        .stop_sandbox(&sandbox)
        .await
        .expect("stop sandbox after remove");
    let err = runtime.sandbox_status(&sandbox).await.expect_err("removed");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn pull_from_the_local_registry_and_missing_image_is_not_found() {
    let node = Node::from_env();
    let runtime = node.client();
    // Start without the image so the pull below really fetches it.
    runtime
        .remove_image(&node.pull_image)
        .await
        .expect("remove (absent is fine)");
    assert_eq!(
        runtime
            .image_status(&node.pull_image)
            .await
            .expect("status"),
        None
    );

    let image_ref = runtime
        .pull_image(&node.pull_image, None)
        .await
        .expect("pull");
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let image = runtime
        .image_status(&node.pull_image)
        .await
        .expect("status")
        .expect("present after the pull");
    assert_eq!(image.id, image_ref);
    assert!(image.repo_tags.contains(&node.pull_image), "{image:?}");
    assert!(image.size_bytes > 0);
    let listed = runtime.list_images().await.expect("list");
    assert!(listed.iter().any(|i| i.id == image_ref));

    let err = runtime
        .pull_image(&node.missing_image, None)
        .await
        .expect_err("no such image in the registry");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.call, "PullImage");

    let filesystems = runtime.image_fs_info().await.expect("image fs info");
    assert!(
        filesystems
            .iter()
            .any(|f| f.used_bytes.is_some_and(|b| b > 0)),
        "{filesystems:?}"
    );
}

#[tokio::test]
async fn lists_filter_by_label() {
    let node = Node::from_env();
    let runtime = node.client();
    let (a, b) = (
        sandbox_config(&unique("label-a")),
        sandbox_config(&unique("label-b")),
    );
    let sa = runtime.run_sandbox(&a, "").await.expect("run a");
    let sb = runtime.run_sandbox(&b, "").await.expect("run b");
    let mut ids = Vec::new();
    for (sandbox, config) in [(&sa, &a), (&sb, &b)] {
        let mut c = container_config("app", &node.test_image, &["sleep", "3600"]);
        c.labels = config.labels.clone();
        ids.push(
            runtime
                .create_container(sandbox, &c, config)
                .await
                .expect("create"),
        );
    }

    let sandboxes = runtime
        .list_sandboxes(&SandboxFilter {
            labels: a.labels.clone(),
            ..Default::default()
        })
        .await
        .expect("list sandboxes");
    assert_eq!(
        sandboxes.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&sa]
    );

    let containers = runtime
        .list_containers(&ContainerFilter {
            labels: b.labels.clone(),
            ..Default::default()
        })
        .await
        .expect("list containers");
    assert_eq!(
        containers.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&ids[1]]
    );
    assert_eq!(containers[0].sandbox_id, sb);
    assert_eq!(containers[0].state, ContainerState::Created);

    // Label and state filters combine (AND).
    let running_b = runtime
        .list_containers(&ContainerFilter {
            labels: b.labels.clone(),
            state: Some(ContainerState::Running),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(running_b.is_empty(), "{running_b:?}");

    for sandbox in [&sa, &sb] {
        runtime.remove_sandbox(sandbox).await.expect("remove");
    }
}

#[tokio::test]
async fn resources_update_and_stats() {
    let node = Node::from_env();
    let runtime = node.client();
    let pod = TestPod::start(&runtime, &node, "stats", &["sleep", "3600"]).await;
    let (sandbox, id) = (pod.sandbox.clone(), pod.container.clone());

    let limit = 64 * 1024 * 1024;
    let resources = LinuxResources {
        memory_limit_bytes: limit,
        cpu_shares: 512,
        ..Default::default()
    };
    runtime
        .update_container_resources(&id, &resources)
        .await
        .expect("update");
    let status = runtime.container_status(&id).await.expect("status");
    if let Some(applied) = status.resources {
        assert_eq!(applied.memory_limit_bytes, limit);
    }

    let stats = runtime.container_stats(&id).await.expect("stats");
    assert_eq!(stats.id, id);
    assert_eq!(stats.metadata.name, "app");
    assert!(stats.memory_working_set_bytes.is_some(), "{stats:?}");
    let listed = runtime
        .list_container_stats(&wasmlet_core::ContainerStatsFilter {
            sandbox_id: Some(sandbox.clone()),
            ..Default::default()
        })
        .await
        .expect("list stats");
    assert_eq!(listed.iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&id]);

    pod.remove(&runtime).await;
}
