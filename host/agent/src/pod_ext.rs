//! Kubernetes rules about pods and containers, as extension traits on the
//! k8s-openapi types (kube-core's `ResourceExt` style): one definition each.

use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_core::PodUid;

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

/// The pod accessors every part of the agent uses.
pub trait PodExt {
    /// `metadata.uid` ("" when unset: sources always set it).
    fn uid_str(&self) -> &str;
    fn pod_uid(&self) -> PodUid {
        self.uid_str().into()
    }
    /// `metadata.namespace`, `default` when unset.
    fn namespace_or_default(&self) -> &str;
    fn name_str(&self) -> &str;
    /// `name_namespace`, the kubelet's full name of a pod.
    fn full_name(&self) -> String {
        format!("{}_{}", self.name_str(), self.namespace_or_default())
    }
    /// `spec.restartPolicy`, `Always` when unset.
    fn restart_policy(&self) -> &str;
    /// The seconds a pod gets to stop: a deletion's own grace, else
    /// `terminationGracePeriodSeconds`, else the default 30.
    fn grace_period_seconds(&self) -> i64;
    /// `spec.hostNetwork`.
    fn host_network(&self) -> bool;
    /// `spec.initContainers` (sidecars among them), none without a spec.
    fn init_containers(&self) -> &[Container];
    /// `spec.containers`, none without a spec.
    fn app_containers(&self) -> &[Container];
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

    fn init_containers(&self) -> &[Container] {
        self.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
    }

    fn app_containers(&self) -> &[Container] {
        self.spec.as_ref().map_or(&[], |s| s.containers.as_slice())
    }
}
