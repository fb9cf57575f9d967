//! The status manager's store: the latest API status of every pod the agent
//! knows, for `/pods`. Condition transition times move only when a
//! condition's status changes, as in the kubelet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use wasmlet_core::PodUid;

use crate::api_status::time;
use crate::pod_ext::PodUidExt;

#[derive(Debug)]
pub struct PodStatuses {
    pods: Mutex<BTreeMap<PodUid, Pod>>,
    /// Bumped on every change, for whoever sends statuses on (the API).
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for PodStatuses {
    fn default() -> Self {
        Self {
            pods: Mutex::default(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

fn uid_of(pod: &Pod) -> PodUid {
    pod.pod_uid()
}

impl PodStatuses {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PodUid, Pod>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `status` for `pod`.
    pub fn set(&self, pod: &Arc<Pod>, mut status: PodStatus) {
        let now = time(SystemTime::now());
        let uid = uid_of(pod);
        let mut pods = self.lock();
        let old = pods.get(&uid).and_then(|p| p.status.as_ref());
        for condition in status.conditions.iter_mut().flatten() {
            let before = old
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == condition.type_));
            condition.last_transition_time = match before {
                Some(b) if b.status == condition.status => b.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
        }
        let mut entry = Pod::clone(pod);
        entry.status = Some(status);
        let same = pods.get(&uid) == Some(&entry);
        pods.insert(uid, entry);
        drop(pods);
        if !same {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    pub fn remove(&self, uid: &PodUid) {
        if self.lock().remove(uid).is_some() {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Wakes on every change of a status (or of the set of pods).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether the pod's phase is Succeeded or Failed: it runs nothing again.
    pub fn is_finished(&self, uid: &PodUid) -> bool {
        self.lock().get(uid).is_some_and(|pod| {
            pod.status
                .as_ref()
                .is_some_and(|s| matches!(s.phase.as_deref(), Some("Succeeded" | "Failed")))
        })
    }

    pub fn get(&self, uid: &PodUid) -> Option<Pod> {
        self.lock().get(uid).cloned()
    }

    /// Every pod with its status, as kubelet's `/pods` lists them.
    pub fn list(&self) -> Vec<Pod> {
        self.lock().values().cloned().collect()
    }
}
