//! The API server as a pod source, with the kubelet's reflector semantics:
//! list, then watch from the list's resourceVersion (with bookmarks); a
//! watch that ends is watched again from the last resourceVersion seen; a
//! 410 Gone lists again. Every change is a complete snapshot (the kubelet's
//! SET). When the API cannot be reached the call fails, and the agent keeps
//! the last snapshot's pods.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;
use wasmlet_plugin_sdk::pod_source::kube_api::{self, EventKind, Query, WatchEnd, WatchStream};
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Snapshot, SourcePod, host};

/// How long one call waits for a change before it returns the same
/// snapshot (a resync); each wait is one host call.
const WAIT_MS: u32 = 30_000;
const WAITS_PER_CALL: u32 = 10;

#[derive(Default)]
struct Reflector {
    /// uid → the pod's JSON.
    pods: BTreeMap<String, String>,
    resource_version: Option<String>,
    watch: Option<WatchStream>,
}

thread_local! {
    static STATE: RefCell<Reflector> = RefCell::new(Reflector::default());
}

fn query() -> Query {
    Query {
        resource: "pods".into(),
        namespace: None,
        field_selector: Some(format!("spec.nodeName={}", host::node_name())),
        label_selector: None,
    }
}

/// The pod's UID and resourceVersion, and its JSON with the source
/// annotation every source's pods carry (the kubelet's
/// `kubernetes.io/config.source`: `api` for these).
fn read(object: &str) -> Option<(String, String, String)> {
    let mut v: Value = serde_json::from_str(object).ok()?;
    let m = &mut v["metadata"];
    let uid = m["uid"].as_str().unwrap_or_default().to_owned();
    let rv = m["resourceVersion"].as_str().unwrap_or_default().to_owned();
    if m.get("uid").is_some() {
        if !m["annotations"].is_object() {
            m["annotations"] = Value::Object(Default::default());
        }
        m["annotations"]["kubernetes.io/config.source"] = Value::from("api");
    }
    Some((uid, rv, v.to_string()))
}

impl Reflector {
    fn relist(&mut self) -> Result<(), Error> {
        self.watch = None;
        let list = kube_api::list(&query())?;
        self.pods = list
            .items
            .into_iter()
            .filter_map(|item| {
                let (uid, _, json) = read(&item)?;
                Some((uid, json))
            })
            .collect();
        self.resource_version = Some(list.resource_version);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pods: self
                .pods
                .values()
                .map(|json| SourcePod {
                    json: json.clone(),
                    origin: "api".into(),
                })
                .collect(),
            problems: Vec::new(),
        }
    }

    /// Applies one event; whether the pods changed.
    fn apply(&mut self, kind: EventKind, object: &str) -> bool {
        let Some((uid, rv, object)) = read(object) else {
            return false;
        };
        if !rv.is_empty() {
            self.resource_version = Some(rv);
        }
        match kind {
            EventKind::Bookmark => false,
            EventKind::Added | EventKind::Modified => {
                self.pods.insert(uid, object.clone()).as_deref() != Some(object.as_str())
            }
            EventKind::Deleted => self.pods.remove(&uid).is_some(),
        }
    }

    /// Waits for changes; the snapshot once something changed (or after
    /// the waits of one call: the same pods again).
    fn next(&mut self) -> Result<Snapshot, Error> {
        let Some(mut rv) = self.resource_version.clone() else {
            self.relist()?;
            return Ok(self.snapshot());
        };
        let mut changed = false;
        for _ in 0..WAITS_PER_CALL {
            if self.watch.is_none() {
                self.watch = Some(kube_api::watch(&query(), &rv)?);
            }
            let Some(watch) = self.watch.as_ref() else {
                continue;
            };
            // After a change, take what else is already there, then report.
            let wait = if changed { 0 } else { WAIT_MS };
            match watch.next(wait) {
                Ok(Some(event)) => changed |= self.apply(event.kind, &event.object),
                Ok(None) if changed => return Ok(self.snapshot()),
                Ok(None) => {}
                Err(WatchEnd::Gone) => {
                    host::log(
                        host::LogLevel::Info,
                        "watch expired (410 Gone): listing again",
                    );
                    self.relist()?;
                    return Ok(self.snapshot());
                }
                Err(WatchEnd::Closed(why)) => {
                    host::log(
                        host::LogLevel::Debug,
                        &format!("watch ended ({why}); watching again"),
                    );
                    self.watch = None;
                }
            }
            rv = self.resource_version.clone().unwrap_or_default();
        }
        Ok(self.snapshot())
    }
}

struct ApiSource;

impl Guest for ApiSource {
    fn next_snapshot() -> Result<Snapshot, Error> {
        STATE.with(|state| state.borrow_mut().next())
    }
}

wasmlet_plugin_sdk::pod_source::export_pod_source!(ApiSource);
