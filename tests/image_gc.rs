//! Image garbage collection on the real node. A test binary of its own: the
//! collector removes every image no container uses (the pause image too, on
//! containerd 1.6, which pins none), so no other test may run beside it;
//! the node's registry serves them again to whoever needs them next.

use std::time::Duration;

use wasmlet_core::ImageRuntime;
use wasmlet_tests::Node;
use wasmlet_tests::daemon::{Daemon, phase};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_high_threshold_unused_images_go_and_used_ones_stay() {
    let node = Node::from_env();
    let runtime = node.client();
    // An image no container uses.
    runtime
        .pull_image(&node.pull_image, None)
        .await
        .expect("pulled");
    // Every round finds the filesystem over 1 % and wants it at 0 %: it
    // removes what it may and says it could not free enough.
    let mut agent = Daemon::new(
        &node,
        "imagegc",
        "imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 5s\nimageGCPeriod: 1s\n",
    );
    agent.start();
    agent.add_pod("user", &node.test_image, &["sleep", "3600"]);
    agent
        .wait_pod("user", MINUTE, |p| phase(p) == "Running")
        .await;
    let give_up = tokio::time::Instant::now() + MINUTE;
    while runtime
        .image_status(&node.pull_image)
        .await
        .expect("image status")
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the unused image was not removed; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        runtime
            .image_status(&node.test_image)
            .await
            .expect("image status")
            .is_some(),
        "the image a container uses was removed"
    );
    let warned =
        agent.events().await.into_iter().find(|e| {
            e["reason"] == "FreeDiskSpaceFailed" && e["involvedObject"]["kind"] == "Node"
        });
    let message = warned.map(|e| e["message"].to_string()).unwrap_or_default();
    assert!(
        message.contains("Failed to garbage collect required amount of images"),
        "{message}"
    );
    agent.finish().await;
}
