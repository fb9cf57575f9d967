//! The pod accessors: Kubernetes' rules from `wasmlet-rules`, and the pod's
//! UID as the key the agent's stores use.

use k8s_openapi::api::core::v1::Pod;
use wasmlet_core::PodUid;
pub use wasmlet_rules::{ContainerExt, PodExt};

pub trait PodUidExt {
    /// `metadata.uid`, typed.
    fn pod_uid(&self) -> PodUid;
}

impl PodUidExt for Pod {
    fn pod_uid(&self) -> PodUid {
        self.uid_str().into()
    }
}
