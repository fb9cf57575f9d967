//! Cluster mode against the stand-in API server (tests/support/apiserver),
//! with the agent on the real containerd: the Node registered and kept, the
//! node Lease renewed through conflicts and outages.

use std::time::Duration;

use serde_json::{Value, json};
use wasmlet_tests::Node;
use wasmlet_tests::apiserver::{ApiServer, PatchType};
use wasmlet_tests::daemon::Daemon;

const WAIT: Duration = Duration::from_secs(30);

/// An agent joined to `api`, with its Lease renewed every second and its
/// status computed every second (`extra`: more config lines).
fn joined(api: &ApiServer, tag: &str, extra: &str) -> Daemon {
    let mut daemon = Daemon::new(&Node::from_env(), tag, "");
    join(&mut daemon, api, extra);
    daemon.start();
    daemon
}

/// Points `daemon` (not started yet) at `api`.
fn join(daemon: &mut Daemon, api: &ApiServer, extra: &str) {
    let kubeconfig = daemon.dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    daemon.set_config(&format!(
        "kubeconfig: {}\nnodeLeaseDurationSeconds: 4\nnodeStatusUpdateFrequency: 1s\n{extra}",
        kubeconfig.display()
    ));
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(node: &'a Value, kind: &str) -> &'a Value {
    node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn status_patches(api: &ApiServer, node: &str) -> usize {
    let path = format!("/api/v1/nodes/{node}/status");
    api.seen()
        .iter()
        .filter(|s| s.method == "PATCH" && s.path == path)
        .count()
}

#[tokio::test]
async fn the_node_registers_reports_ready_and_patches_only_changes() {
    let api = ApiServer::start().await;
    let agent = joined(
        &api,
        "cluster-node",
        "nodeLabels:\n  team: blue\nregisterWithTaints:\n- key: dedicated\n  value: wasm\n  effect: NoSchedule\nnodeStatusReportFrequency: 1h\n",
    );
    let name = agent.node_name.clone();
    let node = wait_for("a Ready node", || {
        api.get("Node", "", &name)
            .filter(|n| condition(n, "Ready")["status"] == "True")
    })
    .await;
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], name.as_str());
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(
        labels["beta.kubernetes.io/arch"],
        labels["kubernetes.io/arch"]
    );
    assert_eq!(labels["team"], "blue");
    assert_eq!(
        node["spec"]["taints"],
        json!([{"key": "dedicated", "value": "wasm", "effect": "NoSchedule"}])
    );
    let status = &node["status"];
    for resource in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(
            status["capacity"][resource].is_string(),
            "capacity {resource}: {status}"
        );
        assert!(
            status["allocatable"][resource].is_string(),
            "allocatable {resource}"
        );
    }
    assert!(
        status["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("containerd://")),
        "{}",
        status["nodeInfo"]
    );
    assert_eq!(status["nodeInfo"]["operatingSystem"], "linux");
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    assert!(
        status["addresses"].as_array().is_some_and(|a| a
            .iter()
            .any(|a| a["type"] == "Hostname" && a["address"] == name.as_str())),
        "{}",
        status["addresses"]
    );
    assert_eq!(condition(&node, "Ready")["reason"], "KubeletReady");
    for (kind, reason) in [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ] {
        assert_eq!(condition(&node, kind)["reason"], reason, "{kind}");
    }
    // Computed every second, the same status is not sent again within the
    // report period.
    let sent = status_patches(&api, &name);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        status_patches(&api, &name),
        sent,
        "an unchanged status was patched"
    );
    agent.finish().await;
}

#[tokio::test]
async fn an_existing_node_gets_its_default_labels_back_and_an_unchanged_status_is_reported() {
    let api = ApiServer::start().await;
    let node = Node::from_env();
    // The name the daemon will use: known only once it exists, so register
    // a node under it before the agent starts.
    let mut agent = Daemon::new(&node, "cluster-existing", "");
    let name = agent.node_name.clone();
    api.create(json!({
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": "s390x", "team": "red"}},
    }))
    .expect("a node");
    join(&mut agent, &api, "nodeStatusReportFrequency: 2s\n");
    // The API server fails the first requests: registration retries.
    api.fail_next(3, 500);
    agent.start();
    let node = wait_for("the node reconciled", || {
        api.get("Node", "", &name)
            .filter(|n| n["metadata"]["labels"]["kubernetes.io/arch"] != "s390x")
    })
    .await;
    assert_eq!(
        node["metadata"]["labels"]["team"], "red",
        "other labels are the operator's"
    );
    let beat = |n: &Value| {
        condition(n, "Ready")["lastHeartbeatTime"]
            .as_str()
            .map(str::to_owned)
    };
    let first = wait_for("a reported status", || {
        api.get("Node", "", &name).as_ref().and_then(beat)
    })
    .await;
    wait_for("the status reported again", || {
        api.get("Node", "", &name)
            .as_ref()
            .and_then(beat)
            .filter(|b| *b != first)
    })
    .await;
    agent.finish().await;
}

#[tokio::test]
async fn the_lease_is_renewed_through_a_conflict_and_an_outage() {
    let api = ApiServer::start().await;
    let agent = joined(&api, "cluster-lease", "");
    let name = agent.node_name.clone();
    let lease = wait_for("the node lease", || {
        api.get("Lease", "kube-node-lease", &name)
    })
    .await;
    assert_eq!(lease["spec"]["holderIdentity"], name.as_str());
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 4);
    let renewed = |after: &Value| {
        let after = after["spec"]["renewTime"].clone();
        let api = &api;
        let name = name.clone();
        move || {
            api.get("Lease", "kube-node-lease", &name).filter(|l| {
                l["spec"]["renewTime"] != after && l["spec"]["holderIdentity"] == name.as_str()
            })
        }
    };
    let lease = wait_for("a renewal", renewed(&lease)).await;
    // The Node is registered by now: the lease is owned by it.
    let owner = wait_for("the lease owned by the node", || {
        api.get("Lease", "kube-node-lease", &name)
            .filter(|l| l["metadata"]["ownerReferences"].is_array())
    })
    .await;
    let node = api.get("Node", "", &name).expect("the node");
    assert_eq!(
        owner["metadata"]["ownerReferences"][0]["uid"],
        node["metadata"]["uid"]
    );

    // Someone else writes the lease: the agent's next PUT is stale (409),
    // and it must read the lease again to renew it.
    let theirs = api
        .patch(
            "Lease",
            "kube-node-lease",
            &name,
            PatchType::Merge,
            &json!({"spec": {"holderIdentity": "someone-else"}}),
            false,
        )
        .expect("a patch");
    wait_for("a renewal after the conflict", renewed(&theirs)).await;

    // Down for a few seconds (longer than the renew interval), then back.
    api.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = api
        .get("Lease", "kube-node-lease", &name)
        .expect("the lease");
    api.resume().await;
    wait_for("a renewal after the outage", renewed(&before)).await;
    drop(lease);
    agent.finish().await;
}

/// A pod the scheduler bound to `node`, as the API server holds it.
fn bound_pod(name: &str, node: &str) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": Node::from_env().test_image,
                "command": ["sleep", "3600"],
                "imagePullPolicy": "IfNotPresent",
            }],
        },
    })
}

fn container_id(pod: &Value) -> String {
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
}

#[tokio::test]
async fn pods_bound_to_the_node_run_and_survive_dropped_watches_compaction_and_outages() {
    let api = ApiServer::start().await;
    api.set_bookmark_interval(Duration::from_millis(500));
    let agent = joined(&api, "cluster-pods", "");
    let name = agent.node_name.clone();
    // One pod for this node, one for another: only the first is this node's.
    api.create(bound_pod("web", &name)).expect("a pod");
    api.create(bound_pod("elsewhere", "another-node"))
        .expect("a pod");
    let pod = agent.wait_pod("web", WAIT, running).await;
    let id = container_id(&pod);
    assert!(
        agent.pod("elsewhere").await.is_none(),
        "another node's pod ran here"
    );
    let uid = api.get("Pod", "default", "web").expect("the pod")["metadata"]["uid"].clone();
    assert_eq!(pod["metadata"]["uid"], uid, "the API's UID is the pod's");

    // A second pod arrives through the watch.
    api.create(bound_pod("late", &name)).expect("a pod");
    agent.wait_pod("late", WAIT, running).await;

    // A dropped watch, then an outage during which a pod is bound and the
    // log is compacted past the agent's resourceVersion: its watch is 410
    // Gone and it must list again to see the pod. Nothing restarts.
    api.drop_watches();
    api.stop();
    api.create(bound_pod("after", &name)).expect("a pod");
    api.compact();
    tokio::time::sleep(Duration::from_secs(3)).await;
    api.resume().await;
    agent.wait_pod("after", WAIT, running).await;
    let pod = agent.pod("web").await.expect("web still there");
    assert_eq!(container_id(&pod), id, "the container was replaced");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);

    // Deleted on the server (grace 0, as after a graceful deletion): gone here.
    api.delete("Pod", "default", "late", &json!({"gracePeriodSeconds": 0}))
        .expect("deleted");
    agent.wait_gone("late", WAIT).await;
    assert!(agent.pod("web").await.is_some());
    for pod in ["web", "after"] {
        api.delete("Pod", "default", pod, &json!({"gracePeriodSeconds": 0}))
            .expect("deleted");
    }
    agent.finish().await;
}

#[tokio::test]
async fn pod_status_reaches_the_api_server_keeps_others_conditions_and_waits_out_an_outage() {
    let api = ApiServer::start().await;
    let agent = joined(&api, "cluster-status", "");
    let name = agent.node_name.clone();
    let mut short = bound_pod("short", &name);
    short["spec"]["restartPolicy"] = json!("Never");
    short["spec"]["containers"][0]["command"] = json!(["sleep", "4"]);
    api.create(bound_pod("web", &name)).expect("a pod");
    api.create(short).expect("a pod");
    // A condition someone else owns (a readiness gate's, say).
    let gate = json!({"type": "example.com/Gate", "status": "True"});
    api.patch(
        "Pod",
        "default",
        "web",
        PatchType::Strategic,
        &json!({"status": {"conditions": [gate]}}),
        true,
    )
    .expect("a status patch");
    let local = agent.wait_pod("web", WAIT, running).await;
    let served = wait_for("web's status on the server", || {
        api.get("Pod", "default", "web")
            .filter(|p| p["status"]["phase"] == "Running" && !container_id(p).is_empty())
    })
    .await;
    assert_eq!(container_id(&served), container_id(&local));
    assert_eq!(served["status"]["hostIP"], local["status"]["hostIP"]);
    let conditions = served["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions.contains(&gate),
        "another's condition was dropped: {conditions:?}"
    );
    assert!(
        conditions.iter().any(|c| c["type"] == "Ready"),
        "{conditions:?}"
    );
    let uid = served["metadata"]["uid"].clone();
    for patch in api
        .seen()
        .iter()
        .filter(|s| s.method == "PATCH" && s.path == "/api/v1/namespaces/default/pods/web/status")
    {
        assert_eq!(
            patch.body["metadata"]["uid"], uid,
            "a status patch without the UID precondition"
        );
        assert!(
            patch
                .content_type
                .starts_with("application/strategic-merge-patch+json")
        );
    }

    // The short pod finishes while the API server is down; its status
    // arrives once it is back.
    api.stop();
    agent
        .wait_pod("short", WAIT, |p| p["status"]["phase"] == "Succeeded")
        .await;
    api.resume().await;
    wait_for("short's Succeeded on the server", || {
        api.get("Pod", "default", "short")
            .filter(|p| p["status"]["phase"] == "Succeeded")
    })
    .await;
    for pod in ["web", "short"] {
        api.delete("Pod", "default", pod, &json!({"gracePeriodSeconds": 0}))
            .expect("deleted");
    }
    agent.finish().await;
}

#[tokio::test]
async fn a_deleted_pod_is_stopped_with_its_grace_then_deleted_for_good_with_its_uid() {
    let api = ApiServer::start().await;
    let agent = joined(&api, "cluster-delete", "");
    let name = agent.node_name.clone();
    api.create(bound_pod("web", &name)).expect("a pod");
    agent.wait_pod("web", WAIT, running).await;
    let uid = api.get("Pod", "default", "web").expect("the pod")["metadata"]["uid"].clone();
    // A user's delete: the server only marks the bound pod (grace 2 s).
    let marked = api
        .delete("Pod", "default", "web", &json!({}))
        .expect("marked");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    wait_for("the pod gone from the server", || {
        api.get("Pod", "default", "web").is_none().then_some(())
    })
    .await;
    let deletes: Vec<_> = api
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE" && s.path == "/api/v1/namespaces/default/pods/web")
        .collect();
    let last = deletes.last().expect("the agent's delete");
    assert_eq!(last.body["gracePeriodSeconds"], 0, "{}", last.body);
    assert_eq!(last.body["preconditions"]["uid"], uid, "{}", last.body);
    agent.wait_gone("web", WAIT).await;
    agent.finish().await;
}
