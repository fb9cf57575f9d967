//! The kubelet's ports on a real node: the authenticated HTTPS port with
//! its self-signed certificate and client-certificate users, the healthz
//! port, the read-only port off unless configured; in cluster mode, bearer
//! tokens and access decided by the API server's reviews (the stand-in).

use std::time::Duration;

use serde_json::Value;
use wasmlet_tests::Node;
use wasmlet_tests::apiserver::ApiServer;
use wasmlet_tests::daemon::Daemon;
use wasmlet_tests::https::{self, TestCa};

const WAIT: Duration = Duration::from_secs(60);

/// The body of a plain HTTP GET, or None while nothing answers.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// Waits for the healthz port to say `ok`: the agent is up.
async fn wait_healthy(agent: &Daemon) {
    let give_up = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((200, body)) = http_get(agent.healthz_port, "/healthz").await
            && body == "ok"
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the healthz port never said ok:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The self-signed certificate the agent made for its kubelet port.
fn serving_certificate(agent: &Daemon) -> String {
    std::fs::read_to_string(agent.root_dir().join("pki/kubelet.crt"))
        .unwrap_or_else(|e| panic!("the kubelet port's certificate: {e}\n{}", agent.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_authenticate_on_the_kubelet_port() {
    let node = Node::from_env();
    let ca = TestCa::new("wasmlet-test-clients");
    let stranger_ca = TestCa::new("somebody-else");
    let mut agent = Daemon::new(&node, "port-x509", "");
    let ca_file = agent.dir.join("clients.pem");
    std::fs::write(&ca_file, &ca.pem).expect("client CA");
    agent.set_config(&format!(
        "readOnlyPort: 0\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: false\n  x509:\n    clientCAFile: {}\nauthorization:\n  mode: AlwaysAllow\n",
        ca_file.display()
    ));
    agent.start();
    agent.add_pod("served", &node.test_image, &["sleep", "3600"]);
    wait_healthy(&agent).await;
    let server = serving_certificate(&agent);
    let alice = ca.client("alice", &["ops"]);

    // The healthz port serves /healthz alone.
    assert_eq!(
        http_get(agent.healthz_port, "/pods").await.map(|r| r.0),
        Some(404)
    );
    // A config file's read-only port is off.
    assert!(
        tokio::net::TcpStream::connect(agent.address).await.is_err(),
        "the read-only port answers"
    );

    // alice's certificate: the PodList, over TLS the test verified.
    let give_up = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, body) = https::get(agent.kubelet_port, "/pods", &server, Some(&alice), None)
            .await
            .expect("an answer");
        assert_eq!(code, 200, "{body}");
        let pods: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(pods["kind"], "PodList");
        let served = pods["items"].as_array().is_some_and(|items| {
            items.iter().any(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("served"))
            })
        });
        if served {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, metrics) = https::get(agent.kubelet_port, "/metrics", &server, Some(&alice), None)
        .await
        .expect("metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("kubelet_running_pods"), "{metrics}");

    // No certificate, and anonymous requests are off: 401.
    let (code, _) = https::get(agent.kubelet_port, "/pods", &server, None, None)
        .await
        .expect("an answer");
    assert_eq!(code, 401);
    // Without the webhook a bearer token is not read: still 401.
    let (code, _) = https::get(agent.kubelet_port, "/pods", &server, None, Some("anything"))
        .await
        .expect("an answer");
    assert_eq!(code, 401);
    // A certificate from a CA the node does not trust: no connection.
    let mallory = stranger_ca.client("alice", &["ops"]);
    let refused = https::get(agent.kubelet_port, "/pods", &server, Some(&mallory), None).await;
    assert!(refused.is_err(), "{refused:?}");

    // Restarted, the agent keeps its certificate.
    agent.terminate();
    agent.start();
    wait_healthy(&agent).await;
    assert_eq!(serving_certificate(&agent), server);
    let (code, _) = https::get(agent.kubelet_port, "/healthz", &server, Some(&alice), None)
        .await
        .expect("an answer");
    assert_eq!(code, 200);
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_tokens_and_access_are_the_api_server_s_to_decide() {
    let node = Node::from_env();
    let api = ApiServer::start().await;
    let ca = TestCa::new("wasmlet-test-clients");
    api.add_user("token-bob", "bob", &["ops"]);
    // Through his group, bob may read metrics; himself, the pod list.
    api.allow("ops", "get", "metrics");
    api.allow("bob", "get", "pods");
    // carol may use the proxy subresource: every other path, and /pods.
    api.allow("carol", "get", "proxy");

    let mut agent = Daemon::new(&node, "port-webhook", "");
    let kubeconfig = agent.dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let ca_file = agent.dir.join("clients.pem");
    std::fs::write(&ca_file, &ca.pem).expect("client CA");
    // The kubelet's v1beta1 defaults: webhook authentication and
    // authorization, no anonymous requests.
    agent.set_config(&format!(
        "kubeconfig: {}\nauthentication:\n  x509:\n    clientCAFile: {}\n",
        kubeconfig.display(),
        ca_file.display()
    ));
    agent.start();
    wait_healthy(&agent).await;
    let server = serving_certificate(&agent);
    let get = |path: &'static str, token: Option<&'static str>| {
        let server = server.clone();
        let port = agent.kubelet_port;
        async move {
            https::get(port, path, &server, None, token)
                .await
                .expect("an answer")
        }
    };

    let (code, body) = get("/metrics", Some("token-bob")).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = get("/pods", Some("token-bob")).await;
    assert_eq!(code, 200, "{body}");
    // The proxy subresource is not bob's.
    let (code, body) = get("/events", Some("token-bob")).await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[\"proxy\"])\n"
    );
    // A token the API server does not know, and no credentials at all.
    assert_eq!(get("/metrics", Some("forged")).await.0, 401);
    assert_eq!(get("/metrics", None).await.0, 401);
    // A client certificate's user, authorized by the API server too: /pods
    // through `proxy`, as the kubelet falls back to it.
    let carol = ca.client("carol", &[]);
    let (code, body) = https::get(agent.kubelet_port, "/pods", &server, Some(&carol), None)
        .await
        .expect("an answer");
    assert_eq!(code, 200, "{body}");
    let (code, _) = https::get(agent.kubelet_port, "/metrics", &server, Some(&carol), None)
        .await
        .expect("an answer");
    assert_eq!(code, 403);

    // What the agent asked: the node's subresource, with bob's groups.
    let reviews = api.reviews();
    let asked = reviews
        .iter()
        .find(|r| {
            r["kind"] == "SubjectAccessReview"
                && r["spec"]["resourceAttributes"]["subresource"] == "metrics"
                && r["spec"]["user"] == "bob"
        })
        .unwrap_or_else(|| panic!("no review of bob's /metrics: {reviews:?}"));
    let attributes = &asked["spec"]["resourceAttributes"];
    assert_eq!(attributes["verb"], "get");
    assert_eq!(attributes["resource"], "nodes");
    assert_eq!(attributes["name"], agent.node_name.as_str());
    let groups = asked["spec"]["groups"].to_string();
    assert!(
        groups.contains("ops") && groups.contains("system:authenticated"),
        "{groups}"
    );

    // Answers are cached: bob's token is reviewed once, his /metrics once.
    let count = |kind: &str| api.reviews().iter().filter(|r| r["kind"] == kind).count();
    let (tokens, accesses) = (count("TokenReview"), count("SubjectAccessReview"));
    assert_eq!(get("/metrics", Some("token-bob")).await.0, 200);
    assert_eq!(count("TokenReview"), tokens);
    assert_eq!(count("SubjectAccessReview"), accesses);
    agent.finish().await;
}

/// `wasmlet logs` against `agent`'s kubelet port: stdout, stderr and whether
/// it succeeded.
async fn wasmlet_logs(agent: &Daemon, args: &[&str]) -> (String, String, bool) {
    let output = tokio::process::Command::new(wasmlet_tests::daemon::wasmlet_bin())
        .arg("logs")
        .args(args)
        .arg("--server")
        .arg(format!("https://127.0.0.1:{}", agent.kubelet_port))
        .arg("--certificate-authority")
        .arg(agent.root_dir().join("pki/kubelet.crt"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, output)
        .await
        .expect("wasmlet logs ends")
        .expect("wasmlet logs runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.success(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmlet_logs_reads_container_logs_as_kubectl_logs() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "logs");
    let suffix = format!("-{}", agent.node_name);
    agent.add_pod(
        "talker",
        &node.test_image,
        &[
            "sh",
            "-c",
            "echo one; sleep 0.3; echo two >&2; sleep 0.3; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
        ],
    );
    agent.add_pod(
        "crasher",
        &node.test_image,
        &["sh", "-c", "echo attempt; sleep 1; exit 3"],
    );
    agent.write_manifest(
        "ender.yaml",
        &wasmlet_tests::daemon::pod_yaml(
            "ender",
            &node.test_image,
            &["sh", "-c", "echo a; sleep 3; echo b"],
            "  restartPolicy: Never\n",
        ),
    );
    let talker = format!("talker{suffix}");
    agent
        .wait_pod("talker", WAIT, |p| {
            wasmlet_tests::daemon::phase(p) == "Running"
        })
        .await;

    // The whole log, stderr and stdout as they came, and the pod's one container.
    let give_up = tokio::time::Instant::now() + WAIT;
    let (out, err, ok) = loop {
        let (out, err, ok) = wasmlet_logs(&agent, &[&talker]).await;
        if out.contains("tick 3") || tokio::time::Instant::now() > give_up {
            break (out, err, ok);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ok, "{err}");
    assert!(
        out.starts_with("one\ntwo\ntick 1\ntick 2\ntick 3\n"),
        "{out}"
    );
    // The last line, with its time.
    let (out, err, ok) =
        wasmlet_logs(&agent, &[&talker, "main", "--tail", "1", "--timestamps"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let (time, text) = lines[0].split_once(' ').expect("a timestamp");
    assert!(humantime_like(time), "{time}");
    assert!(text.starts_with("tick "), "{text}");
    // At most 5 bytes.
    let (out, _, _) = wasmlet_logs(&agent, &[&talker, "--limit-bytes", "5"]).await;
    assert_eq!(out, "one\nt");

    // Followed: what comes later arrives while the command runs.
    let mut follow = tokio::process::Command::new(wasmlet_tests::daemon::wasmlet_bin())
        .args(["logs", "-f", "--tail", "0", &talker, "--server"])
        .arg(format!("https://127.0.0.1:{}", agent.kubelet_port))
        .arg("--certificate-authority")
        .arg(agent.root_dir().join("pki/kubelet.crt"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wasmlet logs -f");
    let mut stdout = follow.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let give_up = tokio::time::Instant::now() + WAIT;
    while String::from_utf8_lossy(&seen).matches("tick").count() < 3 {
        let mut buf = [0; 256];
        let n = tokio::time::timeout_at(
            give_up,
            tokio::io::AsyncReadExt::read(&mut stdout, &mut buf),
        )
        .await
        .expect("followed lines arrive")
        .expect("read");
        assert!(
            n > 0,
            "the follow ended early: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("one"), "--tail 0");
    drop(follow);

    // A follow ends when the container does, with its last words.
    let ender = format!("ender{suffix}");
    agent
        .wait_pod("ender", WAIT, |p| {
            wasmlet_tests::daemon::phase(p) == "Running"
        })
        .await;
    let (out, err, ok) = wasmlet_logs(&agent, &["-f", &ender]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "a\nb\n");

    // The previous instance of a restarted container; none before the first.
    let crasher = format!("crasher{suffix}");
    agent
        .wait_pod("crasher", WAIT, |p| {
            wasmlet_tests::daemon::first_container(p)["restartCount"]
                .as_i64()
                .is_some_and(|n| n >= 1)
        })
        .await;
    let (out, err, ok) = wasmlet_logs(&agent, &["--previous", &crasher]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "attempt\n");
    let (_, err, ok) = wasmlet_logs(&agent, &["-p", &talker]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "previous terminated container \"main\" in pod \"{talker}\" not found"
        )),
        "{err}"
    );
    // No such pod, no such container: the kubelet's 404s.
    let (_, err, ok) = wasmlet_logs(&agent, &["nobody", "main"]).await;
    assert!(!ok && err.contains("404"), "{err}");
    let (_, err, ok) = wasmlet_logs(&agent, &[&talker, "sidecar"]).await;
    assert!(
        !ok && err.contains("container \"sidecar\" not found"),
        "{err}"
    );
    // The read-only port has no logs (the kubelet's has no debugging handlers).
    let read_only = http_get(
        agent.address.port(),
        &format!("/containerLogs/default/{talker}/main"),
    )
    .await
    .map(|r| r.0);
    assert_eq!(read_only, Some(404));
    agent.finish().await;
}

/// `2026-12-07T10:00:00.123456789Z`-shaped.
fn humantime_like(text: &str) -> bool {
    text.len() >= 20
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[10] == b'T'
        && text.ends_with('Z')
}

/// `wasmlet <subcommand> <args>` against `agent`'s kubelet port.
fn wasmlet_command(agent: &Daemon, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(wasmlet_tests::daemon::wasmlet_bin());
    let (subcommand, rest) = args.split_first().expect("a subcommand");
    command
        .arg(subcommand)
        .arg("--server")
        .arg(format!("https://127.0.0.1:{}", agent.kubelet_port))
        .arg("--certificate-authority")
        .arg(agent.root_dir().join("pki/kubelet.crt"))
        .args(rest)
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmlet_exec_and_port_forward_go_through_the_runtime_s_streams() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let node = Node::from_env();
    let agent = Daemon::started(&node, "streams");
    agent.add_pod(
        "web",
        &node.test_image,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    agent
        .wait_pod("web", WAIT, |p| {
            wasmlet_tests::daemon::phase(p) == "Running"
        })
        .await;
    let web = format!("web-{}", agent.node_name);

    // A command's output, its error output and its exit code.
    let output = wasmlet_command(
        &agent,
        &[
            "exec",
            &web,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    )
    .output()
    .await
    .expect("wasmlet exec runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "out\n",
        "{output:?}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    // In a terminal: one output stream (a terminal's line ends).
    let in_terminal = |flags: &'static [&'static str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[web.as_str(), "--", "sh", "-c"]);
        args.push("echo out; echo err >&2; sleep 0.3; exit 2");
        let mut command = wasmlet_command(&agent, &args);
        command.stdin(std::process::Stdio::null());
        command
    };
    let output = in_terminal(&["-i", "-t"]).output().await.expect("exec -it");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "out\r\nerr\r\n",
        "{output:?}"
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    // Without standard input, no terminal (as kubectl).
    let output = in_terminal(&["-t"]).output().await.expect("exec -t");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "out\n",
        "{output:?}"
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    // Standard input reaches it.
    let mut child = wasmlet_command(
        &agent,
        &[
            "exec",
            "-i",
            &web,
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "read line; echo got $line",
        ],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("wasmlet exec -i");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"ping\n").await.expect("write");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("exec -i ends")
        .expect("exec -i");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "got ping\n");
    assert!(output.status.success());
    // No such container: the agent's 404.
    let output = wasmlet_command(&agent, &["exec", &web, "-c", "nope", "--", "true"])
        .output()
        .await
        .expect("wasmlet exec runs");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("404") && err.contains("\"nope\""), "{err}");

    // A local port forwarded to the pod's 8080.
    let mut forward = wasmlet_command(&agent, &["port-forward", &web, "0:8080"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wasmlet port-forward");
    let mut lines = tokio::io::BufReader::new(forward.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("it says where it listens")
        .expect("read")
        .expect("a line");
    let local: std::net::SocketAddr = line
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.split_once(" -> "))
        .and_then(|(address, _)| address.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(local)
            .await
            .expect("connect");
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .await
            .expect("request");
        let mut response = String::new();
        tokio::time::timeout(WAIT, conn.read_to_string(&mut response))
            .await
            .expect("an answer")
            .expect("read");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("hello from the pod\n"), "{response}");
    }
    drop(forward);
    agent.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_summary_and_resource_metrics_come_from_the_runtime_and_the_node() {
    let node = Node::from_env();
    let agent = Daemon::started(&node, "stats");
    agent.add_pod(
        "busy",
        &node.test_image,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; head -c 1000000 /dev/zero > /fill; echo logged; sleep 3600",
        ],
    );
    agent
        .wait_pod("busy", WAIT, |p| {
            wasmlet_tests::daemon::phase(p) == "Running"
        })
        .await;
    let busy = format!("busy-{}", agent.node_name);
    let number = |v: &Value| v.as_u64().unwrap_or(0);

    // The runtime refreshes a writable layer's size every few seconds.
    let give_up = tokio::time::Instant::now() + WAIT;
    let (summary, container) = loop {
        let summary = agent.get("/stats/summary").await.unwrap_or_default();
        let container = summary["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["podRef"]["name"] == busy.as_str())
            .map(|p| p["containers"][0].clone())
            .unwrap_or_default();
        if number(&container["rootfs"]["usedBytes"]) >= 1_000_000
            && number(&container["logs"]["usedBytes"]) > 0
        {
            break (summary, container);
        }
        assert!(tokio::time::Instant::now() < give_up, "{summary:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let node_stats = &summary["node"];
    assert_eq!(node_stats["nodeName"], agent.node_name.as_str());
    assert!(
        number(&node_stats["cpu"]["usageCoreNanoSeconds"]) > 0,
        "{node_stats}"
    );
    // Read before: the node has a rate now.
    assert!(node_stats["cpu"]["usageNanoCores"].is_u64(), "{node_stats}");
    assert!(number(&node_stats["memory"]["workingSetBytes"]) > 0);
    assert!(number(&node_stats["fs"]["capacityBytes"]) > 0);
    assert!(number(&node_stats["runtime"]["imageFs"]["usedBytes"]) > 0);
    assert_eq!(container["name"], "main");
    assert!(
        number(&container["cpu"]["usageCoreNanoSeconds"]) > 0,
        "{container}"
    );
    assert!(
        number(&container["memory"]["workingSetBytes"]) > 0,
        "{container}"
    );
    let pod = summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["podRef"]["name"] == busy.as_str())
        .expect("the pod");
    assert_eq!(pod["podRef"]["namespace"], "default");
    assert!(pod["podRef"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(number(&pod["ephemeral-storage"]["usedBytes"]) >= 1_000_000);

    let metrics = agent
        .get_text("/metrics/resource")
        .await
        .unwrap_or_default();
    for sample in [
        format!(
            "container_cpu_usage_seconds_total{{container=\"main\",namespace=\"default\",pod=\"{busy}\"}}"
        ),
        format!(
            "container_memory_working_set_bytes{{container=\"main\",namespace=\"default\",pod=\"{busy}\"}}"
        ),
        format!(
            "container_start_time_seconds{{container=\"main\",namespace=\"default\",pod=\"{busy}\"}}"
        ),
        format!("pod_memory_working_set_bytes{{namespace=\"default\",pod=\"{busy}\"}}"),
        "node_cpu_usage_seconds_total ".into(),
        "resource_scrape_error 0".into(),
    ] {
        assert!(metrics.contains(&sample), "{sample} in:\n{metrics}");
    }
    let (clean, said) = wasmlet_tests::promtool_check_metrics(&metrics);
    assert!(clean, "promtool check metrics:\n{said}\n{metrics}");
    agent.finish().await;
}
