//! Pods' status through the status subresource, as the kubelet's status
//! manager writes it: a strategic merge patch (conditions merge by type, so
//! those others own stay) carrying the pod's UID as a precondition, so a
//! status never lands on a namesake that replaced the pod (409); and the
//! final delete of a pod whose graceful deletion the node has carried out;
//! and the mirror pods of static pods, created and deleted.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use crate::{ApiClient, KubeError, bounded};

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
