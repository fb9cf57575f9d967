//! `wasmlet pods`: the agent's `/pods` as a table, like `kubectl get pods -o wide`.

use std::path::PathBuf;

use serde_json::Value;

use crate::kubelet_client::{KubeletClient, KubeletFlags};

pub async fn run(flags: &KubeletFlags, default_ca: PathBuf) -> anyhow::Result<()> {
    let client = KubeletClient::new(flags, default_ca)?;
    let list = client.get_json("/pods").await?;
    print!("{}", table(&list));
    Ok(())
}

/// READY, STATUS and RESTARTS of one pod, as `kubectl get pods` prints
/// them (its printPod): an init container's trouble as `Init:<reason>` or
/// `Init:<n>/<m>`, a container's waiting or terminated reason (or
/// `ExitCode:<n>`, `Signal:<n>`), `Completed` only once nothing runs,
/// `Terminating` while a deletion is under way; sidecars count as containers.
fn kubectl_status(pod: &Value) -> (usize, usize, i64, String) {
    let status = &pod["status"];
    let spec_inits = list(&pod["spec"]["initContainers"]);
    let sidecar = |name: &Value| {
        spec_inits
            .iter()
            .any(|c| c["name"] == *name && c["restartPolicy"] == "Always")
    };
    let total = list(&pod["spec"]["containers"]).len()
        + spec_inits
            .iter()
            .filter(|c| c["restartPolicy"] == "Always")
            .count();
    let mut reason = status["reason"]
        .as_str()
        .or_else(|| status["phase"].as_str())
        .unwrap_or("Unknown")
        .to_owned();
    let (mut ready, mut restarts) = (0, 0);
    let mut initializing = false;
    for (i, c) in list(&status["initContainerStatuses"]).iter().enumerate() {
        restarts += c["restartCount"].as_i64().unwrap_or(0);
        if sidecar(&c["name"]) && c["started"] == true {
            ready += usize::from(c["ready"] == true);
            continue;
        }
        let terminated = &c["state"]["terminated"];
        let waiting = c["state"]["waiting"]["reason"].as_str().unwrap_or_default();
        if terminated.is_object() && terminated["exitCode"] == 0 {
            continue;
        }
        reason = if terminated.is_object() {
            match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => exit_text("Init:", terminated),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", spec_inits.len())
        };
        initializing = true;
        break;
    }
    let initialized = list(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    if !initializing || initialized {
        let mut running = false;
        for c in list(&status["containerStatuses"]).iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            let state = &c["state"];
            let terminated = &state["terminated"];
            if let Some(r) = state["waiting"]["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                reason = r.to_owned();
            } else if let Some(r) = terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_owned();
            } else if terminated.is_object() {
                reason = exit_text("", terminated);
            } else if c["ready"] == true && state["running"].is_object() {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            let pod_ready = list(&status["conditions"])
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
        }
    }
    let finished = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !pod["metadata"]["deletionTimestamp"].is_null() && !finished {
        reason = "Terminating".to_owned();
    }
    (ready, total, restarts, reason)
}

/// A JSON list's items (none if it is not a list).
fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// `ExitCode:<n>` or `Signal:<n>` of a terminated state without a reason.
fn exit_text(prefix: &str, terminated: &Value) -> String {
    match terminated["signal"].as_i64().filter(|s| *s != 0) {
        Some(signal) => format!("{prefix}Signal:{signal}"),
        None => format!(
            "{prefix}ExitCode:{}",
            terminated["exitCode"].as_i64().unwrap_or(0)
        ),
    }
}

fn table(list: &Value) -> String {
    let empty = Vec::new();
    let mut rows =
        vec![["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP"].map(String::from)];
    for pod in list["items"].as_array().unwrap_or(&empty) {
        let (ready, total, restarts, reason) = kubectl_status(pod);
        let text = |v: &Value| v.as_str().unwrap_or("<none>").to_owned();
        rows.push([
            text(&pod["metadata"]["namespace"]),
            text(&pod["metadata"]["name"]),
            format!("{ready}/{total}"),
            reason,
            restarts.to_string(),
            text(&pod["status"]["podIP"]),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_reason_that_matters() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "web-n", "namespace": "default"},
             "spec": {"containers": [{"name": "web"}]},
             "status": {"phase": "Running", "podIP": "10.217.0.5",
                        "containerStatuses": [{"ready": true, "restartCount": 0, "state": {"running": {}}}]}},
            {"metadata": {"name": "crashy-n", "namespace": "default"},
             "spec": {"containers": [{"name": "crashy"}]},
             "status": {"phase": "Running",
                        "containerStatuses": [{"ready": false, "restartCount": 3,
                                               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}},
            {"metadata": {"name": "greedy-n", "namespace": "default"},
             "status": {"phase": "Failed", "reason": "OutOfcpu"}}
        ]});
        let out = table(&list);
        assert!(out.contains("web-n      1/1     Running"), "{out}");
        assert!(out.contains("CrashLoopBackOff   3"), "{out}");
        assert!(out.contains("OutOfcpu"), "{out}");
    }

    fn status_of(pod: Value) -> String {
        let (ready, total, restarts, reason) = kubectl_status(&pod);
        format!("{ready}/{total} {reason} {restarts}")
    }

    #[test]
    fn statuses_read_as_kubectl_prints_them() {
        let spec = serde_json::json!({
            "initContainers": [{"name": "a"}, {"name": "b"}, {"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}],
        });
        let pod =
            |status: Value| serde_json::json!({"metadata": {}, "spec": spec, "status": status});
        let done = serde_json::json!({"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        // The second init container runs: Init:1/3.
        assert_eq!(
            status_of(pod(
                serde_json::json!({"phase": "Pending", "initContainerStatuses": [
                    done,
                    {"name": "b", "restartCount": 0, "state": {"running": {}}},
                ]})
            )),
            "0/2 Init:1/3 0"
        );
        // It crash-loops: Init:CrashLoopBackOff, its restarts counted.
        assert_eq!(
            status_of(pod(
                serde_json::json!({"phase": "Pending", "initContainerStatuses": [
                    done,
                    {"name": "b", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                ]})
            )),
            "0/2 Init:CrashLoopBackOff 4"
        );
        // Failed without a reason: Init:ExitCode:2.
        assert_eq!(
            status_of(pod(
                serde_json::json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}},
                ]})
            )),
            "0/2 Init:ExitCode:2 0"
        );
        // Initialized, the sidecar started and ready, the app ready: 2/2 Running.
        let running = serde_json::json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [done,
                {"name": "b", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "proxy", "restartCount": 1, "started": true, "ready": true, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "restartCount": 0, "ready": true, "state": {"running": {}}}]});
        assert_eq!(status_of(pod(running.clone())), "2/2 Running 1");
        // Being deleted: Terminating.
        let mut deleting = pod(running);
        deleting["metadata"]["deletionTimestamp"] = "2026-12-07T10:00:00Z".into();
        assert_eq!(status_of(deleting), "2/2 Terminating 1");
        // All done: Completed; killed by a signal without a reason: Signal:9.
        let plain = |state: Value, phase: &str| {
            serde_json::json!({"metadata": {},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": phase, "containerStatuses": [{"name": "app", "restartCount": 0, "state": state}]}})
        };
        assert_eq!(
            status_of(plain(
                serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                "Succeeded"
            )),
            "0/1 Completed 0"
        );
        assert_eq!(
            status_of(plain(
                serde_json::json!({"terminated": {"exitCode": 137, "signal": 9}}),
                "Failed"
            )),
            "0/1 Signal:9 0"
        );
    }
}
