//! Kubernetes rules about pods and containers, as extension traits on the
//! k8s-openapi types (kube-core's `ResourceExt` style): one definition each,
//! with Kubernetes' defaults.

use k8s_openapi::api::core::v1::{Container, Pod};

pub trait ContainerExt {
    /// An init container with `restartPolicy: Always` (a native sidecar): it
    /// runs beside the app containers, restarted whenever it stops.
    fn is_sidecar(&self) -> bool;
}

impl ContainerExt for Container {
    fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

/// The pod accessors the agent and the plugins use.
/// Which source a pod came from: `file`, `http`, `api`.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// A static pod's hash of its manifest (sources set it).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Marks a mirror pod: the API server's copy of a static pod, with that
/// pod's config hash as its value.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

pub trait PodExt {
    /// `metadata.uid` ("" when unset: sources always set it).
    fn uid_str(&self) -> &str;
    /// `metadata.namespace`, `default` when unset.
    fn namespace_or_default(&self) -> &str;
    fn name_str(&self) -> &str;
    /// `name_namespace`, the kubelet's full name of a pod.
    fn full_name(&self) -> String {
        format!("{}_{}", self.name_str(), self.namespace_or_default())
    }
    /// `name_namespace(uid)`, how the kubelet names a pod in messages.
    fn display_name(&self) -> String {
        format!("{}({})", self.full_name(), self.uid_str())
    }
    /// `spec.restartPolicy`, `Always` when unset.
    fn restart_policy(&self) -> &str;
    /// The seconds a pod gets to stop: a deletion's own grace, else
    /// `terminationGracePeriodSeconds`, else the default 30.
    fn grace_period_seconds(&self) -> i64;
    /// `spec.hostNetwork`.
    fn host_network(&self) -> bool;
    /// Not from the API server (the kubelet's IsStaticPod: its
    /// `kubernetes.io/config.source` annotation is not `api`).
    fn is_static(&self) -> bool;
    /// The API server's copy of a static pod (the kubelet's IsMirrorPod):
    /// shown, never run.
    fn is_mirror(&self) -> bool;
    /// An annotation's value, if set.
    fn annotation(&self, key: &str) -> Option<&str>;
    /// `spec.initContainers` (sidecars among them), none without a spec.
    fn init_containers(&self) -> &[Container];
    /// `spec.containers`, none without a spec.
    fn app_containers(&self) -> &[Container];
    /// `spec.securityContext.fsGroup`: the group the pod's volumes belong to.
    fn fs_group(&self) -> Option<u32>;
}

impl PodExt for Pod {
    fn uid_str(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or_default()
    }

    fn namespace_or_default(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn name_str(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    fn restart_policy(&self) -> &str {
        self.spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn grace_period_seconds(&self) -> i64 {
        self.metadata
            .deletion_grace_period_seconds
            .or_else(|| self.spec.as_ref()?.termination_grace_period_seconds)
            .unwrap_or(30)
    }

    fn host_network(&self) -> bool {
        self.spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn is_static(&self) -> bool {
        self.annotation(CONFIG_SOURCE).is_none_or(|s| s != "api")
    }

    fn is_mirror(&self) -> bool {
        self.annotation(CONFIG_MIRROR).is_some()
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    fn init_containers(&self) -> &[Container] {
        self.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
    }

    fn app_containers(&self) -> &[Container] {
        self.spec.as_ref().map_or(&[], |s| s.containers.as_slice())
    }

    fn fs_group(&self) -> Option<u32> {
        self.spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|s| s.fs_group)
            .and_then(|g| u32::try_from(g).ok())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn an_empty_pod_has_kubernetes_defaults() {
        let pod = Pod::default();
        assert_eq!(pod.uid_str(), "");
        assert_eq!(pod.namespace_or_default(), "default");
        assert_eq!(pod.full_name(), "_default");
        assert_eq!(pod.restart_policy(), "Always");
        assert_eq!(pod.grace_period_seconds(), 30);
        assert!(!pod.host_network());
        assert!(pod.init_containers().is_empty() && pod.app_containers().is_empty());
    }

    #[test]
    fn a_deletion_grace_overrides_the_spec() {
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(60),
                restart_policy: Some("Never".into()),
                init_containers: Some(vec![Container {
                    name: "proxy".into(),
                    restart_policy: Some("Always".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pod.full_name(), "web_prod");
        assert_eq!(pod.restart_policy(), "Never");
        assert_eq!(pod.grace_period_seconds(), 60);
        pod.metadata.deletion_grace_period_seconds = Some(5);
        assert_eq!(pod.grace_period_seconds(), 5);
        assert!(pod.init_containers()[0].is_sidecar());
    }
}
