//! Pods' status through the status subresource, as the kubelet's status
//! manager writes it: a strategic merge patch (conditions merge by type, so
//! those others own stay) carrying the pod's UID as a precondition, so a
//! status never lands on a namesake that replaced the pod (409); and the
//! final delete of a pod whose graceful deletion the node has carried out;
//! and the mirror pods of static pods, created and deleted.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

use crate::{ApiClient, KubeError, bounded};

/// Whether writing `ours` (the strategic merge patch [`PodApi::patch_status`]
/// sends) would leave `server` as it is. The kubelet sends no such patch
/// (its PatchPodStatus skips an empty one); after a restart this spares the
/// server a write per pod.
pub fn status_written(ours: &PodStatus, server: &PodStatus) -> bool {
    match (serde_json::to_value(ours), serde_json::to_value(server)) {
        (Ok(ours), Ok(server)) => merged_already(&ours, &server),
        _ => false,
    }
}

/// The lists of a pod status the API merges item by item, by this key;
/// every other list a patch replaces whole.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" => Some("type"),
        "podIPs" | "hostIPs" => Some("ip"),
        _ => None,
    }
}

fn merged_already(patch: &Value, server: &Value) -> bool {
    let (Value::Object(patch), Value::Object(server)) = (patch, server) else {
        return patch == server;
    };
    patch.iter().all(|(field, value)| {
        let there = server.get(field).unwrap_or(&Value::Null);
        match (merge_key(field), value, there) {
            (Some(key), Value::Array(items), Value::Array(held)) => items.iter().all(|item| {
                held.iter()
                    .any(|h| h.get(key) == item.get(key) && merged_already(item, h))
            }),
            (None, Value::Object(_), _) => merged_already(value, there),
            _ => value == there,
        }
    })
}

#[derive(Debug, Clone)]
pub struct PodApi {
    client: ApiClient,
}

impl PodApi {
    pub fn new(client: &ApiClient) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Writes `status` to pod `namespace/name`, if it is still the one with `uid`.
    pub async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), KubeError> {
        let pods: Api<Pod> = Api::namespaced(self.client.kube(), namespace);
        let patch = json!({"metadata": {"uid": uid}, "status": status});
        bounded(pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch)))
            .await
            .map(|_| ())
    }

    /// The final delete of a pod whose containers are gone: grace 0, and
    /// only if it is still the pod with `uid`.
    pub async fn delete(&self, namespace: &str, name: &str, uid: &str) -> Result<(), KubeError> {
        let pods: Api<Pod> = Api::namespaced(self.client.kube(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        bounded(pods.delete(name, &params)).await.map(|_| ())
    }

    /// Creates `pod`; the API server's copy (with its UID) comes back.
    pub async fn create(&self, pod: &Pod) -> Result<Pod, KubeError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let pods: Api<Pod> = Api::namespaced(self.client.kube(), namespace);
        bounded(pods.create(&PostParams::default(), pod)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(value: Value) -> PodStatus {
        serde_json::from_value(value).expect("a status")
    }

    #[test]
    fn a_status_the_server_holds_is_not_written_again() {
        let server = status(json!({
            "phase": "Running",
            "startTime": "2026-12-07T10:00:00Z",
            "podIP": "10.217.0.5",
            "podIPs": [{"ip": "10.217.0.5"}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T10:00:01Z"},
                {"type": "example.com/gate", "status": "True"},
            ],
            "containerStatuses": [{"name": "main", "image": "i", "imageID": "", "ready": true, "restartCount": 0}],
        }));
        // Ours lacks the condition a controller owns: merged by type, it stays.
        let mut ours = server.clone();
        ours.conditions.as_mut().expect("conditions").pop();
        assert!(status_written(&ours, &server));

        let mut moved = ours.clone();
        moved.start_time = None;
        assert!(
            status_written(&moved, &server),
            "an unset field is no change"
        );
        let mut moved = ours.clone();
        moved.phase = Some("Succeeded".into());
        assert!(!status_written(&moved, &server));
        let mut moved = ours.clone();
        moved.conditions.as_mut().expect("conditions")[0].status = "False".into();
        assert!(!status_written(&moved, &server));
        // Container statuses are replaced whole: one more is a change.
        let mut moved = ours.clone();
        let statuses = moved.container_statuses.as_mut().expect("statuses");
        statuses.push(statuses[0].clone());
        assert!(!status_written(&moved, &server));
    }
}
