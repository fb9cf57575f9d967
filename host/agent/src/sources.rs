//! The config mux (the kubelet's PodConfig): merges the full snapshots of every
//! pod source into incremental updates for the sync loop.
//!
//! Each source reports its complete desired set (SET semantics). Pods are keyed
//! by UID, as in the kubelet: a static pod whose manifest changes gets a new
//! UID, which is a REMOVE of the old pod and an ADD of the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
}

/// `name_namespace`, the kubelet's full name of a pod.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}_{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default")
    )
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// What the agent must act on: everything but the status.
fn same_intent(a: &Pod, b: &Pod) -> bool {
    a.spec == b.spec
        && a.metadata.labels == b.metadata.labels
        && a.metadata.annotations == b.metadata.annotations
        && a.metadata.deletion_timestamp == b.metadata.deletion_timestamp
        && a.metadata.deletion_grace_period_seconds == b.metadata.deletion_grace_period_seconds
}

/// The merged desired state of every source.
#[derive(Debug, Default)]
pub struct ConfigMux {
    /// The sources the agent runs; housekeeping waits until each has reported.
    expected: BTreeSet<String>,
    seen: BTreeSet<String>,
    /// source → UID → pod.
    pods: BTreeMap<String, BTreeMap<String, Arc<Pod>>>,
}

impl ConfigMux {
    pub fn new(sources: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            expected: sources.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
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

    /// Who, other than `source`, already has a pod of this full name.
    fn owner_elsewhere(&self, source: &str, full_name: &str) -> Option<&str> {
        self.pods
            .iter()
            .filter(|(s, _)| s.as_str() != source)
            .find(|(_, pods)| pods.values().any(|p| self::full_name(p) == full_name))
            .map(|(s, _)| s.as_str())
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

        for pod in snapshot {
            let name = full_name(&pod);
            let drop = |reason: String| Dropped {
                source: source.to_owned(),
                full_name: name.clone(),
                reason,
            };
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
            let op = match previous.get(&uid(&pod)) {
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
            current.insert(uid(&pod), pod);
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
            .map(|u| (u.op, u.pods.iter().map(|p| full_name(p)).collect()))
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
        let mut names: Vec<String> = mux.pods().map(|p| full_name(p)).collect();
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
