//! Mirror pods: the API server's copies of the static pods, so the cluster
//! sees what runs on the node (the kubelet's pod manager and mirror client).
//! The sync loop publishes the static pods and the mirror pods the API
//! source sees; whoever talks to the API server reads [`MirrorSet::changes`]
//! and carries them out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tokio::sync::watch;
use wasmlet_rules::pod::{CONFIG_HASH, CONFIG_MIRROR};

use crate::pod_ext::PodExt;

/// What the sync loop last knew of static and mirror pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MirrorSet {
    /// The static pods the sources want, by full name.
    pub static_pods: BTreeMap<String, Arc<Pod>>,
    /// Static pods no source wants any more whose containers still stop:
    /// their mirror stays until they are down, as the kubelet's does.
    pub terminating: BTreeSet<String>,
    /// The mirror pods the API source delivered, by full name.
    pub mirrors: BTreeMap<String, Arc<Pod>>,
    /// Every source has delivered: a mirror without a static pod is an
    /// orphan only then.
    pub sources_ready: bool,
}

/// One write to the API server that brings the mirrors in line.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorChange {
    /// Create the mirror of this static pod.
    Create(Arc<Pod>),
    /// Delete this mirror pod (grace 0, its UID as precondition).
    Delete(Arc<Pod>),
}

/// Whether `mirror` mirrors this version of `pod` (the kubelet's IsMirrorPodOf).
fn is_mirror_of(mirror: &Pod, pod: &Pod) -> bool {
    mirror.full_name() == pod.full_name()
        && mirror.annotation(CONFIG_MIRROR).is_some()
        && mirror.annotation(CONFIG_MIRROR) == pod.annotation(CONFIG_HASH)
}

impl MirrorSet {
    /// The mirror a static pod's status goes to: one of this version of the
    /// pod, not being deleted.
    pub fn mirror_of(&self, pod: &Pod) -> Option<&Arc<Pod>> {
        self.mirrors
            .get(&pod.full_name())
            .filter(|m| m.metadata.deletion_timestamp.is_none() && is_mirror_of(m, pod))
    }

    /// What to write: a mirror for every static pod that has none, a new one
    /// for one whose mirror is being deleted or mirrors an older manifest,
    /// and no mirror without a static pod.
    pub fn changes(&self) -> Vec<MirrorChange> {
        let mut changes = Vec::new();
        for (name, pod) in &self.static_pods {
            match self.mirrors.get(name) {
                Some(_) if self.mirror_of(pod).is_some() => {}
                Some(stale) => {
                    changes.push(MirrorChange::Delete(stale.clone()));
                    changes.push(MirrorChange::Create(pod.clone()));
                }
                None => changes.push(MirrorChange::Create(pod.clone())),
            }
        }
        if self.sources_ready {
            changes.extend(
                self.mirrors
                    .iter()
                    .filter(|(name, _)| {
                        !self.static_pods.contains_key(*name) && !self.terminating.contains(*name)
                    })
                    .map(|(_, mirror)| MirrorChange::Delete(mirror.clone())),
            );
        }
        changes
    }
}

/// The mirror of `pod` (the kubelet's CreateMirrorPod): its metadata and
/// spec, marked with its config hash and owned by the Node, so it goes
/// with the Node.
pub fn mirror_pod(pod: &Pod, node_name: &str, node_uid: &str) -> Pod {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let hash = annotations.get(CONFIG_HASH).cloned().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.into(), hash);
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: Some(pod.namespace_or_default().to_owned()),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node_name.to_owned(),
                uid: node_uid.to_owned(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: pod.spec.clone(),
        status: None,
    }
}

/// The published [`MirrorSet`]: the sync loop writes, anyone reads.
#[derive(Debug)]
pub struct MirrorPods(watch::Sender<Arc<MirrorSet>>);

impl Default for MirrorPods {
    fn default() -> Self {
        Self(watch::channel(Arc::default()).0)
    }
}

impl MirrorPods {
    /// Publishes `set`, waking readers only if it differs.
    pub fn publish(&self, set: MirrorSet) {
        self.0.send_if_modified(|current| {
            if **current == set {
                return false;
            }
            *current = Arc::new(set);
            true
        });
    }

    pub fn current(&self) -> Arc<MirrorSet> {
        self.0.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MirrorSet>> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, annotations: &[(&str, &str)]) -> Arc<Pod> {
        let annotations: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "annotations": annotations},
                "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "img"}]}
            }))
            .expect("pod"),
        )
    }

    fn names(changes: &[MirrorChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                MirrorChange::Create(p) => format!("create {}", p.full_name()),
                MirrorChange::Delete(p) => format!("delete {}", p.full_name()),
            })
            .collect()
    }

    fn set(statics: &[Arc<Pod>], mirrors: &[Arc<Pod>]) -> MirrorSet {
        MirrorSet {
            static_pods: statics.iter().map(|p| (p.full_name(), p.clone())).collect(),
            terminating: BTreeSet::new(),
            mirrors: mirrors.iter().map(|p| (p.full_name(), p.clone())).collect(),
            sources_ready: true,
        }
    }

    #[test]
    fn a_static_pod_without_a_mirror_gets_one_that_names_its_hash_and_node() {
        let web = pod("web", &[(CONFIG_HASH, "h1")]);
        let changes = set(std::slice::from_ref(&web), &[]).changes();
        assert_eq!(names(&changes), ["create web_default"]);

        let mirror = mirror_pod(&web, "n1", "node-uid");
        assert!(mirror.is_mirror());
        assert!(is_mirror_of(&mirror, &web));
        assert_eq!(mirror.annotation(CONFIG_MIRROR), Some("h1"));
        assert_eq!(
            mirror.metadata.uid, None,
            "the API server gives it its own UID"
        );
        let owner = &mirror
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "n1", "node-uid")
        );
        assert_eq!(mirror.spec, web.spec);
    }

    #[test]
    fn a_current_mirror_is_left_alone_and_takes_the_status() {
        let web = pod("web", &[(CONFIG_HASH, "h1")]);
        let mirror = pod("web", &[(CONFIG_MIRROR, "h1")]);
        let set = set(std::slice::from_ref(&web), std::slice::from_ref(&mirror));
        assert!(set.changes().is_empty());
        assert_eq!(set.mirror_of(&web), Some(&mirror));
    }

    #[test]
    fn a_mirror_of_an_older_manifest_or_being_deleted_is_replaced() {
        let web = pod("web", &[(CONFIG_HASH, "h2")]);
        let old = pod("web", &[(CONFIG_MIRROR, "h1")]);
        let s = set(std::slice::from_ref(&web), &[old]);
        assert_eq!(
            names(&s.changes()),
            ["delete web_default", "create web_default"]
        );
        assert_eq!(s.mirror_of(&web), None, "no status goes to a stale mirror");

        let mut deleting = Pod::clone(&pod("web", &[(CONFIG_MIRROR, "h2")]));
        deleting.metadata.deletion_timestamp =
            Some(crate::api_status::time(std::time::SystemTime::now()));
        let s = set(std::slice::from_ref(&web), &[Arc::new(deleting)]);
        assert_eq!(
            names(&s.changes()),
            ["delete web_default", "create web_default"]
        );
    }

    #[test]
    fn an_orphaned_mirror_goes_once_every_source_spoke_and_its_pod_is_down() {
        let orphan = pod("old", &[(CONFIG_MIRROR, "h1")]);
        let mut s = set(&[], std::slice::from_ref(&orphan));
        s.sources_ready = false;
        assert!(
            s.changes().is_empty(),
            "its static pod may come from a source not heard yet"
        );
        s.sources_ready = true;
        s.terminating.insert("old_default".into());
        assert!(s.changes().is_empty(), "its static pod is still stopping");
        s.terminating.clear();
        assert_eq!(names(&s.changes()), ["delete old_default"]);
    }

    #[test]
    fn publishing_the_same_set_wakes_no_one() {
        let store = MirrorPods::default();
        let mut rx = store.subscribe();
        rx.mark_unchanged();
        let s = set(&[pod("web", &[(CONFIG_HASH, "h1")])], &[]);
        store.publish(s.clone());
        assert!(rx.has_changed().unwrap_or(false));
        rx.mark_unchanged();
        store.publish(s);
        assert!(!rx.has_changed().unwrap_or(true));
    }
}
