//! The config mux (the kubelet's PodConfig): merges the full snapshots of every
//! pod source into incremental updates for the sync loop.
//!
//! Each source reports its complete desired set (SET semantics). Pods are keyed
//! by UID, as in the kubelet: a static pod whose manifest changes gets a new
//! UID, which is a REMOVE of the old pod and an ADD of the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use crate::pod_ext::PodExt;
use k8s_openapi::api::core::v1::Pod;

/// What happened to the pods of one update, in the order the kubelet sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Gone from the source's set: stop and forget.
    Remove,
    /// New to the agent.
    Add,
    /// Changed in what it asks for (spec, labels, annotations).
    Update,
    /// Marked for graceful deletion (deletionTimestamp set).
    Delete,
    /// Only the status differs: nothing to run differently.
    Reconcile,
}

/// One incremental update for the sync loop.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUpdate {
    pub op: Op,
    pub source: String,
    pub pods: Vec<Arc<Pod>>,
}

/// A pod a source gave that the mux did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub source: String,
    pub full_name: String,
    pub reason: String,
}

/// What applying one snapshot produced.
#[derive(Debug, Default, PartialEq)]
pub struct Merge {
    /// In kubelet order: REMOVE, ADD, UPDATE, DELETE, RECONCILE.
    pub updates: Vec<PodUpdate>,
    pub dropped: Vec<Dropped>,
    /// The source's mirror pods changed.
    pub mirrors_changed: bool,
}

/// What the agent must act on: everything but the status.
fn same_intent(a: &Pod, b: &Pod) -> bool {
    a.spec == b.spec
        && a.metadata.labels == b.metadata.labels
        && a.metadata.annotations == b.metadata.annotations
        && a.metadata.deletion_timestamp == b.metadata.deletion_timestamp
        && a.metadata.deletion_grace_period_seconds == b.metadata.deletion_grace_period_seconds
}

/// Where a configured source stands, for `/healthz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Configured, and has not delivered a snapshot yet.
    Waiting,
    /// Configured, never delivered a snapshot, and this is why.
    Failed(String),
    /// Delivered at least one snapshot.
    Ready,
}

/// Every configured source's state. The sync loop writes it; anyone reads.
#[derive(Debug, Default)]
pub struct SourceReadiness(RwLock<BTreeMap<String, SourceState>>);

impl SourceReadiness {
    pub fn set(&self, source: &str, state: SourceState) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(source.to_owned(), state);
    }

    pub fn get(&self, source: &str) -> Option<SourceState> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
            .cloned()
    }

    /// Ok once every configured source has delivered; else which have not, and why.
    pub fn check(&self) -> Result<(), String> {
        let states = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let missing: Vec<String> = states
            .iter()
            .filter_map(|(source, state)| match state {
                SourceState::Ready => None,
                SourceState::Waiting => Some(format!(
                    "pod source {source} has yet to deliver its first snapshot"
                )),
                SourceState::Failed(why) => Some(format!("pod source {source} failed: {why}")),
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }
}

/// The merged desired state of every source.
#[derive(Debug, Default)]
pub struct ConfigMux {
    /// The sources the agent runs; housekeeping waits until each has reported.
    expected: BTreeSet<String>,
    seen: BTreeSet<String>,
    /// source → UID → pod.
    pods: BTreeMap<String, BTreeMap<String, Arc<Pod>>>,
    /// source → full name → mirror pod: set aside, as the kubelet's pod
    /// manager keeps them, never run (their static pod is what runs).
    mirrors: BTreeMap<String, BTreeMap<String, Arc<Pod>>>,
}

impl ConfigMux {
    pub fn new(sources: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            expected: sources.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Whether `source` has given at least one snapshot.
    pub fn has_seen(&self, source: &str) -> bool {
        self.seen.contains(source)
    }

    /// True once every expected source has given at least one snapshot. Until
    /// then nothing the agent finds in the runtime may be cleaned up: it may
    /// belong to a source that has not spoken yet.
    pub fn seen_all_sources(&self) -> bool {
        self.expected.is_subset(&self.seen)
    }

    /// Every desired pod, from every source.
    pub fn pods(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.pods.values().flat_map(BTreeMap::values)
    }

    /// Every source's mirror pods, by full name.
    pub fn mirror_pods(&self) -> BTreeMap<String, Arc<Pod>> {
        self.mirrors
            .values()
            .flat_map(|m| m.iter().map(|(name, pod)| (name.clone(), pod.clone())))
            .collect()
    }

    /// Who, other than `source`, already has a pod of this full name.
    fn owner_elsewhere(&self, source: &str, full_name: &str) -> Option<&str> {
        self.pods
            .iter()
            .filter(|(s, _)| s.as_str() != source)
            .find(|(_, pods)| pods.values().any(|p| p.full_name() == full_name))
            .map(|(s, _)| s.as_str())
    }

    /// `source/full name` of another source's pod with this UID.
    fn uid_elsewhere(&self, source: &str, uid: &str) -> Option<String> {
        self.pods
            .iter()
            .filter(|(s, _)| s.as_str() != source)
            .find_map(|(s, pods)| {
                pods.get(uid)
                    .map(|p| format!("{} of source {s}", p.full_name()))
            })
    }

    /// Replaces `source`'s desired set with `snapshot`; returns what changed.
    /// A source that fails simply sends nothing: its last set stays.
    pub fn apply(&mut self, source: &str, snapshot: Vec<Pod>) -> Merge {
        let first = self.seen.insert(source.to_owned());
        let previous = self.pods.remove(source).unwrap_or_default();
        let mut merge = Merge::default();
        let mut current: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
        let mut by_op: BTreeMap<Op, Vec<Arc<Pod>>> = BTreeMap::new();
        let mut names = BTreeSet::new();
        let (mirrors, snapshot): (Vec<Pod>, Vec<Pod>) =
            snapshot.into_iter().partition(PodExt::is_mirror);
        let mirrors: BTreeMap<String, Arc<Pod>> = mirrors
            .into_iter()
            .map(|pod| (pod.full_name(), Arc::new(pod)))
            .collect();
        merge.mirrors_changed = self.mirrors.get(source).unwrap_or(&BTreeMap::new()) != &mirrors;
        self.mirrors.insert(source.to_owned(), mirrors);

        for pod in snapshot {
            let name = pod.full_name();
            let drop = |reason: String| Dropped {
                source: source.to_owned(),
                full_name: name.clone(),
                reason,
            };
            if let Err(reason) = wasmlet_rules::identity::validate_pod(&pod) {
                merge.dropped.push(drop(reason.to_string()));
                continue;
            }
            let id = pod.uid_str().to_owned();
            if let Some(holder) = current
                .get(&id)
                .or_else(|| previous.get(&id).filter(|p| p.full_name() != name))
                .map(|p| p.full_name())
                .or_else(|| self.uid_elsewhere(source, &id))
            {
                merge.dropped.push(drop(format!(
                    "metadata.uid {id:?} is already the UID of pod {holder}"
                )));
                continue;
            }
            if let Some(owner) = self.owner_elsewhere(source, &name) {
                merge.dropped.push(drop(format!(
                    "pod {name} already comes from source {owner}"
                )));
                continue;
            }
            if !names.insert(name.clone()) {
                merge
                    .dropped
                    .push(drop(format!("source gives pod {name} twice")));
                continue;
            }
            let pod = Arc::new(pod);
            let op = match previous.get(pod.uid_str()) {
                None => Some(Op::Add),
                Some(old) if !same_intent(old, &pod) => Some(
                    if pod.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none()
                    {
                        Op::Delete
                    } else {
                        Op::Update
                    },
                ),
                Some(old) if old.status != pod.status => Some(Op::Reconcile),
                Some(_) => None,
            };
            if let Some(op) = op {
                by_op.entry(op).or_default().push(pod.clone());
            }
            current.insert(pod.uid_str().to_owned(), pod);
        }
        let removed: Vec<Arc<Pod>> = previous
            .into_iter()
            .filter(|(uid, _)| !current.contains_key(uid))
            .map(|(_, pod)| pod)
            .collect();
        if !removed.is_empty() {
            by_op.insert(Op::Remove, removed);
        }
        // The kubelet answers a source's first set with an ADD even when it is
        // empty, so the sync loop learns that the source has spoken.
        if first
            && !by_op.contains_key(&Op::Add)
            && !by_op.contains_key(&Op::Update)
            && !by_op.contains_key(&Op::Delete)
        {
            by_op.insert(Op::Add, Vec::new());
        }
        merge.updates = by_op
            .into_iter()
            .map(|(op, pods)| PodUpdate {
                op,
                source: source.to_owned(),
                pods,
            })
            .collect();
        self.pods.insert(source.to_owned(), current);
        merge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, image: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }))
        .expect("pod")
    }

    fn ops(merge: &Merge) -> Vec<(Op, Vec<String>)> {
        merge
            .updates
            .iter()
            .map(|u| (u.op, u.pods.iter().map(|p| p.full_name()).collect()))
            .collect()
    }

    #[test]
    fn first_snapshot_adds_and_an_empty_one_still_announces_the_source() {
        let mut mux = ConfigMux::new(["file", "http"]);
        let merge = mux.apply("file", vec![pod("a", "1", "img")]);
        assert_eq!(ops(&merge), vec![(Op::Add, vec!["a_default".into()])]);
        assert!(!mux.seen_all_sources());

        let merge = mux.apply("http", Vec::new());
        assert_eq!(ops(&merge), vec![(Op::Add, Vec::new())]);
        assert!(mux.seen_all_sources());
    }

    #[test]
    fn a_mirror_pod_is_set_aside_not_run_and_does_not_hide_its_static_pod() {
        let mut mux = ConfigMux::new(["api", "file"]);
        let mut mirror = pod("web", "mirror-uid", "img");
        mirror.metadata.annotations = Some(
            [(
                wasmlet_rules::pod::CONFIG_MIRROR.to_owned(),
                "h1".to_owned(),
            )]
            .into(),
        );
        // The API source may speak first (after a restart, say).
        let merge = mux.apply("api", vec![mirror]);
        assert_eq!(ops(&merge), vec![(Op::Add, Vec::new())]);
        assert!(merge.mirrors_changed);
        assert_eq!(mux.pods().count(), 0, "a mirror pod is never run");
        let merge = mux.apply("file", vec![pod("web", "static-uid", "img")]);
        assert!(merge.dropped.is_empty(), "{:?}", merge.dropped);
        assert_eq!(ops(&merge), vec![(Op::Add, vec!["web_default".into()])]);
        assert!(!merge.mirrors_changed);
        assert_eq!(
            mux.mirror_pods().keys().collect::<Vec<_>>(),
            ["web_default"]
        );
        let merge = mux.apply("api", Vec::new());
        assert!(merge.mirrors_changed && mux.mirror_pods().is_empty());
    }

    #[test]
    fn a_source_that_never_delivers_keeps_everything_and_says_why() {
        let mut mux = ConfigMux::new(["file-source", "broken"]);
        mux.apply("file-source", Vec::new());
        assert!(
            !mux.seen_all_sources(),
            "a silent source holds back cleanup"
        );

        let readiness = SourceReadiness::default();
        readiness.set("file-source", SourceState::Ready);
        readiness.set("broken", SourceState::Failed("truncated component".into()));
        let why = readiness.check().expect_err("not ready");
        assert!(
            why.contains("broken") && why.contains("truncated component"),
            "{why}"
        );
        readiness.set("broken", SourceState::Ready);
        assert_eq!(readiness.check(), Ok(()));
    }

    #[test]
    fn bad_identities_and_borrowed_uids_are_dropped_naming_why() {
        let mut mux = ConfigMux::new(["file", "http"]);
        mux.apply("file", vec![pod("web", "u1", "img")]);
        let merge = mux.apply(
            "http",
            vec![
                pod("../../etc", "u2", "img"),
                pod("api", "../../../tmp", "img"),
                pod("thief", "u1", "img"),
                pod("ok", "u3", "img"),
                pod("twin", "u3", "img"),
            ],
        );
        assert_eq!(ops(&merge), vec![(Op::Add, vec!["ok_default".into()])]);
        let reasons: Vec<&str> = merge.dropped.iter().map(|d| d.reason.as_str()).collect();
        assert!(
            reasons[0].starts_with("metadata.name: Invalid value"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("metadata.uid: Invalid value"),
            "{reasons:?}"
        );
        assert_eq!(
            reasons[2],
            "metadata.uid \"u1\" is already the UID of pod web_default of source file"
        );
        assert_eq!(
            reasons[3],
            "metadata.uid \"u3\" is already the UID of pod ok_default"
        );

        // The same source may not hand a running pod's UID to another name.
        let merge = mux.apply("file", vec![pod("renamed", "u1", "img")]);
        assert_eq!(ops(&merge), vec![(Op::Remove, vec!["web_default".into()])]);
        assert_eq!(
            merge.dropped[0].reason,
            "metadata.uid \"u1\" is already the UID of pod web_default"
        );
    }

    #[test]
    fn diffs_come_in_kubelet_order() {
        let mut mux = ConfigMux::new(["file"]);
        mux.apply(
            "file",
            vec![
                pod("keep", "1", "img"),
                pod("edit", "2", "img"),
                pod("gone", "3", "img"),
                pod("stat", "4", "img"),
            ],
        );

        let mut edited = pod("edit", "2", "img:2");
        edited.metadata.labels = Some([("tier".to_owned(), "web".to_owned())].into());
        let mut status_only = pod("stat", "4", "img");
        status_only.status =
            Some(serde_json::from_value(serde_json::json!({"phase": "Running"})).expect("status"));
        let merge = mux.apply(
            "file",
            vec![
                pod("keep", "1", "img"),
                edited,
                status_only,
                pod("new", "5", "img"),
            ],
        );
        assert_eq!(
            ops(&merge),
            vec![
                (Op::Remove, vec!["gone_default".into()]),
                (Op::Add, vec!["new_default".into()]),
                (Op::Update, vec!["edit_default".into()]),
                (Op::Reconcile, vec!["stat_default".into()]),
            ]
        );
        let mut names: Vec<String> = mux.pods().map(|p| p.full_name()).collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "edit_default",
                "keep_default",
                "new_default",
                "stat_default"
            ]
        );
    }

    #[test]
    fn a_new_uid_for_the_same_name_replaces_the_pod() {
        let mut mux = ConfigMux::new(["file"]);
        mux.apply("file", vec![pod("web", "old", "img:1")]);
        let merge = mux.apply("file", vec![pod("web", "new", "img:2")]);
        assert_eq!(
            ops(&merge),
            vec![
                (Op::Remove, vec!["web_default".into()]),
                (Op::Add, vec!["web_default".into()])
            ]
        );
        assert_eq!(
            merge.updates[0].pods[0].metadata.uid.as_deref(),
            Some("old")
        );
        assert_eq!(
            merge.updates[1].pods[0].metadata.uid.as_deref(),
            Some("new")
        );
    }

    #[test]
    fn graceful_deletion_is_a_delete() {
        let mut mux = ConfigMux::new(["api"]);
        mux.apply("api", vec![pod("web", "1", "img")]);
        let mut deleting = pod("web", "1", "img");
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(serde_json::json!("2026-01-01T00:00:00Z")).expect("time"));
        let merge = mux.apply("api", vec![deleting]);
        assert_eq!(ops(&merge), vec![(Op::Delete, vec!["web_default".into()])]);
    }

    #[test]
    fn the_same_full_name_from_a_second_source_is_dropped() {
        let mut mux = ConfigMux::new(["file", "http"]);
        mux.apply("file", vec![pod("web", "1", "img")]);
        let merge = mux.apply("http", vec![pod("web", "2", "img"), pod("api", "3", "img")]);
        assert_eq!(ops(&merge), vec![(Op::Add, vec!["api_default".into()])]);
        assert_eq!(merge.dropped.len(), 1);
        assert_eq!(merge.dropped[0].source, "http");
        assert!(
            merge.dropped[0]
                .reason
                .contains("already comes from source file"),
            "{:?}",
            merge.dropped
        );
    }

    #[test]
    fn an_unchanged_snapshot_is_a_no_op_and_silence_keeps_the_last_set() {
        let mut mux = ConfigMux::new(["file"]);
        mux.apply("file", vec![pod("web", "1", "img")]);
        let merge = mux.apply("file", vec![pod("web", "1", "img")]);
        assert!(merge.updates.is_empty(), "{merge:?}");
        // A failing source sends no snapshot at all: its pods stay desired.
        assert_eq!(mux.pods().count(), 1);
    }
}
