//! Kubernetes rules about pods and containers, as extension traits on the
//! k8s-openapi types (kube-core's `ResourceExt` style): one definition each.

use k8s_openapi::api::core::v1::Container;

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
