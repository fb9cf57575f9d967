//! `wasmlet pods`: the agent's `/pods` as a table, like `kubectl get pods -o wide`.

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn run(address: SocketAddr) -> anyhow::Result<()> {
    let mut conn = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("is the agent running? connecting to {address}"))?;
    conn.write_all(b"GET /pods HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("no HTTP body")?;
    let list: Value = serde_json::from_str(body).context("/pods is not JSON")?;
    print!("{}", table(&list));
    Ok(())
}

fn table(list: &Value) -> String {
    let empty = Vec::new();
    let mut rows =
        vec![["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP"].map(String::from)];
    for pod in list["items"].as_array().unwrap_or(&empty) {
        let status = &pod["status"];
        let containers = status["containerStatuses"].as_array().unwrap_or(&empty);
        let ready = containers.iter().filter(|c| c["ready"] == true).count();
        let restarts: i64 = containers
            .iter()
            .filter_map(|c| c["restartCount"].as_i64())
            .sum();
        // Like kubectl: a container's waiting or terminated reason says more than the phase.
        let reason = containers
            .iter()
            .chain(status["initContainerStatuses"].as_array().unwrap_or(&empty))
            .find_map(|c| c["state"]["waiting"]["reason"].as_str())
            .filter(|r| *r != "PodInitializing" || status["phase"] == "Pending")
            .or_else(|| status["reason"].as_str())
            .or_else(|| status["phase"].as_str())
            .unwrap_or("Unknown");
        let text = |v: &Value| v.as_str().unwrap_or("<none>").to_owned();
        rows.push([
            text(&pod["metadata"]["namespace"]),
            text(&pod["metadata"]["name"]),
            format!("{ready}/{}", containers.len()),
            reason.to_owned(),
            restarts.to_string(),
            text(&status["podIP"]),
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
             "status": {"phase": "Running", "podIP": "10.217.0.5",
                        "containerStatuses": [{"ready": true, "restartCount": 0, "state": {"running": {}}}]}},
            {"metadata": {"name": "crashy-n", "namespace": "default"},
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
}
