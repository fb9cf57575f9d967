//! The admission port: before a pod first starts, the agent asks whatever
//! implements [`Admit`] (in the daemon: the chain of admission plugins),
//! after its own check that it can run the pod as specified
//! ([`crate::spec_support`]).
//! [`AdmissionQueue`] asks it off the sync loop.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use crate::pod_ext::PodExt;
use crate::spec_support::{self, NodeSupport};
use k8s_openapi::api::core::v1::Pod;
use tokio::task::JoinHandle;

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
    fn admit(&self, pod: &Arc<Pod>, active: &[Arc<Pod>]) -> impl Future<Output = Admission> + Send;
}

/// Admits everything: an agent configured without admission plugins.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admit for AdmitAll {
    async fn admit(&self, _pod: &Arc<Pod>, _active: &[Arc<Pod>]) -> Admission {
        Admission::admitted()
    }
}

fn uid(pod: &Pod) -> &str {
    pod.uid_str()
}

/// Pods waiting to be admitted, judged one at a time and in order (each
/// against those admitted before it, as the kubelet does), on a task of
/// their own: a plugin that thinks for long holds up only the pods waiting
/// here, never the sync loop's other work.
#[derive(Debug)]
pub struct AdmissionQueue<A> {
    admit: Arc<A>,
    /// What the node can enforce; none of the optional features by default.
    pub node: Arc<NodeSupport>,
    waiting: VecDeque<Arc<Pod>>,
    judging: Option<(Arc<Pod>, JoinHandle<Admission>)>,
}

impl<A: Admit> AdmissionQueue<A> {
    pub fn new(admit: A) -> Self {
        Self {
            admit: Arc::new(admit),
            node: Arc::default(),
            waiting: VecDeque::new(),
            judging: None,
        }
    }

    /// Whether the pod with this UID waits for, or is in, admission.
    pub fn contains(&self, pod_uid: &str) -> bool {
        self.judging
            .as_ref()
            .is_some_and(|(p, _)| uid(p) == pod_uid)
            || self.waiting.iter().any(|p| uid(p) == pod_uid)
    }

    /// Queues a pod, once: a pod queued again keeps its place.
    pub fn push(&mut self, pod: Arc<Pod>) {
        if let Some(queued) = self.waiting.iter_mut().find(|p| uid(p) == uid(&pod)) {
            *queued = pod;
        } else if self
            .judging
            .as_ref()
            .is_none_or(|(p, _)| uid(p) != uid(&pod))
        {
            self.waiting.push_back(pod);
        }
    }

    /// Takes a waiting pod out of the queue. One being judged is judged to
    /// the end: whoever gets the verdict checks it is still wanted.
    pub fn remove(&mut self, pod_uid: &str) {
        self.waiting.retain(|p| uid(p) != pod_uid);
    }

    /// Starts judging the next waiting pod, unless one is being judged.
    pub fn start_next(&mut self, active: impl FnOnce() -> Vec<Arc<Pod>>) {
        if self.judging.is_some() {
            return;
        }
        let Some(pod) = self.waiting.pop_front() else {
            return;
        };
        let (admit, judged, active) = (self.admit.clone(), pod.clone(), active());
        let node = self.node.clone();
        let task = tokio::spawn(async move {
            // What the node cannot honour is refused before any plugin is asked.
            match spec_support::refusal(&judged, &node) {
                Some(refusal) => Admission {
                    admit: false,
                    reason: refusal.reason.into(),
                    message: refusal.message,
                },
                None => admit.admit(&judged, &active).await,
            }
        });
        self.judging = Some((pod, task));
    }

    /// The verdict on the pod being judged; pending while there is none.
    /// Cancel-safe: dropped before the verdict, it loses nothing.
    pub async fn verdict(&mut self) -> (Arc<Pod>, Admission) {
        let Some((_, task)) = self.judging.as_mut() else {
            return std::future::pending().await;
        };
        let verdict = match task.await {
            Ok(verdict) => verdict,
            Err(e) => Admission {
                admit: false,
                reason: "UnexpectedAdmissionError".into(),
                message: format!("admission did not finish: {e}"),
            },
        };
        match self.judging.take() {
            Some((pod, _)) => (pod, verdict),
            None => std::future::pending().await,
        }
    }

    /// Stops the judging under way (the agent is stopping).
    pub fn abort(&mut self) {
        if let Some((_, task)) = self.judging.take() {
            task.abort();
        }
        self.waiting.clear();
    }
}
