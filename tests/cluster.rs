//! Cluster mode with the agent on the real containerd: the Node registered
//! and kept, the node Lease, pods bound to the node, their status and
//! deletion, mirror pods, events, ConfigMaps, Secrets and tokens. Every
//! scenario runs against the stand-in API server (tests/support/apiserver),
//! with its faults, and against a real cluster when asked:
//! `KUBECONFIG=<an admin's kubeconfig> cargo test -p wasmlet-tests --test cluster -- --ignored`.

use std::time::Duration;

use serde_json::{Value, json};
use wasmlet_tests::Node;
use wasmlet_tests::apiserver::{ApiServer, PatchType};
use wasmlet_tests::cluster_api::{ClusterApi, RealCluster};
use wasmlet_tests::daemon::Daemon;

const WAIT: Duration = Duration::from_secs(30);

/// An agent joined to `api`, with its Lease renewed every second and its
/// status computed every second (`extra`: more config lines).
fn joined(api: &dyn ClusterApi, tag: &str, extra: &str) -> Daemon {
    let mut daemon = Daemon::new(&Node::from_env(), tag, "");
    join(&mut daemon, api, extra);
    daemon.start();
    daemon
}

/// Points `daemon` (not started yet) at `api`.
fn join(daemon: &mut Daemon, api: &dyn ClusterApi, extra: &str) {
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

async fn the_node_registers_reports_ready_and_patches_only_changes(api: &dyn ClusterApi) {
    let agent = joined(
        api,
        "cluster-node",
        "nodeLabels:\n  team: blue\nregisterWithTaints:\n- key: dedicated\n  value: wasm\n  effect: NoSchedule\nnodeStatusReportFrequency: 1h\nkubeReserved:\n  memory: 64Mi\n  cpu: 100m\nsystemReserved:\n  memory: 64Mi\n",
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
    // Less what kubeReserved and systemReserved hold back.
    let bytes = |q: &Value| -> i64 {
        let q = q.as_str().unwrap_or_default();
        q.strip_suffix("Ki").map_or_else(
            || q.parse().unwrap_or(0),
            |k| k.parse::<i64>().unwrap_or(0) * 1024,
        )
    };
    assert_eq!(
        bytes(&status["capacity"]["memory"]) - bytes(&status["allocatable"]["memory"]),
        128 << 20,
        "{status}"
    );
    let cpus: i64 = status["capacity"]["cpu"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        status["allocatable"]["cpu"],
        format!("{}m", cpus * 1000 - 100)
    );
    assert_eq!(
        status["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        agent.kubelet_port
    );
    assert!(
        status["addresses"].as_array().is_some_and(|a| a
            .iter()
            .any(|a| a["type"] == "Hostname" && a["address"] == name.as_str())),
        "{}",
        status["addresses"]
    );
    assert_eq!(condition(&node, "Ready")["reason"], "KubeletReady");
    // The machine's own disk decides (the kubelet's nodefs.available<10%,
    // inodesFree<5%): a nearly full test machine is under pressure.
    let disk = agent
        .dir
        .ancestors()
        .find(|p| p.exists())
        .and_then(|p| rustix::fs::statvfs(p).ok())
        .is_some_and(|s| s.f_bavail * 100 < s.f_blocks * 10 || s.f_favail * 100 < s.f_files * 5);
    let disk_reason = if disk {
        "KubeletHasDiskPressure"
    } else {
        "KubeletHasNoDiskPressure"
    };
    for (kind, reason) in [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", disk_reason),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ] {
        assert_eq!(condition(&node, kind)["reason"], reason, "{kind}");
    }
    // Computed every second, the same status is not sent again within the
    // report period.
    // The kubelet's node events, about the Node by name.
    for reason in ["Starting", "NodeHasSufficientMemory", "NodeReady"] {
        let event = wait_for(&format!("a {reason} event"), || {
            api.list("Event").into_iter().find(|e| {
                e["reason"] == reason
                    && e["involvedObject"]["kind"] == "Node"
                    && e["involvedObject"]["name"] == name.as_str()
            })
        })
        .await;
        assert_eq!(event["involvedObject"]["uid"], name.as_str());
        assert_eq!(event["metadata"]["namespace"], "default");
    }
    if let Some(stand_in) = api.stand_in() {
        let sent = status_patches(stand_in, &name);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(
            status_patches(stand_in, &name),
            sent,
            "an unchanged status was patched"
        );
    }
    agent.finish().await;
}

async fn an_existing_node_gets_its_default_labels_back_and_an_unchanged_status_is_reported(
    api: &dyn ClusterApi,
) {
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
    join(&mut agent, api, "nodeStatusReportFrequency: 2s\n");
    // The API server fails the first requests: registration retries.
    if let Some(stand_in) = api.stand_in() {
        stand_in.fail_next(3, 500);
    }
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

async fn the_lease_is_renewed_through_a_conflict_and_an_outage(api: &dyn ClusterApi) {
    let agent = joined(api, "cluster-lease", "");
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
    if let Some(stand_in) = api.stand_in() {
        stand_in.stop();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = api
            .get("Lease", "kube-node-lease", &name)
            .expect("the lease");
        stand_in.resume().await;
        wait_for("a renewal after the outage", renewed(&before)).await;
    }
    drop(lease);
    agent.finish().await;
}

/// A pod the scheduler bound to `node`, as the API server holds it.
fn bound_pod(api: &dyn ClusterApi, name: &str, node: &str) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": api.namespace()},
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

/// Deletes pod `name` of the scenario's namespace at once (grace 0).
fn delete_now(api: &dyn ClusterApi, name: &str) {
    api.delete(
        "Pod",
        api.namespace(),
        name,
        &json!({"gracePeriodSeconds": 0}),
    )
    .expect("deleted");
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

async fn pods_bound_to_the_node_run_and_survive_dropped_watches_compaction_and_outages(
    api: &dyn ClusterApi,
) {
    if let Some(stand_in) = api.stand_in() {
        stand_in.set_bookmark_interval(Duration::from_millis(500));
    }
    let agent = joined(api, "cluster-pods", "");
    let name = agent.node_name.clone();
    // One pod for this node, one for another: only the first is this node's.
    api.create(bound_pod(api, "web", &name)).expect("a pod");
    api.create(bound_pod(api, "elsewhere", "another-node"))
        .expect("a pod");
    let pod = agent.wait_pod("web", WAIT, running).await;
    let id = container_id(&pod);
    assert!(
        agent.pod("elsewhere").await.is_none(),
        "another node's pod ran here"
    );
    let uid = api.get("Pod", api.namespace(), "web").expect("the pod")["metadata"]["uid"].clone();
    assert_eq!(pod["metadata"]["uid"], uid, "the API's UID is the pod's");

    // A second pod arrives through the watch.
    api.create(bound_pod(api, "late", &name)).expect("a pod");
    agent.wait_pod("late", WAIT, running).await;

    // A dropped watch, then an outage during which a pod is bound and the
    // log is compacted past the agent's resourceVersion: its watch is 410
    // Gone and it must list again to see the pod. Nothing restarts.
    let stand_in = api.stand_in();
    if let Some(stand_in) = stand_in {
        stand_in.drop_watches();
        stand_in.stop();
    }
    api.create(bound_pod(api, "after", &name)).expect("a pod");
    if let Some(stand_in) = stand_in {
        stand_in.compact();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stand_in.resume().await;
    }
    agent.wait_pod("after", WAIT, running).await;
    let pod = agent.pod("web").await.expect("web still there");
    assert_eq!(container_id(&pod), id, "the container was replaced");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);

    // Deleted on the server (grace 0, as after a graceful deletion): gone here.
    delete_now(api, "late");
    agent.wait_gone("late", WAIT).await;
    assert!(agent.pod("web").await.is_some());
    for pod in ["web", "after"] {
        delete_now(api, pod);
    }
    agent.finish().await;
}

async fn pod_status_reaches_the_api_server_keeps_others_conditions_and_waits_out_an_outage(
    api: &dyn ClusterApi,
) {
    let agent = joined(api, "cluster-status", "");
    let name = agent.node_name.clone();
    let mut short = bound_pod(api, "short", &name);
    short["spec"]["restartPolicy"] = json!("Never");
    short["spec"]["containers"][0]["command"] = json!(["sleep", "4"]);
    api.create(bound_pod(api, "web", &name)).expect("a pod");
    api.create(short).expect("a pod");
    // A condition someone else owns (a readiness gate's, say).
    let gate = json!({"type": "example.com/Gate", "status": "True"});
    api.patch(
        "Pod",
        api.namespace(),
        "web",
        PatchType::Strategic,
        &json!({"status": {"conditions": [gate]}}),
        true,
    )
    .expect("a status patch");
    let local = agent.wait_pod("web", WAIT, running).await;
    let served = wait_for("web's status on the server", || {
        api.get("Pod", api.namespace(), "web")
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
    let seen = api.stand_in().map(ApiServer::seen).unwrap_or_default();
    for patch in seen
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
    if let Some(stand_in) = api.stand_in() {
        stand_in.stop();
    }
    agent
        .wait_pod("short", WAIT, |p| p["status"]["phase"] == "Succeeded")
        .await;
    if let Some(stand_in) = api.stand_in() {
        stand_in.resume().await;
    }
    wait_for("short's Succeeded on the server", || {
        api.get("Pod", api.namespace(), "short")
            .filter(|p| p["status"]["phase"] == "Succeeded")
    })
    .await;
    for pod in ["web", "short"] {
        delete_now(api, pod);
    }
    agent.finish().await;
}

async fn a_deleted_pod_is_stopped_with_its_grace_then_deleted_for_good_with_its_uid(
    api: &dyn ClusterApi,
) {
    let agent = joined(api, "cluster-delete", "");
    let name = agent.node_name.clone();
    api.create(bound_pod(api, "web", &name)).expect("a pod");
    agent.wait_pod("web", WAIT, running).await;
    let uid = api.get("Pod", api.namespace(), "web").expect("the pod")["metadata"]["uid"].clone();
    // A user's delete: the server only marks the bound pod (grace 2 s).
    let marked = api
        .delete("Pod", api.namespace(), "web", &json!({}))
        .expect("marked");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    wait_for("the pod gone from the server", || {
        api.get("Pod", api.namespace(), "web")
            .is_none()
            .then_some(())
    })
    .await;
    if let Some(stand_in) = api.stand_in() {
        let deletes: Vec<_> = stand_in
            .seen()
            .into_iter()
            .filter(|s| s.method == "DELETE" && s.path == "/api/v1/namespaces/default/pods/web")
            .collect();
        let last = deletes.last().expect("the agent's delete");
        assert_eq!(last.body["gracePeriodSeconds"], 0, "{}", last.body);
        assert_eq!(last.body["preconditions"]["uid"], uid, "{}", last.body);
    }
    agent.wait_gone("web", WAIT).await;
    agent.finish().await;
}

/// The mirror pods of `node`'s static pods.
fn mirrors(api: &dyn ClusterApi, node: &str) -> Vec<Value> {
    api.list("Pod")
        .into_iter()
        .filter(|p| {
            p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string()
                && p["spec"]["nodeName"] == node
        })
        .collect()
}

async fn a_static_pod_has_a_mirror_pod_that_comes_back_carries_its_status_and_goes_with_it(
    api: &dyn ClusterApi,
) {
    let mut agent = Daemon::new(&Node::from_env(), "cluster-mirror", "");
    join(&mut agent, api, "");
    let image = Node::from_env().test_image;
    agent.add_pod("web", &image, &["sleep", "3600"]);
    agent.start();
    let node = agent.node_name.clone();
    let pod_name = format!("web-{node}");
    let local = agent.wait_pod("web", WAIT, running).await;
    let mirror = wait_for("a Running mirror pod", || {
        api.get("Pod", "default", &pod_name)
            .filter(|p| running(p) && !container_id(p).is_empty())
    })
    .await;
    let annotations = &mirror["metadata"]["annotations"];
    assert_eq!(
        annotations["kubernetes.io/config.mirror"],
        local["metadata"]["annotations"]["kubernetes.io/config.hash"]
    );
    let owner = &mirror["metadata"]["ownerReferences"][0];
    let registered = api.get("Node", "", &node).expect("the node");
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["uid"]),
        (&json!("Node"), &json!(node), &registered["metadata"]["uid"])
    );
    assert_eq!(mirror["spec"]["nodeName"], node.as_str());
    assert_ne!(
        mirror["metadata"]["uid"], local["metadata"]["uid"],
        "the server gives a mirror its own UID"
    );
    assert_eq!(container_id(&mirror), container_id(&local));
    let status_path = format!("/api/v1/namespaces/default/pods/{pod_name}/status");
    let seen = api.stand_in().map(ApiServer::seen).unwrap_or_default();
    for patch in seen
        .iter()
        .filter(|s| s.method == "PATCH" && s.path == status_path)
    {
        assert_eq!(patch.body["metadata"]["uid"], mirror["metadata"]["uid"]);
    }

    // Deleted by a user (graceful, as kubectl does): a new mirror, with a
    // new UID, and the static pod runs on.
    let first = mirror["metadata"]["uid"].clone();
    api.delete("Pod", "default", &pod_name, &json!({}))
        .expect("marked");
    let again = wait_for("a new Running mirror", || {
        api.get("Pod", "default", &pod_name).filter(|p| {
            p["metadata"]["uid"] != first
                && p["metadata"]["deletionTimestamp"].is_null()
                && running(p)
        })
    })
    .await;

    // Killed and started again: the same mirror stays, nothing restarts.
    agent.kill_9();
    agent.start();
    agent.wait_pod("web", WAIT, running).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = agent.pod("web").await.expect("web");
    assert_eq!(container_id(&after), container_id(&local), "restarted");
    let now = mirrors(api, &node);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        now[0]["metadata"]["uid"], again["metadata"]["uid"],
        "the mirror was made again after a restart"
    );

    // The manifest goes: so does its mirror.
    agent.remove_manifest("web.yaml");
    wait_for("the mirror gone", || {
        api.get("Pod", "default", &pod_name).is_none().then_some(())
    })
    .await;
    agent.finish().await;
}

async fn events_reach_the_api_server_and_a_repeat_counts_on_its_first_copy(api: &dyn ClusterApi) {
    let agent = joined(api, "cluster-events", "");
    let node = agent.node_name.clone();
    let mut pod = bound_pod(api, "flaky", &node);
    pod["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1});
    api.create(pod).expect("a pod");
    let uid = wait_for("the pod's UID", || {
        api.get("Pod", api.namespace(), "flaky")
            .map(|p| p["metadata"]["uid"].clone())
    })
    .await;
    let unhealthy = |api: &dyn ClusterApi| -> Vec<Value> {
        api.list("Event")
            .into_iter()
            .filter(|e| e["reason"] == "Unhealthy" && e["involvedObject"]["name"] == "flaky")
            .collect()
    };
    let event = wait_for("an Unhealthy event counted three times", || {
        unhealthy(api)
            .into_iter()
            .find(|e| e["count"].as_i64().is_some_and(|c| c >= 3))
    })
    .await;
    assert_eq!(unhealthy(api).len(), 1, "a repeat was written anew");
    let object = &event["involvedObject"];
    assert_eq!(
        (
            &object["kind"],
            &object["apiVersion"],
            &object["namespace"],
            &object["uid"]
        ),
        (&json!("Pod"), &json!("v1"), &json!(api.namespace()), &uid)
    );
    assert_eq!(object["fieldPath"], "spec.containers{main}");
    assert_eq!(
        event["source"],
        json!({"component": "kubelet", "host": node})
    );
    assert_eq!(event["reportingInstance"], node.as_str());
    assert_eq!(event["type"], "Warning");
    assert_ne!(event["firstTimestamp"], event["lastTimestamp"]);
    let name = event["metadata"]["name"].as_str().unwrap_or_default();
    let path = format!("/api/v1/namespaces/default/events/{name}");
    if let Some(stand_in) = api.stand_in() {
        assert!(
            stand_in
                .seen()
                .iter()
                .any(|s| s.method == "PATCH" && s.path == path),
            "a repeat is a patch of the first copy"
        );
    }
    assert!(
        api.list("Event")
            .iter()
            .any(|e| e["reason"] == "Started" && e["involvedObject"]["uid"] == uid),
        "no Started event"
    );
    delete_now(api, "flaky");
    agent.finish().await;
}

async fn an_api_pod_reads_its_config_maps_secrets_and_token_as_files_and_env(api: &dyn ClusterApi) {
    let agent = joined(api, "cluster-objects", "syncFrequency: 2s\n");
    let node = agent.node_name.clone();
    let created = [
        json!({"kind": "ConfigMap", "metadata": {"name": "settings", "namespace": api.namespace()},
               "data": {"greeting": "hello", "mode": "fast", "not=a-name": "x"}}),
        // "s3cret"
        json!({"kind": "Secret", "metadata": {"name": "creds", "namespace": api.namespace()},
               "data": {"password": "czNjcmV0"}}),
        json!({"kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": api.namespace()}}),
    ];
    for object in created {
        api.create(object).expect("created");
    }
    // Services: the API server's own (a real cluster has it) and one in the
    // pod's namespace; the stand-in allocates no cluster IPs.
    let services = [
        json!({"kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
               "spec": {"ports": [{"name": "https", "port": 443}]}}),
        json!({"kind": "Service", "metadata": {"name": "settings-db", "namespace": api.namespace()},
               "spec": {"ports": [{"port": 5432}, {"name": "metrics", "port": 9187}]}}),
    ];
    for (i, mut service) in services.into_iter().enumerate() {
        if api.stand_in().is_some() {
            service["spec"]["clusterIP"] = json!(format!("10.96.0.{}", i + 1));
        }
        // The real cluster's own `kubernetes` exists already.
        let _ = api.create(service);
    }
    let ip = |namespace: &str, name: &str| {
        api.get("Service", namespace, name).expect("a service")["spec"]["clusterIP"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (master_ip, db_ip) = (
        ip("default", "kubernetes"),
        ip(api.namespace(), "settings-db"),
    );
    let mut pod = bound_pod(api, "reader", &node);
    pod["spec"]["serviceAccountName"] = json!("reader");
    pod["spec"]["volumes"] = json!([
        {"name": "settings", "configMap": {"name": "settings"}},
        {"name": "creds", "secret": {"secretName": "creds",
            "items": [{"key": "password", "path": "db/password", "mode": 0o400}]}},
        {"name": "api-access", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "settings", "items": [{"key": "greeting", "path": "greeting"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ]}},
    ]);
    let container = &mut pod["spec"]["containers"][0];
    container["volumeMounts"] = json!([
        {"name": "settings", "mountPath": "/etc/settings"},
        {"name": "creds", "mountPath": "/etc/creds"},
        {"name": "api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
    ]);
    container["env"] = json!([
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "ABSENT", "valueFrom": {"configMapKeyRef":
            {"name": "nowhere", "key": "x", "optional": true}}},
    ]);
    container["envFrom"] = json!([{"prefix": "CFG_", "configMapRef": {"name": "settings"}}]);
    api.create(pod).expect("a pod");
    let local = agent.wait_pod("reader", WAIT, running).await;
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let read = wasmlet_tests::daemon::exec_in(
        &Node::from_env(),
        &local,
        "main",
        &format!(
            "cat /etc/settings/greeting; echo; cat /etc/creds/db/password; echo; \
             stat -c %a /etc/creds/db/password; echo \"$GREETING $PASSWORD $CFG_mode ${{ABSENT-unset}}\"; \
             echo \"$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT $SETTINGS_DB_PORT_9187_TCP\"; \
             cat {sa}/greeting; echo; cat {sa}/namespace; echo; cat {sa}/token"
        ),
    )
    .await
    .expect("read inside the container");
    let lines: Vec<&str> = read.lines().collect();
    let services_line = format!("{master_ip}:443 tcp://{db_ip}:9187");
    assert_eq!(
        lines[..lines.len().min(7)],
        [
            "hello",
            "s3cret",
            "400",
            "hello s3cret fast unset",
            &services_line,
            "hello",
            api.namespace(),
        ]
    );
    let token = lines.get(7).copied().unwrap_or_default();
    if let Some(stand_in) = api.stand_in() {
        let tokens = stand_in.tokens();
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        assert_eq!(token, tokens[0]["status"]["token"]);
        let spec = &tokens[0]["spec"];
        assert_eq!(spec["expirationSeconds"], 3607);
        assert_eq!(spec["boundObjectRef"]["kind"], "Pod");
        assert_eq!(spec["boundObjectRef"]["uid"], local["metadata"]["uid"]);
        assert_eq!(tokens[0]["metadata"]["name"], "reader");
    } else {
        assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
    }
    agent
        .wait_event("InvalidEnvironmentVariableNames", "not=a-name", WAIT)
        .await;

    // The ConfigMap changes: its files follow (the environment does not).
    api.patch(
        "ConfigMap",
        api.namespace(),
        "settings",
        PatchType::Merge,
        &json!({"data": {"greeting": "bonjour"}}),
        false,
    )
    .expect("patched");
    let node_env = Node::from_env();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = wasmlet_tests::daemon::exec_in(
            &node_env,
            &local,
            "main",
            &format!("cat /etc/settings/greeting {sa}/greeting; echo \" $GREETING\""),
        )
        .await
        .unwrap_or_default();
        if now == "bonjourbonjour hello" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the files did not follow the ConfigMap: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    delete_now(api, "reader");
    agent.finish().await;
}

async fn a_pod_deleted_while_the_agent_was_down_is_cleaned_up_and_the_others_run_on(
    api: &dyn ClusterApi,
) {
    let mut agent = joined(api, "cluster-down", "");
    let node = agent.node_name.clone();
    api.create(bound_pod(api, "stay", &node)).expect("a pod");
    api.create(bound_pod(api, "leave", &node)).expect("a pod");
    let stay = agent.wait_pod("stay", WAIT, running).await;
    agent.wait_pod("leave", WAIT, running).await;
    agent.wait_runtime_objects((2, 2), WAIT).await;
    agent.kill_9();
    // Deleted for good while no agent watched.
    delete_now(api, "leave");
    agent.start();
    agent.wait_runtime_objects((1, 1), WAIT).await;
    agent.wait_gone("leave", WAIT).await;
    let after = agent.wait_pod("stay", WAIT, running).await;
    assert_eq!(container_id(&after), container_id(&stay), "restarted");
    delete_now(api, "stay");
    agent.finish().await;
}

/// A `kubernetes.io/dockerconfigjson` Secret with one login for `registry`.
fn pull_secret(api: &dyn ClusterApi, name: &str, registry: &str, login: &str) -> Value {
    let auth = k8s_openapi::ByteString(login.as_bytes().to_vec());
    let config = json!({"auths": {registry: {"auth": auth}}}).to_string();
    json!({
        "kind": "Secret",
        "metadata": {"name": name, "namespace": api.namespace()},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": k8s_openapi::ByteString(config.into_bytes())},
    })
}

fn waiting_reason(pod: &Value) -> &str {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
}

async fn an_image_from_a_private_registry_is_pulled_with_the_pods_pull_secrets(
    api: &dyn ClusterApi,
) {
    let agent = joined(api, "cluster-pull", "");
    let node = agent.node_name.clone();
    let image = Node::from_env().private_image;
    let registry = image.split('/').next().unwrap_or_default().to_owned();
    let login = Node::from_env().private_login;
    for secret in [
        pull_secret(api, "a-wrong-login", &registry, "wasmlet:not-the-password"),
        pull_secret(api, "regcred", &registry, &login),
    ] {
        api.create(secret).expect("a pull secret");
    }
    let private = |name: &str, secrets: Value| {
        let mut pod = bound_pod(api, name, &node);
        pod["spec"]["restartPolicy"] = json!("Never");
        pod["spec"]["imagePullSecrets"] = secrets;
        let container = &mut pod["spec"]["containers"][0];
        container["image"] = json!(image);
        container["imagePullPolicy"] = json!("Always");
        container["command"] = json!(["true"]);
        pod
    };
    // Without a login the registry says no; with a wrong one too; with the
    // wrong login tried first and then the right one, the pull works.
    api.create(private("anonymous", json!([]))).expect("a pod");
    api.create(private("wrong", json!([{"name": "a-wrong-login"}])))
        .expect("a pod");
    api.create(private(
        "allowed",
        json!([{"name": "a-wrong-login"}, {"name": "regcred"}, {"name": "absent"}]),
    ))
    .expect("a pod");
    let succeeded = |p: &Value| p["status"]["phase"] == "Succeeded";
    agent.wait_pod("allowed", WAIT, succeeded).await;
    for name in ["anonymous", "wrong"] {
        let refused = agent
            .wait_pod(name, WAIT, |p| {
                ["ErrImagePull", "ImagePullBackOff"].contains(&waiting_reason(p))
            })
            .await;
        assert_eq!(refused["status"]["phase"], "Pending", "{refused}");
    }
    // The missing secret was named, and the pull went on without it.
    let warned = wait_for("the missing pull secret's event", || {
        api.list("Event").into_iter().find(|e| {
            e["reason"] == "FailedToRetrieveImagePullSecret"
                && e["involvedObject"]["name"] == "allowed"
        })
    })
    .await;
    assert!(
        warned["message"]
            .as_str()
            .unwrap_or_default()
            .contains("absent: not found"),
        "{warned}"
    );
    for pod in ["anonymous", "wrong", "allowed"] {
        delete_now(api, pod);
    }
    agent.finish().await;
}

/// The Ready condition of a pod as the API server holds it.
fn ready_condition(pod: &Value) -> Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or(Value::Null)
}

async fn after_a_restart_the_agent_keeps_start_and_transition_times_and_rewrites_no_status(
    api: &dyn ClusterApi,
) {
    let mut agent = joined(api, "cluster-resync", "");
    let node = agent.node_name.clone();
    api.create(bound_pod(api, "kept", &node)).expect("a pod");
    let before = wait_for("kept Running and Ready on the server", || {
        api.get("Pod", api.namespace(), "kept")
            .filter(|p| running(p) && ready_condition(p)["status"] == "True")
    })
    .await;
    // Times have whole seconds: a rewrite after this would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A write of what the server holds changes nothing there (not even the
    // resourceVersion); the stand-in's log shows it was not even sent.
    let status_path = format!("/api/v1/namespaces/{}/pods/kept/status", api.namespace());
    let patches = |api: &dyn ClusterApi| {
        api.stand_in().map(|s| {
            s.seen()
                .iter()
                .filter(|seen| seen.method == "PATCH" && seen.path == status_path)
                .count()
        })
    };
    let patched_before = patches(api);
    agent.kill_9();
    agent.start();
    agent.wait_pod("kept", WAIT, running).await;
    // A pod bound now has its status written, so the round that saw "kept"
    // again has been made.
    api.create(bound_pod(api, "witness", &node)).expect("a pod");
    wait_for("witness Running on the server", || {
        api.get("Pod", api.namespace(), "witness").filter(running)
    })
    .await;
    let after = api.get("Pod", api.namespace(), "kept").expect("kept");
    assert_eq!(after["status"]["startTime"], before["status"]["startTime"]);
    assert_eq!(
        ready_condition(&after)["lastTransitionTime"],
        ready_condition(&before)["lastTransitionTime"]
    );
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "the pod was written again: {after}"
    );
    assert_eq!(
        patches(api),
        patched_before,
        "the same status was sent again"
    );
    assert_eq!(container_id(&after), container_id(&before), "restarted");
    for pod in ["kept", "witness"] {
        delete_now(api, pod);
    }
    agent.finish().await;
}

async fn a_pod_with_a_readiness_gate_is_ready_once_its_condition_is_true(api: &dyn ClusterApi) {
    let agent = joined(api, "cluster-gate", "");
    let node = agent.node_name.clone();
    let mut pod = bound_pod(api, "gated", &node);
    pod["spec"]["readinessGates"] = json!([{"conditionType": "example.com/load-balancer"}]);
    api.create(pod).expect("a pod");
    let ready = ready_condition;
    let held = wait_for("Ready held back by the gate", || {
        api.get("Pod", api.namespace(), "gated")
            .filter(|p| running(p) && ready(p)["reason"] == "ReadinessGatesNotReady")
    })
    .await;
    assert_eq!(ready(&held)["status"], "False");
    assert_eq!(
        ready(&held)["message"],
        "corresponding condition of pod readiness gate \"example.com/load-balancer\" does not exist."
    );
    // A controller sets the gate's condition.
    api.patch(
        "Pod",
        api.namespace(),
        "gated",
        PatchType::Strategic,
        &json!({"status": {"conditions": [{"type": "example.com/load-balancer", "status": "True"}]}}),
        true,
    )
    .expect("the gate set");
    wait_for("Ready once the gate holds", || {
        api.get("Pod", api.namespace(), "gated")
            .filter(|p| ready(p)["status"] == "True")
    })
    .await;
    delete_now(api, "gated");
    agent.finish().await;
}

/// Each scenario twice: against the stand-in, and (ignored unless asked
/// for) against the cluster `KUBECONFIG` names.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod stand_in {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::ApiServer::start().await).await;
                }
            )*
        }
        mod real_cluster {
            $(
                #[tokio::test]
                #[ignore = "needs a cluster: KUBECONFIG=... cargo test --test cluster -- --ignored"]
                async fn $name() {
                    super::$name(&super::RealCluster::from_env()).await;
                }
            )*
        }
    };
}

scenarios!(
    the_node_registers_reports_ready_and_patches_only_changes,
    an_existing_node_gets_its_default_labels_back_and_an_unchanged_status_is_reported,
    the_lease_is_renewed_through_a_conflict_and_an_outage,
    pods_bound_to_the_node_run_and_survive_dropped_watches_compaction_and_outages,
    pod_status_reaches_the_api_server_keeps_others_conditions_and_waits_out_an_outage,
    a_deleted_pod_is_stopped_with_its_grace_then_deleted_for_good_with_its_uid,
    a_static_pod_has_a_mirror_pod_that_comes_back_carries_its_status_and_goes_with_it,
    events_reach_the_api_server_and_a_repeat_counts_on_its_first_copy,
    an_api_pod_reads_its_config_maps_secrets_and_token_as_files_and_env,
    a_pod_deleted_while_the_agent_was_down_is_cleaned_up_and_the_others_run_on,
    after_a_restart_the_agent_keeps_start_and_transition_times_and_rewrites_no_status,
    an_image_from_a_private_registry_is_pulled_with_the_pods_pull_secrets,
    a_pod_with_a_readiness_gate_is_ready_once_its_condition_is_true,
);

/// A minute without the API server (stand-in only: it is a fault).
#[tokio::test]
async fn a_minute_without_the_api_server_stops_nothing_and_statuses_arrive_after() {
    let api = ApiServer::start().await;
    let mut agent = Daemon::new(&Node::from_env(), "cluster-outage", "");
    join(&mut agent, &api, "");
    agent.add_pod("static", &Node::from_env().test_image, &["sleep", "3600"]);
    agent.start();
    let node = agent.node_name.clone();
    let mut short = bound_pod(&api, "short", &node);
    short["spec"]["restartPolicy"] = json!("Never");
    short["spec"]["containers"][0]["command"] = json!(["sleep", "20"]);
    api.create(bound_pod(&api, "web", &node)).expect("a pod");
    api.create(short).expect("a pod");
    let web = agent.wait_pod("web", WAIT, running).await;
    agent.wait_pod("short", WAIT, running).await;
    let mirror = format!("static-{node}");
    wait_for("the mirror pod", || api.get("Pod", "default", &mirror)).await;

    api.stop();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = agent.pod("web").await.expect("web runs on");
    assert_eq!(container_id(&during), container_id(&web), "restarted");
    assert_eq!(
        agent.pod("short").await.expect("short")["status"]["phase"],
        "Succeeded",
        "short finished while the server was down"
    );
    api.resume().await;
    let back = Duration::from_secs(90);
    let deadline = tokio::time::Instant::now() + back;
    loop {
        let arrived = api
            .get("Pod", "default", "short")
            .is_some_and(|p| p["status"]["phase"] == "Succeeded");
        if arrived {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "short's status did not arrive after the outage"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The watch is back: a pod bound now runs; the mirror is the same.
    api.create(bound_pod(&api, "late", &node)).expect("a pod");
    agent.wait_pod("late", back, running).await;
    let same = api.get("Pod", "default", &mirror).expect("the mirror");
    let after = agent.pod("web").await.expect("web");
    assert_eq!(container_id(&after), container_id(&web), "restarted");
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(same["metadata"]["deletionTimestamp"].is_null());
    for pod in ["web", "short", "late"] {
        delete_now(&api, pod);
    }
    agent.finish().await;
}
