//! The sandbox's guarantees, each shown with a purpose-built hostile guest
//! (plugins/testing). These fail if a guarantee breaks.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerPort;
use support::{Harness, node, pod};
use wasmlet_plugin_host::types::{Handler, Port, TcpSocketAction};
use wasmlet_plugin_host::{CallTarget, ContainerCall, Failure, HostContext, LoadError, Outcome};

const HOSTILE: &str = "kind = \"admission\"\nwit = \"0.1.0\"\n";

#[tokio::test]
async fn an_infinite_loop_is_cut_at_its_deadline_and_the_next_call_succeeds() {
    let h = Harness::new("loop");
    let plugin = h.hostile("looper", "[limits]\ndeadline-ms = 50\n").await;
    let err = plugin
        .admit(&pod("spin", &[("mode", "loop")]), &node(), &[])
        .await
        .expect_err("loops forever");
    assert_eq!(
        err.failure,
        Failure::Deadline(Duration::from_millis(50)),
        "{err}"
    );
    assert_eq!(err.plugin, "looper");
    assert_eq!(err.call, "admit");
    assert_eq!(h.metrics.errors_of("looper", "admit", "deadline"), 1);

    let decision = plugin
        .admit(&pod("calm", &[]), &node(), &[])
        .await
        .expect("next call");
    assert!(decision.admit);
    assert_eq!(h.metrics.calls_of("looper", "admit"), 2);
}

#[tokio::test]
async fn unbounded_allocation_is_stopped_by_the_memory_cap() {
    let h = Harness::new("alloc");
    let plugin = h.hostile("hoarder", "[limits]\nmemory-mib = 32\n").await;
    let err = plugin
        .admit(&pod("greedy", &[("mode", "alloc")]), &node(), &[])
        .await
        .expect_err("allocates without end");
    assert_eq!(
        err.failure,
        Failure::MemoryLimit {
            limit_bytes: 32 << 20
        },
        "{err}"
    );
    assert!(err.to_string().contains("memory limit exceeded"), "{err}");
    assert_eq!(h.metrics.errors_of("hoarder", "admit", "memory"), 1);
    plugin
        .admit(&pod("calm", &[]), &node(), &[])
        .await
        .expect("next call");
}

#[tokio::test]
async fn a_panic_is_an_error_naming_the_plugin_and_the_agent_keeps_serving() {
    let h = Harness::new("panic");
    let plugin = h.hostile("panicky", "").await;
    let err = plugin
        .admit(&pod("boom", &[("mode", "panic")]), &node(), &[])
        .await
        .expect_err("panics");
    let Failure::Trap(message) = &err.failure else {
        panic!("expected a trap, got {err}");
    };
    assert!(
        message
            .contains("hostile plugin panics on purpose (panicked at testing/hostile/src/lib.rs:"),
        "{message}"
    );
    assert!(!message.contains("RUST_BACKTRACE"), "{message}");
    assert!(
        err.to_string()
            .starts_with("plugin panicky: admit: trapped: "),
        "{err}"
    );
    for _ in 0..3 {
        plugin
            .admit(&pod("calm", &[]), &node(), &[])
            .await
            .expect("still serving");
    }
}

#[tokio::test]
async fn files_outside_the_preopen_are_denied_and_the_preopen_is_read_only() {
    let h = Harness::new("fs");
    let granted = h.dir.join("granted");
    std::fs::create_dir_all(&granted).expect("dir");
    std::fs::write(granted.join("inside.txt"), "visible").expect("write");
    std::fs::write(h.dir.join("outside.txt"), "secret").expect("write");
    std::os::unix::fs::symlink(h.dir.join("outside.txt"), granted.join("link-out"))
        .expect("symlink");

    let body = format!(
        "{HOSTILE}[settings]\nmode = \"fs\"\ndir = {granted:?}\n[capabilities]\nread-dirs = [{granted:?}]\n",
        granted = granted.display().to_string()
    );
    let plugin = h.load("prowler", "hostile", &body).await.expect("load");
    let decision = plugin
        .admit(&pod("p", &[]), &node(), &[])
        .await
        .expect("report");
    let report: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&decision.message).expect("json report");

    assert_eq!(report["inside"], "ok:visible", "the grant itself works");
    for attempt in ["dotdot", "absolute", "symlink", "write"] {
        assert!(
            report[attempt].starts_with("err:"),
            "{attempt} must be denied: {report:?}"
        );
    }
    assert!(!granted.join("written.txt").exists());
}

#[tokio::test]
async fn without_a_grant_even_the_requested_directory_is_invisible() {
    let h = Harness::new("fs-nogrant");
    let dir = h.dir.join("d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("inside.txt"), "visible").expect("write");
    let body = format!(
        "{HOSTILE}[settings]\nmode = \"fs\"\ndir = {:?}\n",
        dir.display().to_string()
    );
    let plugin = h.load("blind", "hostile", &body).await.expect("load");
    let decision = plugin
        .admit(&pod("p", &[]), &node(), &[])
        .await
        .expect("report");
    let report: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&decision.message).expect("json report");
    assert!(report["inside"].starts_with("err:"), "{report:?}");
}

#[tokio::test]
async fn connecting_to_a_host_not_granted_is_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = Harness::new("net");

    let body = format!("{HOSTILE}[settings]\nmode = \"connect\"\naddr = \"{addr}\"\n");
    let denied = h.load("snoop", "hostile", &body).await.expect("load");
    let err = denied
        .admit(&pod("p", &[]), &node(), &[])
        .await
        .expect_err("not granted");
    let Failure::DeniedCapability(what) = &err.failure else {
        panic!("expected a denied capability, got {err}");
    };
    // Without a connect grant there is no TCP socket at all.
    assert!(
        what.contains("a TCP socket: no connect destination is granted"),
        "{what}"
    );
    assert_eq!(h.metrics.errors_of("snoop", "admit", "denied"), 1);

    // Granted somewhere else: a socket, but not this address.
    let elsewhere = h
        .load(
            "elsewhere",
            "hostile",
            &format!("{body}[capabilities]\nconnect = [\"127.0.0.1:1\"]\n"),
        )
        .await
        .expect("load");
    let err = elsewhere
        .admit(&pod("p", &[]), &node(), &[])
        .await
        .expect_err("not granted");
    assert!(
        matches!(&err.failure, Failure::DeniedCapability(w) if w.contains(&format!("TcpConnect {addr}"))),
        "{err}"
    );

    // The same plugin with the address granted connects: the denial above was the sandbox.
    let granted = h
        .load(
            "caller",
            "hostile",
            &format!("{body}[capabilities]\nconnect = [\"{addr}\"]\n"),
        )
        .await
        .expect("load");
    let decision = granted
        .admit(&pod("p", &[]), &node(), &[])
        .await
        .expect("connects");
    assert_eq!(decision.reason, "Connected");
}

#[tokio::test]
async fn a_refusal_the_plugin_catches_is_still_logged_and_counted_once_per_call() {
    let h = Harness::new("caught");
    let body = format!(
        "{HOSTILE}[settings]\nmode = \"connect-caught\"\naddr = \"127.0.0.1:9\"\n[capabilities]\nconnect = [\"127.0.0.1:1\"]\n"
    );
    let quiet = h.load("quiet", "hostile", &body).await.expect("load");
    for calls in 1..=2 {
        let decision = quiet
            .admit(&pod("p", &[]), &node(), &[])
            .await
            .expect("it went on");
        assert!(decision.admit, "{decision:?}");
        assert_eq!(decision.message, "connect: false");
        assert_eq!(h.metrics.caught_denials_of("quiet", "admit"), calls);
    }
    assert_eq!(h.metrics.errors_of("quiet", "admit", "denied"), 0);
    // One that asks for nothing it is refused is not counted.
    let calm = h.hostile("calm", "").await;
    calm.admit(&pod("p", &[("mode", "ok")]), &node(), &[])
        .await
        .expect("admits");
    assert_eq!(h.metrics.caught_denials_of("calm", "admit"), 0);
}

fn target(container_id: &str) -> ContainerCall {
    target_at(container_id, None)
}

fn target_at(container_id: &str, pod_ip: Option<std::net::IpAddr>) -> ContainerCall {
    let grant = CallTarget {
        pod_uid: "uid-p".into(),
        container_id: container_id.into(),
        pod_ip,
        address: pod_ip,
    };
    ContainerCall::new(grant, "p", "default", "app", &[]).expect("a target")
}

#[tokio::test]
async fn exec_is_refused_when_not_granted_and_runs_in_the_target_when_granted() {
    let (runtime, container) = support::running_container().await;

    let h = Harness::with_host(
        "exec",
        HostContext {
            node_name: "test-node".into(),
            exec: Some(std::sync::Arc::new(runtime.clone())),
            kube: None,
        },
    );
    let probe = "kind = \"probe\"\nwit = \"0.1.0\"\n";
    let handler = Handler::Exec(vec!["true".into()]);

    let refused = h.load("nosy", "hostile_probe", probe).await.expect("load");
    let err = refused
        .check(
            &target(container.as_str()),
            &handler,
            Duration::from_secs(1),
        )
        .await
        .expect_err("exec not granted");
    assert!(
        matches!(&err.failure, Failure::DeniedCapability(w) if w.contains("exec")),
        "{err}"
    );
    assert!(
        !runtime.calls().contains(&"ExecSync"),
        "the runtime was never asked"
    );

    let allowed = h
        .load(
            "checker",
            "hostile_probe",
            &format!("{probe}[capabilities]\nexec = true\n"),
        )
        .await
        .expect("load");
    let result = allowed
        .check(
            &target(container.as_str()),
            &handler,
            Duration::from_secs(1),
        )
        .await
        .expect("exec granted");
    assert_eq!(result.outcome, Outcome::Success);
    assert!(runtime.calls().contains(&"ExecSync"));
}

#[tokio::test]
async fn a_component_of_the_wrong_world_is_refused_at_load() {
    let h = Harness::new("world");
    let err = h
        .load("confused", "hostile_probe", HOSTILE)
        .await
        .expect_err("a probe is no admission plugin");
    let LoadError::Contract { message, .. } = &err else {
        panic!("expected a contract error, got {err}");
    };
    assert!(message.contains("built for the `probe` world"), "{message}");
    assert!(message.contains("kind = \"admission\""), "{message}");
}

#[tokio::test]
async fn an_incompatible_wit_version_is_refused_at_load() {
    let h = Harness::new("version");
    let err = h
        .load("from-the-future", "future_wit", HOSTILE)
        .await
        .expect_err("0.2.0 is not 0.1.x");
    let text = err.to_string();
    assert!(text.contains("wasmlet:plugin@0.2.0"), "{text}");
    assert!(text.contains("0.1.x"), "{text}");
}

#[tokio::test]
async fn a_trapping_source_is_restarted_and_keeps_reporting() {
    use std::sync::Arc;
    use tokio::sync::{Notify, mpsc};
    use tokio_util::sync::CancellationToken;
    use wasmlet_plugin_host::SourceEvent;

    let h = Harness::new("source");
    let plugin = h
        .load(
            "counter",
            "counter_source",
            "kind = \"pod-source\"\nwit = \"0.1.0\"\n[settings]\ntrap-on-change = true\n",
        )
        .await
        .expect("load");
    let changes = Arc::new(Notify::new());
    let (events, mut received) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let runner = tokio::spawn(Arc::new(plugin).run_source(changes.clone(), events, stop.clone()));

    let pod_names = |event: Option<SourceEvent>| match event {
        Some(SourceEvent::Snapshot(s)) => s.pods.iter().map(|p| p.json.clone()).collect::<Vec<_>>(),
        other => panic!("expected a snapshot, got {other:?}"),
    };
    assert_eq!(
        pod_names(received.recv().await),
        vec![r#"{"metadata":{"name":"gen-1"}}"#]
    );

    // The source is now blocked in changes.wait; a change makes it trap.
    changes.notify_one();
    match received.recv().await {
        Some(SourceEvent::Failed(e)) => assert!(matches!(e.failure, Failure::Trap(_)), "{e}"),
        other => panic!("expected the trap, got {other:?}"),
    }
    // A new instance (its count starts again) serves after the back-off.
    assert_eq!(
        pod_names(received.recv().await),
        vec![r#"{"metadata":{"name":"gen-1"}}"#]
    );
    assert_eq!(h.metrics.errors_of("counter", "next-snapshot", "trap"), 1);

    stop.cancel();
    runner.await.expect("runner stops on shutdown");
}

// Two workers, as in the agent: the calls really run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_bound_wait_for_a_free_slot() {
    let h = Harness::new("bound");
    let plugin = std::sync::Arc::new(
        h.hostile("narrow", "[limits]\nconcurrency = 1\ndeadline-ms = 300\n")
            .await,
    );
    // The spinner holds the only slot until its deadline (300 ms). A quick
    // call issued meanwhile must wait; unbounded, it would finish at once.
    let spinner = {
        let plugin = plugin.clone();
        tokio::spawn(async move {
            plugin
                .admit(&pod("spin", &[("mode", "loop")]), &node(), &[])
                .await
        })
    };
    while plugin.busy_slots() == 0 {
        tokio::task::yield_now().await;
    }
    let queued = {
        let plugin = plugin.clone();
        tokio::spawn(async move { plugin.admit(&pod("calm", &[]), &node(), &[]).await })
    };
    // Half the spinner's hold: a safe margin on either side.
    let watch_until = tokio::time::Instant::now() + Duration::from_millis(150);
    while tokio::time::Instant::now() < watch_until {
        assert!(
            !queued.is_finished(),
            "the queued call ran while the only slot was taken"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let spun = spinner.await.expect("join");
    assert!(
        matches!(spun, Err(ref e) if matches!(e.failure, Failure::Deadline(_))),
        "{spun:?}"
    );
    // Waiting counts against the queued call's own deadline, so it either got
    // the slot in time or never ran (busy, not a deadline it ran into).
    match queued.await.expect("join") {
        Ok(decision) => assert!(decision.admit),
        Err(e) => assert!(matches!(e.failure, Failure::Busy(_)), "{e}"),
    }
    // With the slot free again, calls go through.
    assert!(
        plugin
            .admit(&pod("calm", &[]), &node(), &[])
            .await
            .expect("slot free")
            .admit
    );
}

#[tokio::test]
async fn the_admission_chain_applies_order_failure_policy_and_mode() {
    use std::sync::Arc;
    use wasmlet_plugin_host::admit_all;

    let h = Harness::new("chain");
    let hostile = |extra: &str| format!("{HOSTILE}{extra}[settings]\nmode = \"ok\"\n");
    let labels = |extra: &str| {
        format!("kind = \"admission\"\nwit = \"0.1.0\"\n{extra}[settings]\nlabels = [\"team\"]\n")
    };
    let closed = Arc::new(
        h.load("closed", "hostile", &hostile(""))
            .await
            .expect("load"),
    );
    let open = Arc::new(
        h.load(
            "open",
            "hostile",
            &hostile("failure-policy = \"fail-open\"\n"),
        )
        .await
        .expect("load"),
    );
    let watcher = Arc::new(
        h.load("watcher", "hostile", &hostile("mode = \"monitor\"\n"))
            .await
            .expect("load"),
    );
    let strict = Arc::new(
        h.load("strict", "require_labels", &labels(""))
            .await
            .expect("load"),
    );
    let lenient = Arc::new(
        h.load("lenient", "require_labels", &labels("mode = \"monitor\"\n"))
            .await
            .expect("load"),
    );

    let panicking = pod("p", &[("mode", "panic")]);
    let unlabelled = pod("u", &[]);

    // A failing fail-open plugin is skipped; a monitor-mode rejection only logs.
    let verdict = admit_all(&[open.clone(), lenient.clone()], &panicking, &node(), &[]).await;
    assert!(verdict.admit, "{verdict:?}");
    let verdict = admit_all(
        &[lenient.clone(), watcher.clone()],
        &unlabelled,
        &node(),
        &[],
    )
    .await;
    assert!(verdict.admit, "{verdict:?}");

    // A failing fail-closed plugin rejects, naming itself.
    let verdict = admit_all(&[open.clone(), closed.clone()], &panicking, &node(), &[]).await;
    assert!(!verdict.admit);
    assert_eq!(verdict.plugin.as_deref(), Some("closed"));
    assert_eq!(verdict.reason, "AdmissionPluginFailed");
    assert!(
        verdict.message.contains("plugin closed: admit: trapped"),
        "{}",
        verdict.message
    );

    // The first rejection wins: later plugins are not asked.
    let before = h.metrics.calls_of("closed", "admit");
    let verdict = admit_all(&[strict.clone(), closed.clone()], &unlabelled, &node(), &[]).await;
    assert_eq!(
        (verdict.admit, verdict.reason.as_str()),
        (false, "MissingLabels")
    );
    assert_eq!(verdict.plugin.as_deref(), Some("strict"));
    assert_eq!(h.metrics.calls_of("closed", "admit"), before);
}

#[tokio::test]
async fn a_plugin_cannot_hoard_connections() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let h = Harness::new("hoard");
    let probe = "kind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\ntarget-pod = true\n";
    let hoarder = h
        .load("hoarder", "hostile_probe", probe)
        .await
        .expect("load");
    let pod = target_at("c1", Some([127, 0, 0, 1].into()));
    let handler = Handler::TcpSocket(TcpSocketAction {
        host: None,
        port: Port::Number(port),
    });
    let err = hoarder
        .check(&pod, &handler, Duration::from_secs(5))
        .await
        .expect_err("refused past the cap");
    // The hostile probe's mode is the name of the port it is sent to.
    let ip = Some([127, 0, 0, 1].into());
    let grant = CallTarget {
        pod_uid: "uid-p".into(),
        container_id: "c1".into(),
        pod_ip: ip,
        address: ip,
    };
    let named = [("wasi-first", port), ("listen", port + 1)].map(|(name, port)| ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        ..Default::default()
    });
    let pod = ContainerCall::new(grant, "p", "default", "app", &named).expect("a target");
    assert!(
        matches!(&err.failure, Failure::DeniedCapability(w)
            if w.contains("16 sockets and connections are open") && w.contains("held 0 wasi + 16 net")),
        "{err}"
    );
    // WASI sockets and `net` connections share the cap.
    let both = Handler::TcpSocket(TcpSocketAction {
        host: None,
        port: Port::Name("wasi-first".into()),
    });
    let err = hoarder
        .check(&pod, &both, Duration::from_secs(5))
        .await
        .expect_err("refused past the cap");
    assert!(
        matches!(&err.failure, Failure::DeniedCapability(w) if w.contains("held 8 wasi + 8 net")),
        "{err}"
    );
    // No listening, on any address.
    let listen = Handler::TcpSocket(TcpSocketAction {
        host: None,
        port: Port::Name("listen".into()),
    });
    let err = hoarder
        .check(&pod, &listen, Duration::from_secs(5))
        .await
        .expect_err("no listening");
    assert!(
        matches!(&err.failure, Failure::DeniedCapability(w) if w.contains("TcpBind 0.0.0.0:")),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_call_carrying_megabytes_traps_and_the_next_call_succeeds() {
    let h = Harness::new("bigcall");
    let plugin = h.hostile("shouter", "").await;
    let err = plugin
        .admit(&pod("loud", &[("mode", "bigcall")]), &node(), &[])
        .await
        .expect_err("4 MiB in one host call is over the fuel");
    assert!(matches!(err.failure, Failure::Trap(_)), "{err}");
    assert_eq!(err.plugin, "shouter");
    assert!(
        plugin
            .admit(&pod("calm", &[]), &node(), &[])
            .await
            .expect("contained")
            .admit
    );
}

#[tokio::test]
async fn exec_output_reaches_the_plugin_bounded() {
    let (runtime, container) = support::running_container().await;
    // A container that prints 8 MiB.
    runtime.on_exec(|_, _| wasmlet_core::ExecOutput {
        stdout: vec![b'x'; 8 << 20],
        stderr: vec![b'y'; 8 << 20],
        exit_code: 1,
    });
    let h = Harness::with_host(
        "execbig",
        HostContext {
            node_name: "test-node".into(),
            exec: Some(std::sync::Arc::new(runtime.clone())),
            kube: None,
        },
    );
    let probe = "kind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\nexec = true\n";
    let plugin = h
        .load("chatty", "hostile_probe", probe)
        .await
        .expect("load");
    let result = plugin
        .check(
            &target(container.as_str()),
            &Handler::Exec(vec!["yes".into()]),
            Duration::from_secs(5),
        )
        .await
        .expect("checked");
    assert_eq!(result.outcome, Outcome::Failure);
    assert!(
        result.message.starts_with("exit 1 (got 65536 bytes)"),
        "{}",
        &result.message[..40.min(result.message.len())]
    );
    assert!(
        result.message.len() <= 10 * 1024 + 64,
        "{}",
        result.message.len()
    );
}
