//! Component tests of the built-in probe and hook plugins
//! (plugins/builtin/probe-*, hook-*): the real components, against a small
//! HTTP server and the fake runtime's exec. (probe-grpc: tests/probe_grpc.rs.)

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerPort;
use support::Harness;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wasmlet_core::ExecOutput;
use wasmlet_plugin_host::types::{Handler, HttpGetAction, KeyValue, Port, TcpSocketAction};
use wasmlet_plugin_host::{CallTarget, ContainerCall, Failure, HostContext, Outcome, Plugin};
use wasmlet_runtime_fake::FakeRuntime;

/// Answers by path: /ok 200, /fail 500, /moved a redirect to another host,
/// /hop a redirect to /fail on the same host, /slow after 3 s; echoes nothing
/// else.
async fn answer(mut conn: impl AsyncRead + AsyncWrite + Unpin) {
    let mut buf = vec![0; 4096];
    let n = conn.read(&mut buf).await.unwrap_or(0);
    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    // Starts with this server's address, but names another host.
    let disguised = format!(
        "HTTP/1.1 302 Found\r\nLocation: http://{}@elsewhere.example/\r\nContent-Length: 0\r\n\r\n",
        request
            .lines()
            .find_map(|l| l.strip_prefix("Host: "))
            .unwrap_or_default()
    );
    let reply = match path.as_str() {
        "/ok" if request.contains("X-Probe: yes") => {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        }
        "/ok" => "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        "/moved" => {
            "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/\r\nContent-Length: 0\r\n\r\n"
        }
        "/hop" => "HTTP/1.1 302 Found\r\nLocation: /fail\r\nContent-Length: 0\r\n\r\n",
        "/disguised" => disguised.as_str(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        }
        _ => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    };
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// `answer` on a local port, over TLS (a self-signed certificate) or not.
async fn http_server_with(tls: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let acceptor = tls.then(support::tls::self_signed_acceptor);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(conn) = acceptor.accept(conn).await {
                            answer(conn).await;
                        }
                    }
                    None => answer(conn).await,
                }
            });
        }
    });
    port
}

async fn http_server() -> u16 {
    http_server_with(false).await
}

fn target(port: u16) -> ContainerCall {
    target_in("c1", port)
}

/// Container `id` of pod `web` on 127.0.0.1, with its port `http` at `port`.
fn target_in(id: &str, port: u16) -> ContainerCall {
    let grant = CallTarget {
        pod_uid: "uid-web".into(),
        container_id: id.into(),
        pod_ip: Some([127, 0, 0, 1].into()),
        address: Some([127, 0, 0, 1].into()),
    };
    let http = ContainerPort {
        name: Some("http".into()),
        container_port: i32::from(port),
        ..Default::default()
    };
    ContainerCall::new(grant, "web", "default", "app", &[http]).expect("a target")
}

fn http_get(path: &str, port: Port, host: Option<&str>) -> Handler {
    http_get_with("HTTP", path, port, host)
}

fn http_get_with(scheme: &str, path: &str, port: Port, host: Option<&str>) -> Handler {
    Handler::HttpGet(HttpGetAction {
        scheme: scheme.into(),
        host: host.map(Into::into),
        path: path.into(),
        port,
        headers: vec![KeyValue {
            key: "X-Probe".into(),
            value: "yes".into(),
        }],
    })
}

/// A built-in plugin with its own manifest, as the agent loads it.
async fn builtin(h: &Harness, name: &str) -> Plugin {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/builtin")
        .join(name)
        .join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let body = text
        .lines()
        .filter(|l| !l.starts_with("component"))
        .collect::<Vec<_>>()
        .join("\n");
    h.load(name, &name.replace('-', "_"), &body)
        .await
        .expect("load")
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_get_probes_judge_by_status_and_reach_only_the_pod() {
    let port = http_server().await;
    let h = Harness::new("probe-http");
    let probe = builtin(&h, "probe-http-get").await;
    let t = target(port);
    let check = |handler: Handler| {
        let (probe, t) = (&probe, &t);
        async move { probe.check(t, &handler, SECOND).await }
    };

    let ok = check(http_get("/ok", Port::Name("http".into()), None))
        .await
        .expect("ok");
    assert_eq!((ok.outcome, ok.message.as_str()), (Outcome::Success, ""));
    let failed = check(http_get("/fail", Port::Number(port), None))
        .await
        .expect("fail");
    assert_eq!(failed.outcome, Outcome::Failure);
    assert!(
        failed.message.contains("statuscode: 500"),
        "{}",
        failed.message
    );
    let moved = check(http_get("/moved", Port::Number(port), None))
        .await
        .expect("moved");
    assert_eq!(moved.outcome, Outcome::Success);
    assert!(
        moved
            .message
            .contains("redirect to http://elsewhere.example/ not followed"),
        "{}",
        moved.message
    );
    let timed_out = check(http_get("/slow", Port::Number(port), None)).await;
    assert!(
        matches!(timed_out, Err(ref e) if matches!(e.failure, Failure::Deadline(_))),
        "{timed_out:?}"
    );

    // Only the probed pod's address is granted for the call.
    let elsewhere = check(http_get("/ok", Port::Number(port), Some("127.0.0.2"))).await;
    assert!(
        matches!(&elsewhere, Ok(r) if r.outcome == Outcome::Failure
            && r.message.contains("connect to 127.0.0.2:") && r.message.contains("is not granted")),
        "another address is refused: {elsewhere:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_on_the_same_host_only_judged_by_host_name() {
    let port = http_server().await;
    let h = Harness::new("probe-redirects");
    let probe = builtin(&h, "probe-http-get").await;
    let t = target(port);
    // Followed, as the kubelet's: the 500 behind the redirect is the answer.
    let hop = probe
        .check(&t, &http_get("/hop", Port::Number(port), None), SECOND)
        .await
        .expect("check");
    assert!(
        hop.outcome == Outcome::Failure && hop.message.contains("statuscode: 500"),
        "{hop:?}"
    );
    // `http://127.0.0.1:PORT@elsewhere.example/` begins with the probed
    // address but goes to elsewhere.example: not followed, and said so.
    let disguised = probe
        .check(
            &t,
            &http_get("/disguised", Port::Number(port), None),
            SECOND,
        )
        .await
        .expect("check");
    assert_eq!(disguised.outcome, Outcome::Success, "{disguised:?}");
    assert!(
        disguised.message.contains("not followed"),
        "an off-host redirect is reported: {disguised:?}"
    );
}

/// Answers 200 to everything and keeps each request's head.
async fn recording_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0; 4096];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            if let Ok(mut seen) = record.lock() {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    (port, seen)
}

/// The header lines named `name` (any case) in a request head.
fn header_lines<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

fn with_headers(port: u16, headers: &[(&str, &str)]) -> Handler {
    Handler::HttpGet(HttpGetAction {
        scheme: "HTTP".into(),
        host: None,
        path: "/".into(),
        port: Port::Number(port),
        headers: headers
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_hooks_send_one_user_agent_and_one_host() {
    let (port, seen) = recording_server().await;
    let h = Harness::new("probe-headers");
    let probe = builtin(&h, "probe-http-get").await;
    let hook = builtin(&h, "hook-http-get").await;
    let t = target(port);
    let plain = probe
        .check(&t, &with_headers(port, &[]), SECOND)
        .await
        .expect("check");
    assert_eq!(plain.outcome, Outcome::Success, "{plain:?}");
    let named = probe
        .check(&t, &with_headers(port, &[("Host", "web.example")]), SECOND)
        .await
        .expect("check");
    assert_eq!(named.outcome, Outcome::Success, "{named:?}");
    let agent = probe
        .check(&t, &with_headers(port, &[("User-Agent", "mine")]), SECOND)
        .await
        .expect("check");
    assert_eq!(agent.outcome, Outcome::Success, "{agent:?}");
    hook.run_hook(&t, &with_headers(port, &[]), false, SECOND)
        .await
        .expect("hook");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let one = |head: &str, name: &str| -> String {
        let lines = header_lines(head, name);
        assert_eq!(lines.len(), 1, "one {name} header in {head:?}");
        lines[0]
            .split_once(':')
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(one(&seen[0], "host"), format!("127.0.0.1:{port}"));
    assert_eq!(one(&seen[0], "user-agent"), "kube-probe/wasmlet");
    assert_eq!(one(&seen[0], "accept"), "*/*");
    // The probe's Host header names the server; the pod's IP is still the address.
    assert_eq!(one(&seen[1], "host"), "web.example");
    assert_eq!(one(&seen[2], "user-agent"), "mine");
    assert_eq!(one(&seen[3], "user-agent"), "kube-lifecycle/wasmlet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cr_lf_in_a_header_value_is_refused_and_never_sent() {
    let (port, seen) = recording_server().await;
    let h = Harness::new("probe-injection");
    let probe = builtin(&h, "probe-http-get").await;
    let hook = builtin(&h, "hook-http-get").await;
    let t = target(port);
    let injected = with_headers(port, &[("X-Probe", "yes\r\nX-Injected: 1")]);
    let checked = probe.check(&t, &injected, SECOND).await.expect("check");
    assert_eq!(checked.outcome, Outcome::Failure, "{checked:?}");
    assert!(
        checked.message.contains("\"X-Probe\""),
        "names the header: {checked:?}"
    );
    let hooked = hook
        .run_hook(&t, &injected, false, SECOND)
        .await
        .expect_err("the hook fails");
    assert!(hooked.to_string().contains("X-Probe"), "{hooked}");
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_probes_and_hooks_skip_certificate_checks_as_the_kubelets() {
    let (plain, secure) = (http_server().await, http_server_with(true).await);
    let h = Harness::new("probe-https");
    let probe = builtin(&h, "probe-http-get").await;
    let https = |path: &str, port: u16| http_get_with("HTTPS", path, Port::Number(port), None);

    // A self-signed certificate for another name: accepted all the same.
    let ok = probe
        .check(&target(secure), &https("/ok", secure), SECOND)
        .await
        .expect("check");
    assert_eq!((ok.outcome, ok.message.as_str()), (Outcome::Success, ""));
    let failed = probe
        .check(&target(secure), &https("/fail", secure), SECOND)
        .await
        .expect("check");
    assert!(
        failed.outcome == Outcome::Failure && failed.message.contains("statuscode: 500"),
        "{failed:?}"
    );
    // TLS to a plain server fails the handshake; plain HTTP to a TLS server
    // gets no HTTP answer.
    let no_tls = probe
        .check(&target(plain), &https("/ok", plain), SECOND)
        .await
        .expect("check");
    assert!(
        no_tls.outcome == Outcome::Failure && no_tls.message.contains("Get \"https://"),
        "{no_tls:?}"
    );
    let plain_to_tls = probe
        .check(
            &target(secure),
            &http_get("/ok", Port::Number(secure), None),
            SECOND,
        )
        .await
        .expect("check");
    assert_eq!(plain_to_tls.outcome, Outcome::Failure, "{plain_to_tls:?}");
    let bad_scheme = probe
        .check(
            &target(secure),
            &http_get_with("FTP", "/", Port::Number(secure), None),
            SECOND,
        )
        .await;
    assert!(
        matches!(bad_scheme, Err(ref e) if e.to_string().contains("expected HTTP or HTTPS")),
        "{bad_scheme:?}"
    );

    let hook = builtin(&h, "hook-http-get").await;
    hook.run_hook(&target(secure), &https("/ok", secure), false, SECOND)
        .await
        .expect("postStart over HTTPS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_socket_probes_succeed_when_the_port_accepts() {
    let port = http_server().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    };
    let h = Harness::new("probe-tcp");
    let probe = builtin(&h, "probe-tcp-socket").await;
    let tcp = |port: Port| Handler::TcpSocket(TcpSocketAction { host: None, port });
    let open = probe
        .check(&target(port), &tcp(Port::Name("http".into())), SECOND)
        .await
        .expect("check");
    assert_eq!(open.outcome, Outcome::Success);
    let shut = probe
        .check(&target(port), &tcp(Port::Number(closed)), SECOND)
        .await
        .expect("check");
    assert_eq!(shut.outcome, Outcome::Failure);
    let elsewhere = Handler::TcpSocket(TcpSocketAction {
        host: Some("127.0.0.2".into()),
        port: Port::Number(port),
    });
    let denied = probe.check(&target(port), &elsewhere, SECOND).await;
    assert!(
        matches!(&denied, Err(e) if matches!(&e.failure, Failure::DeniedCapability(m) if m.contains("127.0.0.2"))),
        "{denied:?}"
    );
}

async fn fake_with_container() -> (FakeRuntime, String) {
    let (runtime, id) = support::running_container().await;
    runtime.on_exec(|_, cmd| ExecOutput {
        stdout: cmd.join(" ").into_bytes(),
        stderr: b"to stderr".to_vec(),
        exit_code: if cmd.first().is_some_and(|c| c == "true") {
            0
        } else {
            1
        },
    });
    (runtime, id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_and_hooks_run_in_the_target_container() {
    let (runtime, id) = fake_with_container().await;
    let h = Harness::with_host(
        "exec",
        HostContext {
            node_name: "test-node".into(),
            exec: Some(Arc::new(runtime.clone())),
            kube: None,
        },
    );
    let t = target_in(id.as_str(), 80);
    let probe = builtin(&h, "probe-exec").await;
    let pass = probe
        .check(&t, &Handler::Exec(vec!["true".into()]), SECOND)
        .await
        .expect("check");
    assert_eq!(pass.outcome, Outcome::Success);
    let fail = probe
        .check(&t, &Handler::Exec(vec!["false".into()]), SECOND)
        .await
        .expect("check");
    assert_eq!(fail.outcome, Outcome::Failure);
    assert!(fail.message.contains("exited with 1"), "{}", fail.message);

    let hook = builtin(&h, "hook-exec").await;
    hook.run_hook(&t, &Handler::Exec(vec!["true".into()]), false, SECOND)
        .await
        .expect("postStart passes");
    let err = hook
        .run_hook(&t, &Handler::Exec(vec!["false".into()]), true, SECOND)
        .await
        .expect_err("preStop fails");
    assert!(err.to_string().contains("to stderr"), "{err}");
    assert_eq!(
        runtime.calls().iter().filter(|c| **c == "ExecSync").count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_sleep_hooks() {
    let port = http_server().await;
    let h = Harness::new("hooks");
    let http = builtin(&h, "hook-http-get").await;
    http.run_hook(
        &target(port),
        &http_get("/ok", Port::Number(port), None),
        false,
        SECOND,
    )
    .await
    .expect("200 passes");
    // As upstream, only a transport error fails the hook, not a status.
    http.run_hook(
        &target(port),
        &http_get("/fail", Port::Number(port), None),
        true,
        SECOND,
    )
    .await
    .expect("a 500 is still an answer");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let err = http
        .run_hook(
            &target(closed),
            &http_get("/ok", Port::Number(closed), None),
            true,
            SECOND,
        )
        .await
        .expect_err("nobody answers");
    assert!(
        err.to_string().contains("HTTP lifecycle hook (/ok) failed"),
        "{err}"
    );

    let sleep = builtin(&h, "hook-sleep").await;
    sleep
        .run_hook(
            &target(port),
            &Handler::Sleep(1),
            true,
            Duration::from_secs(5),
        )
        .await
        .expect("sleeps 1 s");
    let cut = sleep
        .run_hook(
            &target(port),
            &Handler::Sleep(30),
            true,
            Duration::from_millis(300),
        )
        .await
        .expect_err("cut at the grace");
    assert!(matches!(cut.failure, Failure::Deadline(_)), "{cut}");
}

// Two workers: the hook holding the slot sleeps beside the one waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hooks_wait_for_a_slot_comes_out_of_a_pre_stop_grace_only() {
    let h = Harness::new("hookslot");
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/builtin/hook-sleep/hook-sleep.toml");
    let body = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace("concurrency = 64", "concurrency = 1");
    let sleep = Arc::new(
        h.load("hook-sleep", "hook_sleep", &body)
            .await
            .expect("load"),
    );
    let hold_the_slot = || {
        let sleep = sleep.clone();
        tokio::spawn(async move {
            sleep
                .run_hook(&target(1), &Handler::Sleep(1), false, SECOND * 5)
                .await
        })
    };
    let holder = hold_the_slot();
    while sleep.busy_slots() == 0 {
        tokio::task::yield_now().await;
    }
    // postStart: about 1 s in the queue, then its own 1.5 s to sleep 1 s.
    sleep
        .run_hook(
            &target(1),
            &Handler::Sleep(1),
            false,
            Duration::from_millis(1500),
        )
        .await
        .expect("a postStart hook's time starts when it runs");
    holder.await.expect("join").expect("slept");

    let holder = hold_the_slot();
    while sleep.busy_slots() == 0 {
        tokio::task::yield_now().await;
    }
    // preStop: the same 1.5 s is the grace, queue included.
    let cut = sleep
        .run_hook(
            &target(1),
            &Handler::Sleep(1),
            true,
            Duration::from_millis(1500),
        )
        .await
        .expect_err("the queue took most of the grace");
    assert!(matches!(cut.failure, Failure::Deadline(_)), "{cut}");
    holder.await.expect("join").expect("slept");
}
