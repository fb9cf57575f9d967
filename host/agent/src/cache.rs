//! The pod status cache (the kubelet's `kubecontainer.Cache`): the runtime's
//! view of every pod, each entry stamped with the time it was read.
//!
//! `newer_than` is what lets a pod worker wait for fresh data instead of
//! acting on what it saw before its own changes: it returns once the pod's
//! entry, or a whole relist, is at least as new as the time asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;
use wasmlet_core::PodUid;

use crate::kuberuntime::runtime_pod::RuntimePod;

#[derive(Debug, Default)]
struct Entries {
    pods: HashMap<PodUid, (Arc<RuntimePod>, Instant)>,
    /// Every pod was read at least this recently (the last complete relist).
    global: Option<Instant>,
}

#[derive(Debug)]
pub struct PodCache {
    entries: Mutex<Entries>,
    changed: watch::Sender<()>,
}

impl Default for PodCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            changed: watch::channel(()).0,
        }
    }
}

impl PodCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The lock is never held across a panic point that leaves it half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `pod` as read at `at`. An older reading never replaces a newer one.
    pub fn set(&self, pod: RuntimePod, at: Instant) {
        {
            let mut entries = self.lock();
            let uid = pod.uid.clone();
            match entries.pods.get(&uid) {
                Some((_, seen)) if *seen > at => return,
                _ => {}
            }
            entries.pods.insert(uid, (Arc::new(pod), at));
        }
        self.changed.send_replace(());
    }

    /// A relist that started at `at` has read every pod.
    pub fn relisted(&self, at: Instant) {
        self.lock().global = Some(at);
        self.changed.send_replace(());
    }

    /// Forgets pods the runtime no longer has, unless read after `at`.
    pub fn retain(&self, keep: impl Fn(&PodUid) -> bool, at: Instant) {
        self.lock()
            .pods
            .retain(|uid, (_, seen)| keep(uid) || *seen > at);
    }

    pub fn get(&self, uid: &PodUid) -> Option<Arc<RuntimePod>> {
        self.lock().pods.get(uid).map(|(p, _)| p.clone())
    }

    /// Every pod the runtime has.
    pub fn all(&self) -> Vec<Arc<RuntimePod>> {
        self.lock().pods.values().map(|(p, _)| p.clone()).collect()
    }

    /// The pod as read at `since` or later, waiting for such a reading. A pod
    /// the runtime does not have is an empty [`RuntimePod`].
    pub async fn newer_than(&self, uid: &PodUid, since: Instant) -> Arc<RuntimePod> {
        let mut changed = self.changed.subscribe();
        loop {
            {
                let entries = self.lock();
                let entry = entries.pods.get(uid);
                let fresh = entry.is_some_and(|(_, at)| *at >= since)
                    || entries.global.is_some_and(|at| at >= since);
                if fresh {
                    return entry.map_or_else(
                        || {
                            Arc::new(RuntimePod {
                                uid: uid.clone(),
                                ..Default::default()
                            })
                        },
                        |(pod, _)| pod.clone(),
                    );
                }
            }
            if changed.changed().await.is_err() {
                // Cannot happen while `self` lives; behave as "nothing newer".
                return self.get(uid).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pod(uid: &str, name: &str) -> RuntimePod {
        RuntimePod {
            uid: uid.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn newer_than_waits_for_a_fresh_reading() {
        let cache = Arc::new(PodCache::default());
        let t0 = Instant::now();
        cache.set(pod("a", "old"), t0);
        let since = t0 + Duration::from_millis(1);
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.newer_than(&"a".into(), since).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!waiter.is_finished(), "the reading at t0 is too old");
        cache.set(pod("a", "new"), since);
        let got = waiter.await.expect("join");
        assert_eq!(got.name, "new");
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_satisfies_pods_it_did_not_change() {
        let cache = Arc::new(PodCache::default());
        let t0 = Instant::now();
        cache.set(pod("a", "a0"), t0);
        let since = t0 + Duration::from_millis(1);
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                (
                    cache.newer_than(&"a".into(), since).await,
                    cache.newer_than(&"gone".into(), since).await,
                )
            })
        };
        tokio::task::yield_now().await;
        cache.relisted(since);
        let (a, gone) = waiter.await.expect("join");
        assert_eq!(a.name, "a0");
        assert!(gone.is_empty());
    }

    #[test]
    fn an_older_reading_never_replaces_a_newer_one() {
        let cache = PodCache::default();
        let t0 = Instant::now();
        cache.set(pod("a", "new"), t0 + Duration::from_secs(1));
        cache.set(pod("a", "stale"), t0);
        assert_eq!(
            cache.get(&"a".into()).map(|p| p.name.clone()),
            Some("new".into())
        );
    }
}
