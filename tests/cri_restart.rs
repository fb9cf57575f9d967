//! containerd goes away and comes back under a live client. A test binary of its
//! own because the outage would disturb concurrently running tests.

use std::process::Command;
use std::time::Duration;

use wasmlet_core::{ContainerRuntime, ContainerState, ErrorKind, RuntimeInfo};
use wasmlet_tests::{Node, TestPod};

async fn node_script(node: &Node, action: &'static str) {
    let script = node.node_script.clone();
    let status =
        tokio::task::spawn_blocking(move || Command::new("bash").arg(&script).arg(action).status())
            .await
            .expect("join")
            .expect("run the node script");
    assert!(status.success(), "node.sh {action} failed: {status}");
}

#[tokio::test]
async fn client_recovers_on_the_next_call_after_containerd_restarts() {
    let node = Node::from_env();
    let runtime = node.client();
    let pod = TestPod::start(&runtime, &node, "restart", &["sleep", "3600"]).await;
    let id = pod.container.clone();

    node_script(&node, "stop-containerd").await;
    let err = runtime.version().await.expect_err("containerd is down");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");

    node_script(&node, "start-containerd").await;
    // containerd serves before its CRI plugin has finished starting; wait for
    // the node with a separate client so the old one is not touched yet.
    let probe = node.client();
    let mut ready = false;
    for _ in 0..300 {
        if probe.status().await.is_ok_and(|s| s.unmet().is_empty()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "containerd's CRI did not come back");

    // The old client, whose last attempt failed: the very next call works.
    let version = runtime
        .version()
        .await
        .expect("first call after the restart");
    assert_eq!(version.runtime_name, "containerd");

    // Containers outlive a containerd restart, and the runtime still knows them.
    let status = runtime
        .container_status(&id)
        .await
        .expect("status after restart");
    assert_eq!(status.state, ContainerState::Running);

    pod.remove(&runtime).await;
}
