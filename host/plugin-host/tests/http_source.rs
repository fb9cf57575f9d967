//! Component tests of the built-in http source (plugins/builtin/http-source),
//! against a small HTTP server of the test's own.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wasmlet_plugin_host::{Failure, SourceEvent};

const PODS: &str = "kind: PodList\nitems:\n- kind: Pod\n  metadata: {name: one}\n  spec: {containers: [{name: c, image: 'i:1'}]}\n";

/// Serves whatever (status, body) `response` holds, to every request; records
/// the requests.
async fn serve(
    response: Arc<Mutex<(u16, String)>>,
    requests: Arc<Mutex<Vec<String>>>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0; 4096];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            requests
                .lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let (status, body) = response.lock().expect("lock").clone();
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    address
}

fn names(event: Option<SourceEvent>) -> Vec<String> {
    match event {
        Some(SourceEvent::Snapshot(s)) => s
            .pods
            .iter()
            .map(|p| {
                let v: serde_json::Value = serde_json::from_str(&p.json).expect("json");
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect(),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

async fn next(events: &mut mpsc::Receiver<SourceEvent>) -> Option<SourceEvent> {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_sends_the_header_and_keeps_the_last_pods_on_errors() {
    let response = Arc::new(Mutex::new((200, PODS.to_owned())));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let address = serve(response.clone(), requests.clone()).await;
    let h = Harness::new("http-source");
    let body = format!(
        "kind = \"pod-source\"\nwit = \"0.1.0\"\n[settings]\nurl = \"http://manifests.example:{port}/pods.yaml\"\nconnect-to = \"{address}\"\ncheck-frequency-ms = 100\nheader = {{ X-Token = [\"secret\"] }}\n[capabilities]\nconnect = [\"{address}\"]\n[limits]\ndeadline-ms = 10000\n",
        port = address.port()
    );
    let plugin = h.load("http", "http_source", &body).await.expect("load");
    let (events_tx, mut events) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let runner =
        tokio::spawn(Arc::new(plugin).run_source(Arc::new(Notify::new()), events_tx, stop.clone()));
    assert_eq!(names(next(&mut events).await), ["one-test-node"]);
    {
        let requests = requests.lock().expect("lock");
        assert!(
            requests[0].starts_with("GET /pods.yaml HTTP/1.1\r\n"),
            "{}",
            requests[0]
        );
        assert!(requests[0].contains(&format!("Host: manifests.example:{}", address.port())));
        assert!(requests[0].contains("X-Token: secret"));
    }

    // A failing server is an error, never an empty snapshot.
    *response.lock().expect("lock") = (500, "oops".into());
    match next(&mut events).await {
        Some(SourceEvent::Failed(e)) => {
            assert!(matches!(&e.failure, Failure::Plugin(_)), "{e}");
            assert!(e.to_string().contains("HTTP status 500"), "{e}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // A new body is picked up once the server answers again.
    *response.lock().expect("lock") = (200, PODS.replace("one", "two"));
    let mut latest = next(&mut events).await;
    for _ in 0..5 {
        if matches!(&latest, Some(SourceEvent::Snapshot(_))) {
            break;
        }
        latest = next(&mut events).await;
    }
    assert_eq!(names(latest), ["two-test-node"]);
    stop.cancel();
    runner.await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_url_with_an_untrusted_certificate_is_refused() {
    let (acceptor, _) = support::tls::self_signed_for("127.0.0.1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            // The client gives up in the handshake; nothing is served.
            let _ = acceptor.accept(conn).await;
        }
    });
    let h = Harness::new("https-source");
    let body = format!(
        "kind = \"pod-source\"\nwit = \"0.1.0\"\n[settings]\nurl = \"https://127.0.0.1:{port}/pods.yaml\"\nconnect-to = \"{address}\"\n[capabilities]\nconnect = [\"{address}\"]\n[limits]\ndeadline-ms = 10000\n",
        port = address.port()
    );
    let plugin = h.load("https", "http_source", &body).await.expect("load");
    let (events_tx, mut events) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let runner =
        tokio::spawn(Arc::new(plugin).run_source(Arc::new(Notify::new()), events_tx, stop.clone()));
    match next(&mut events).await {
        Some(SourceEvent::Failed(e)) => {
            let said = e.to_string();
            assert!(said.contains("https://127.0.0.1:"), "names the URL: {said}");
            // Refused whether the node trusts some roots or none.
            assert!(
                said.contains("invalid peer certificate") || said.contains("no trusted root"),
                "{said}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    stop.cancel();
    runner.await.expect("stops");
}
