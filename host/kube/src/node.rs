//! The Node object: registered as the kubelet registers it (created, or an
//! existing one reconciled: its default labels set to this node's), and
//! its status written through the status subresource.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{ApiClient, KubeError, bounded};

/// The labels the kubelet owns on its Node and puts back if they differ.
pub const DEFAULT_LABELS: [&str; 5] = [
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

const REGISTER_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(7));

/// The Node's side of the API.
#[derive(Debug, Clone)]
pub struct NodeApi {
    nodes: Api<Node>,
}

impl NodeApi {
    pub fn new(client: &ApiClient) -> Self {
        Self {
            nodes: Api::all(client.kube()),
        }
    }

    /// Registers `node`, retrying with back-off; `None` if shut down first.
    pub async fn register(&self, node: &Node, shutdown: &CancellationToken) -> Option<Node> {
        let mut delay = REGISTER_BACKOFF.0;
        loop {
            match self.register_once(node).await {
                Ok(registered) => return Some(registered),
                Err(e) => {
                    tracing::warn!(error = %e, "unable to register the node; retrying in {delay:?}")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(REGISTER_BACKOFF.1);
        }
    }

    async fn register_once(&self, node: &Node) -> Result<Node, KubeError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        match bounded(self.nodes.create(&PostParams::default(), node)).await {
            Ok(created) => {
                tracing::info!(node = %name, "registered the node");
                Ok(created)
            }
            Err(e) if e.is_already_exists() => {
                let existing = bounded(self.nodes.get(&name)).await?;
                let stale = stale_default_labels(&existing, node);
                if stale.is_empty() {
                    return Ok(existing);
                }
                tracing::info!(node = %name, labels = ?stale.keys().collect::<Vec<_>>(), "the node exists; setting its default labels");
                let patch = json!({"metadata": {"labels": stale}});
                bounded(
                    self.nodes
                        .patch(&name, &PatchParams::default(), &Patch::Strategic(patch)),
                )
                .await
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `status` through the status subresource: a strategic merge
    /// patch against `previous` (what the server has), so a resource the
    /// node no longer has is removed.
    pub async fn patch_status(
        &self,
        name: &str,
        previous: Option<&NodeStatus>,
        status: &NodeStatus,
    ) -> Result<Node, KubeError> {
        let patch = status_patch(previous, status);
        bounded(
            self.nodes
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch)),
        )
        .await
    }

    pub async fn get(&self, name: &str) -> Result<Node, KubeError> {
        bounded(self.nodes.get(name)).await
    }
}

/// The default labels of `wanted` that `existing` lacks or has otherwise.
fn stale_default_labels(existing: &Node, wanted: &Node) -> BTreeMap<String, String> {
    let empty = BTreeMap::new();
    let have = existing.metadata.labels.as_ref().unwrap_or(&empty);
    let want = wanted.metadata.labels.as_ref().unwrap_or(&empty);
    DEFAULT_LABELS
        .iter()
        .filter_map(|key| {
            let value = want.get(*key)?;
            (have.get(*key) != Some(value)).then(|| ((*key).to_owned(), value.clone()))
        })
        .collect()
}

/// `{"status": …}` with the resources `previous` had and `status` has not
/// set to null (maps merge; conditions and addresses merge by type).
fn status_patch(previous: Option<&NodeStatus>, status: &NodeStatus) -> Value {
    let mut patch = serde_json::to_value(status).unwrap_or_default();
    for field in ["capacity", "allocatable"] {
        let had = previous
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|p| p.get(field).cloned());
        if let Some(Value::Object(had)) = had {
            for key in had.keys() {
                if patch[field].get(key).is_none() {
                    patch[field][key] = Value::Null;
                }
            }
        }
    }
    json!({"status": patch})
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn labelled(labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    #[test]
    fn only_default_labels_are_put_back() {
        let existing = labelled(&[
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "arm64"),
            ("team", "a"),
        ]);
        let wanted = labelled(&[
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("team", "b"),
        ]);
        assert_eq!(
            stale_default_labels(&existing, &wanted),
            BTreeMap::from([("kubernetes.io/arch".to_owned(), "amd64".to_owned())])
        );
    }

    #[test]
    fn a_resource_the_node_lost_is_removed() {
        let with = |keys: &[&str]| NodeStatus {
            capacity: Some(
                keys.iter()
                    .map(|k| ((*k).into(), Quantity("1".into())))
                    .collect(),
            ),
            ..NodeStatus::default()
        };
        let patch = status_patch(Some(&with(&["cpu", "example.com/gpu"])), &with(&["cpu"]));
        assert_eq!(
            patch["status"]["capacity"],
            json!({"cpu": "1", "example.com/gpu": null})
        );
    }
}
