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
}
