//! The admission port: before a pod first starts, the agent asks whatever
//! implements [`Admit`] (in the daemon: the chain of admission plugins).

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub admit: bool,
    /// CamelCase, e.g. `OutOfcpu`, `NodeAffinity`.
    pub reason: String,
    pub message: String,
}

impl Admission {
    pub fn admitted() -> Self {
        Self {
            admit: true,
            reason: String::new(),
            message: String::new(),
        }
    }
}

/// Judges a pod against the pods the node already runs.
pub trait Admit: Send + Sync + 'static {
    fn admit(&self, pod: &Pod, active: &[Arc<Pod>]) -> impl Future<Output = Admission> + Send;
}

/// Admits everything: an agent configured without admission plugins.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admit for AdmitAll {
    async fn admit(&self, _pod: &Pod, _active: &[Arc<Pod>]) -> Admission {
        Admission::admitted()
    }
}
