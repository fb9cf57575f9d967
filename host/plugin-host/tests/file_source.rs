//! Component tests of the built-in file source (plugins/builtin/file-source):
//! the real component, run by the host as the agent runs it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::Harness;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wasmlet_plugin_host::{Snapshot, SourceEvent};

const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: busybox:1.35\n";

fn names(snapshot: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = snapshot
        .pods
        .iter()
        .map(|p| {
            let pod: serde_json::Value = serde_json::from_str(&p.json).expect("pod JSON");
            pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

async fn next(events: &mut mpsc::Receiver<SourceEvent>) -> Snapshot {
    match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
        Ok(Some(SourceEvent::Snapshot(snapshot))) => snapshot,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_good_files_reports_bad_ones_and_sees_changes() {
    let h = Harness::new("file-source");
    let manifests = h.dir.join("manifests");
    std::fs::create_dir_all(&manifests).expect("dir");
    std::fs::write(manifests.join("web.yaml"), WEB).expect("write");
    std::fs::write(
        manifests.join("list.json"),
        r#"{"kind":"PodList","items":[{"kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i:1"}]}},{"kind":"Pod","metadata":{"name":"b","namespace":"tools"},"spec":{"containers":[{"name":"c","image":"i:1"}]}}]}"#,
    )
    .expect("write");
    std::fs::write(manifests.join(".hidden.yaml"), WEB.replace("web", "hidden")).expect("write");
    std::fs::write(
        manifests.join("bad.yaml"),
        WEB.replace("    image: busybox:1.35\n", ""),
    )
    .expect("write");

    let dir = manifests.display().to_string();
    // A long check frequency: only the host's change signal can be why it re-reads.
    let body = format!(
        "kind = \"pod-source\"\nwit = \"0.1.0\"\n[settings]\npath = {dir:?}\ncheck-frequency-ms = 600000\n[capabilities]\nread-dirs = [{dir:?}]\n"
    );
    let plugin = h.load("file", "file_source", &body).await.expect("load");
    let (events_tx, mut events) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let runner =
        tokio::spawn(Arc::new(plugin).run_source(Arc::new(Notify::new()), events_tx, stop.clone()));

    let first = next(&mut events).await;
    assert_eq!(
        names(&first),
        ["a-test-node", "b-test-node", "web-test-node"]
    );
    assert_eq!(first.problems.len(), 1, "{:?}", first.problems);
    assert!(first.problems[0].origin.ends_with("bad.yaml"));
    assert!(
        first.problems[0]
            .message
            .contains("spec.containers[0].image: Required value"),
        "{}",
        first.problems[0].message
    );
    let web: serde_json::Value = serde_json::from_str(
        &first
            .pods
            .iter()
            .find(|p| p.origin.ends_with("web.yaml"))
            .expect("web")
            .json,
    )
    .expect("json");
    assert_eq!(web["metadata"]["namespace"], "default");
    assert_eq!(web["spec"]["nodeName"], "test-node");
    assert_eq!(web["metadata"]["uid"].as_str().map(str::len), Some(32));

    // A new file is picked up without waiting for the check frequency.
    std::fs::write(
        manifests.join("api.yaml"),
        WEB.replace("name: web\nspec", "name: api\nspec"),
    )
    .expect("write");
    std::fs::remove_file(manifests.join("bad.yaml")).expect("remove");
    // The two changes may be seen apart: take snapshots until both are in.
    let mut latest = next(&mut events).await;
    for _ in 0..3 {
        if latest.problems.is_empty() && names(&latest).len() == 4 {
            break;
        }
        latest = next(&mut events).await;
    }
    assert_eq!(
        names(&latest),
        [
            "a-test-node",
            "api-test-node",
            "b-test-node",
            "web-test-node"
        ]
    );
    assert!(latest.problems.is_empty(), "{:?}", latest.problems);

    stop.cancel();
    runner.await.expect("stops");
}
