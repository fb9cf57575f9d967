//! The status manager's store: the latest API status of every pod the agent
//! knows, for `/pods` and for whoever sends statuses on. As in the kubelet,
//! a status starts from the last one known: the agent's own, else the API
//! server's (a static pod's on its mirror), so condition transition times
//! move only when a condition's status changes and the start time never
//! moves, across agent restarts too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use wasmlet_core::PodUid;

use crate::api_status::time;
use crate::mirror_pods::MirrorPods;
use crate::pod_ext::{PodExt, PodUidExt};

#[derive(Debug)]
struct Known {
    /// The pod, with the agent's status.
    pod: Pod,
    /// What the API server held when the agent last computed a status.
    server: Option<PodStatus>,
}

#[derive(Debug)]
pub struct PodStatuses {
    pods: Mutex<BTreeMap<PodUid, Known>>,
    /// Where a static pod's status lives on the API server.
    mirrors: Arc<MirrorPods>,
    /// Bumped on every change, for whoever sends statuses on (the API).
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for PodStatuses {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

fn uid_of(pod: &Pod) -> PodUid {
    pod.pod_uid()
}

impl PodStatuses {
    /// `mirrors`: the mirror pods the API source sees.
    pub fn new(mirrors: Arc<MirrorPods>) -> Self {
        Self {
            pods: Mutex::default(),
            mirrors,
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PodUid, Known>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the API server holds for `pod`: an API pod's own status, a
    /// static pod's on its mirror (the kubelet's status manager reads the
    /// same when it has none cached).
    fn server_status_of(&self, pod: &Pod) -> Option<PodStatus> {
        if pod.is_static() {
            let mirrors = self.mirrors.current();
            mirrors.mirror_of(pod).and_then(|m| m.status.clone())
        } else {
            pod.status.clone()
        }
    }

    /// Records `status` for `pod`.
    pub fn set(&self, pod: &Arc<Pod>, mut status: PodStatus) {
        let now = time(SystemTime::now());
        let uid = uid_of(pod);
        let server = self.server_status_of(pod);
        let mut pods = self.lock();
        let old = pods
            .get(&uid)
            .and_then(|known| known.pod.status.as_ref())
            .or(server.as_ref());
        for condition in status.conditions.iter_mut().flatten() {
            let before = old
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == condition.type_));
            condition.last_transition_time = match before {
                Some(b) if b.status == condition.status => b.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
        }
        // The start time never moves once reported.
        if let Some(started) = old.and_then(|s| s.start_time.clone()) {
            status.start_time = Some(started);
        }
        let mut entry = Pod::clone(pod);
        entry.status = Some(status);
        let same = pods.get(&uid).is_some_and(|known| known.pod == entry);
        pods.insert(uid, Known { pod: entry, server });
        drop(pods);
        if !same {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// What the API server held for the pod when its status was last set.
    pub fn server_status(&self, uid: &PodUid) -> Option<PodStatus> {
        self.lock().get(uid).and_then(|known| known.server.clone())
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
        self.lock().get(uid).is_some_and(|known| {
            known
                .pod
                .status
                .as_ref()
                .is_some_and(|s| matches!(s.phase.as_deref(), Some("Succeeded" | "Failed")))
        })
    }

    pub fn get(&self, uid: &PodUid) -> Option<Pod> {
        self.lock().get(uid).map(|known| known.pod.clone())
    }

    /// Every pod with its status, as kubelet's `/pods` lists them.
    pub fn list(&self) -> Vec<Pod> {
        self.lock()
            .values()
            .map(|known| known.pod.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror_pods::MirrorSet;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(value).expect("a pod"))
    }

    fn fresh_status() -> PodStatus {
        serde_json::from_value(json!({
            "phase": "Running",
            "startTime": "2026-12-07T12:00:00Z",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Initialized", "status": "True"},
            ],
        }))
        .expect("a status")
    }

    fn held_status() -> serde_json::Value {
        json!({
            "phase": "Running",
            "startTime": "2026-12-07T10:00:00Z",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T10:00:05Z"},
                {"type": "Initialized", "status": "False", "lastTransitionTime": "2026-12-07T10:00:01Z"},
            ],
        })
    }

    fn times(status: &PodStatus) -> (String, String, String) {
        let value = serde_json::to_value(status).expect("json");
        let at = |t: &str| {
            value["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == t))
                .map(|c| c["lastTransitionTime"].to_string())
                .unwrap_or_default()
        };
        (
            value["startTime"].to_string(),
            at("Ready"),
            at("Initialized"),
        )
    }

    #[test]
    fn an_api_pod_starts_from_the_status_the_server_holds() {
        let statuses = PodStatuses::default();
        let api_pod = pod(json!({
            "metadata": {"name": "web", "uid": "u1",
                         "annotations": {"kubernetes.io/config.source": "api"}},
            "status": held_status(),
        }));
        statuses.set(&api_pod, fresh_status());
        let set = statuses
            .get(&"u1".into())
            .and_then(|p| p.status)
            .expect("set");
        let (start, ready, initialized) = times(&set);
        assert_eq!(start, "\"2026-12-07T10:00:00Z\"", "the start time moved");
        assert_eq!(
            ready, "\"2026-12-07T10:00:05Z\"",
            "an unchanged condition moved"
        );
        assert_ne!(
            initialized, "\"2026-12-07T10:00:01Z\"",
            "a changed one kept its time"
        );
        assert_eq!(
            statuses.server_status(&"u1".into()),
            api_pod.status.clone(),
            "what the server held"
        );
    }

    #[test]
    fn a_static_pod_starts_from_its_mirrors_status_and_never_from_its_manifest() {
        let mirrors = Arc::new(MirrorPods::default());
        let statuses = PodStatuses::new(mirrors.clone());
        let static_pod = pod(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "s1",
                         "annotations": {"kubernetes.io/config.source": "file",
                                         "kubernetes.io/config.hash": "h1"}},
            "status": {"startTime": "2020-01-01T00:00:00Z"},
        }));
        let mirror = pod(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "m1",
                         "annotations": {"kubernetes.io/config.mirror": "h1"}},
            "status": held_status(),
        }));
        statuses.set(&static_pod, fresh_status());
        let (start, _, _) = times(
            &statuses
                .get(&"s1".into())
                .and_then(|p| p.status)
                .expect("set"),
        );
        assert_eq!(start, "\"2026-12-07T12:00:00Z\"", "no mirror yet: its own");

        let fresh = PodStatuses::new(mirrors.clone());
        mirrors.publish(MirrorSet {
            mirrors: [("web_default".to_owned(), mirror)].into(),
            ..MirrorSet::default()
        });
        fresh.set(&static_pod, fresh_status());
        let (start, ready, _) =
            times(&fresh.get(&"s1".into()).and_then(|p| p.status).expect("set"));
        assert_eq!(start, "\"2026-12-07T10:00:00Z\"");
        assert_eq!(ready, "\"2026-12-07T10:00:05Z\"");
    }
}
