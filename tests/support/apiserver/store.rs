//! The stand-in's objects and the rules every write goes through: one
//! resourceVersion per write, increasing; UIDs; the status subresource; UID
//! and resourceVersion preconditions; graceful pod deletion; a change log
//! that watches replay from, compacted as etcd compacts it.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::patch;

/// A kind the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind {
    /// `api/v1` or `apis/<group>/<version>`.
    pub prefix: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespaced: bool,
    /// Writes to the object leave its status alone; `/status` writes only it.
    pub status: bool,
}

pub const KINDS: &[Kind] = &[
    Kind {
        prefix: "api/v1",
        plural: "pods",
        kind: "Pod",
        api_version: "v1",
        namespaced: true,
        status: true,
    },
    Kind {
        prefix: "api/v1",
        plural: "nodes",
        kind: "Node",
        api_version: "v1",
        namespaced: false,
        status: true,
    },
    Kind {
        prefix: "api/v1",
        plural: "events",
        kind: "Event",
        api_version: "v1",
        namespaced: true,
        status: false,
    },
    Kind {
        prefix: "api/v1",
        plural: "configmaps",
        kind: "ConfigMap",
        api_version: "v1",
        namespaced: true,
        status: false,
    },
    Kind {
        prefix: "api/v1",
        plural: "secrets",
        kind: "Secret",
        api_version: "v1",
        namespaced: true,
        status: false,
    },
    Kind {
        prefix: "api/v1",
        plural: "services",
        kind: "Service",
        api_version: "v1",
        namespaced: true,
        status: true,
    },
    Kind {
        prefix: "api/v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        api_version: "v1",
        namespaced: true,
        status: false,
    },
    Kind {
        prefix: "apis/coordination.k8s.io/v1",
        plural: "leases",
        kind: "Lease",
        api_version: "coordination.k8s.io/v1",
        namespaced: true,
        status: false,
    },
];

pub fn kind(prefix: &str, plural: &str) -> Option<Kind> {
    KINDS
        .iter()
        .find(|k| k.prefix == prefix && k.plural == plural)
        .copied()
}

pub fn kind_named(name: &str) -> Option<Kind> {
    KINDS.iter().find(|k| k.kind == name).copied()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// What the API answers when a request fails: a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    fn not_found(key: &Key) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", key.kind.plural, key.name),
        )
    }

    fn conflict(key: &Key, why: impl std::fmt::Display) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                key.kind.plural, key.name
            ),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub key: Key,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// How many changes the log keeps before it compacts (etcd keeps minutes).
const LOG_KEEP: usize = 10_000;

#[derive(Debug, Default)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: VecDeque<Change>,
    /// Changes at or below it are gone: a watch from before is 410 Gone.
    compacted: u64,
    uids: u64,
}

/// How a patch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
}

impl Store {
    /// A store whose UIDs start at a random place, as a real cluster's are
    /// unique: runtimes remember sandboxes by UID.
    pub fn seeded(seed: u64) -> Self {
        Self {
            uids: seed & 0xffff_ffff_0000,
            ..Self::default()
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Forgets the change log (as a compaction, or a restart, does).
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.log.clear();
    }

    fn existing(&self, key: &Key) -> Result<&Value, Failure> {
        self.objects.get(key).ok_or_else(|| Failure::not_found(key))
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of `kind` (in `namespace`, if given), in key order.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<(&Key, &Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .collect()
    }

    /// Changes after `rv`, or `None` if the log no longer reaches back there.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Change>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.log.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    fn record(&mut self, key: Key, before: Option<Value>, after: Option<Value>) -> Change {
        let change = Change {
            rv: self.rv,
            key,
            before,
            after,
        };
        self.log.push_back(change.clone());
        if self.log.len() > LOG_KEEP
            && let Some(gone) = self.log.pop_front()
        {
            self.compacted = gone.rv;
        }
        change
    }

    fn stamp(&mut self, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    /// POST: a new object, named in its metadata (or by `generateName`).
    pub fn create(
        &mut self,
        kind: Kind,
        namespace: &str,
        mut object: Value,
    ) -> Result<(Value, Change), Failure> {
        if !object.is_object() {
            return Err(Failure::new(400, "BadRequest", "the body is not an object"));
        }
        let meta = &mut object["metadata"];
        if !meta.is_object() {
            *meta = json!({});
        }
        if let Some(given) = meta["namespace"].as_str()
            && kind.namespaced
            && given != namespace
        {
            return Err(Failure::new(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.uids += 1;
        let name = match meta["name"].as_str() {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => match meta["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{:05x}", self.uids),
                None => {
                    return Err(Failure::invalid(
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        let key = Key {
            kind,
            namespace: if kind.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.clone(),
        };
        if self.objects.contains_key(&key) {
            return Err(Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.plural),
            ));
        }
        if kind.kind == "Event" {
            validate_event(&object, namespace)?;
        }
        let meta = &mut object["metadata"];
        meta["name"] = json!(name);
        if kind.namespaced {
            meta["namespace"] = json!(namespace);
        }
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
        meta["creationTimestamp"] = json!(now());
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
        }
        object["kind"] = json!(kind.kind);
        object["apiVersion"] = json!(kind.api_version);
        if kind.kind == "Pod" {
            // The pod strategy's PrepareForCreate: the status is the server's.
            object["status"] = json!({"phase": "Pending"});
        }
        self.stamp(&mut object);
        self.objects.insert(key.clone(), object.clone());
        let change = self.record(key, None, Some(object.clone()));
        Ok((object, change))
    }

    /// PUT: replaces the object, which must be at the given resourceVersion.
    pub fn replace(
        &mut self,
        key: &Key,
        mut object: Value,
        subresource_status: bool,
    ) -> Result<(Value, Change), Failure> {
        let old = self.existing(key)?;
        let given = object["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if given.is_empty() {
            return Err(Failure::invalid(format!(
                "{} \"{}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                key.kind.kind, key.name
            )));
        }
        preconditions(key, old, object["metadata"]["uid"].as_str(), Some(given))?;
        let old = old.clone();
        keep_server_fields(&old, &mut object, key.kind, subresource_status);
        self.write(key, old, object)
    }

    /// PATCH: applies `patch` to the object (or, with `subresource_status`,
    /// to its status alone). A `metadata.uid` or `metadata.resourceVersion`
    /// in the patch is a precondition.
    pub fn patch(
        &mut self,
        key: &Key,
        how: PatchType,
        patch: &Value,
        subresource_status: bool,
    ) -> Result<(Value, Change), Failure> {
        let old = self.existing(key)?;
        preconditions(
            key,
            old,
            patch["metadata"]["uid"].as_str(),
            patch["metadata"]["resourceVersion"].as_str(),
        )?;
        let old = old.clone();
        let mut object = old.clone();
        match how {
            PatchType::Merge => patch::merge(&mut object, patch),
            PatchType::Strategic => patch::strategic(&mut object, patch)
                .map_err(|e| Failure::new(400, "BadRequest", e))?,
        }
        keep_server_fields(&old, &mut object, key.kind, subresource_status);
        if key.kind.kind == "Pod" && subresource_status {
            validate_pod_status(&old, &object)?;
        }
        self.write(key, old, object)
    }

    fn write(
        &mut self,
        key: &Key,
        old: Value,
        mut object: Value,
    ) -> Result<(Value, Change), Failure> {
        if object == old {
            // A no-op write changes nothing, not even the resourceVersion.
            let change = Change {
                rv: self.rv,
                key: key.clone(),
                before: Some(old.clone()),
                after: Some(old.clone()),
            };
            return Ok((old, change));
        }
        self.stamp(&mut object);
        // A pod whose graceful deletion ended (grace 0 set) with no finalizers goes.
        self.objects.insert(key.clone(), object.clone());
        let change = self.record(key.clone(), Some(old), Some(object.clone()));
        Ok((object, change))
    }

    /// DELETE with the options' preconditions and grace. A pod bound to a
    /// node and not finished is deleted gracefully: it gets a
    /// deletionTimestamp and stays until deleted again with grace 0.
    pub fn delete(&mut self, key: &Key, options: &Value) -> Result<(Value, Change), Failure> {
        let old = self.existing(key)?;
        let pre = &options["preconditions"];
        preconditions(
            key,
            old,
            pre["uid"].as_str(),
            pre["resourceVersion"].as_str(),
        )?;
        let old = old.clone();
        if key.kind.kind == "Pod" {
            let bound = old["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            let finished = matches!(
                old["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
            let grace = options["gracePeriodSeconds"]
                .as_i64()
                .or_else(|| old["metadata"]["deletionGracePeriodSeconds"].as_i64())
                .or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30);
            if bound && !finished && grace > 0 {
                let mut object = old.clone();
                if object["metadata"]["deletionTimestamp"].is_null() {
                    object["metadata"]["deletionTimestamp"] = json!(now());
                }
                let shorter = object["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .map_or(grace, |g| g.min(grace));
                object["metadata"]["deletionGracePeriodSeconds"] = json!(shorter);
                return self.write(key, old, object);
            }
        }
        self.rv += 1;
        self.objects.remove(key);
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let change = self.record(key.clone(), Some(old), None);
        Ok((gone, change))
    }
}

/// A write's UID and resourceVersion preconditions against `old` (409).
fn preconditions(
    key: &Key,
    old: &Value,
    uid: Option<&str>,
    rv: Option<&str>,
) -> Result<(), Failure> {
    let theirs = |field: &str| old["metadata"][field].as_str().unwrap_or("");
    if let Some(uid) = uid
        && uid != theirs("uid")
    {
        return Err(Failure::conflict(
            key,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                theirs("uid")
            ),
        ));
    }
    if let Some(rv) = rv
        && rv != theirs("resourceVersion")
    {
        return Err(Failure::conflict(
            key,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}

/// What a client may not change: identity and server-set metadata; on the
/// main resource the status, through `/status` everything but the status.
fn keep_server_fields(old: &Value, new: &mut Value, kind: Kind, subresource_status: bool) {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "name",
        "namespace",
        "resourceVersion",
    ] {
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    new["kind"] = json!(kind.kind);
    new["apiVersion"] = json!(kind.api_version);
    if !kind.status {
        return;
    }
    if subresource_status {
        let status = new["status"].take();
        *new = old.clone();
        new["status"] = status;
    } else {
        new["status"] = old["status"].clone();
    }
}

/// The checks of ValidatePodStatusUpdate that a node agent can trip.
fn validate_pod_status(old: &Value, new: &Value) -> Result<(), Failure> {
    let terminal = |p: &Value| matches!(p.as_str(), Some("Succeeded" | "Failed"));
    let (was, is) = (&old["status"]["phase"], &new["status"]["phase"]);
    if terminal(was) && was != is {
        return Err(Failure::invalid(format!(
            "Pod \"{}\" is invalid: status.phase: Forbidden: may not transition from terminal phase {} to {}",
            old["metadata"]["name"].as_str().unwrap_or(""),
            was,
            is
        )));
    }
    let names: Vec<&str> = old["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for status in new["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = status["name"].as_str().unwrap_or("");
        if !names.contains(&name) {
            return Err(Failure::invalid(format!(
                "status.containerStatuses: Invalid value: {name:?}: no such container in the pod's spec"
            )));
        }
    }
    Ok(())
}

/// An event's involved object must live in the event's namespace.
fn validate_event(event: &Value, namespace: &str) -> Result<(), Failure> {
    let involved = &event["involvedObject"];
    if involved["kind"].as_str().is_none() {
        return Err(Failure::invalid("involvedObject.kind: Required value"));
    }
    let theirs = involved["namespace"].as_str().unwrap_or("");
    let cluster_scoped =
        kind_named(involved["kind"].as_str().unwrap_or("")).is_some_and(|k| !k.namespaced);
    if !cluster_scoped && theirs != namespace {
        return Err(Failure::invalid(format!(
            "involvedObject.namespace: Invalid value: {theirs:?}: does not match event.namespace"
        )));
    }
    Ok(())
}

/// RFC 3339, seconds, UTC: the API's `metav1.Time`, `seconds` from now.
pub fn in_seconds(seconds: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    k8s_openapi::jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(0) + seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn now() -> String {
    in_seconds(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Kind {
        kind_named("Pod").expect("pods")
    }

    fn pod(name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "app"}]}})
    }

    /// A store with pod `default/a` on node n1: the store, its key, the pod.
    fn with_pod() -> (Store, Key, Value) {
        let mut store = Store::default();
        let (created, _) = store
            .create(pods(), "default", pod("a", "n1"))
            .expect("created");
        let key = Key {
            kind: pods(),
            namespace: "default".into(),
            name: "a".into(),
        };
        (store, key, created)
    }

    #[test]
    fn every_write_has_a_newer_resource_version_and_stale_writes_conflict() {
        let (mut store, key, created) = with_pod();
        let rv = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .parse::<u64>()
                .unwrap_or(0)
        };
        let (patched, _) = store
            .patch(
                &key,
                PatchType::Merge,
                &json!({"metadata": {"labels": {"x": "y"}}}),
                false,
            )
            .expect("patched");
        assert!(rv(&patched) > rv(&created));
        let stale = store
            .replace(&key, created.clone(), false)
            .expect_err("stale");
        assert_eq!(stale.code, 409);
        let mut unversioned = created.clone();
        unversioned["metadata"]["resourceVersion"] = Value::Null;
        assert_eq!(
            store
                .replace(&key, unversioned, false)
                .expect_err("no version")
                .code,
            422
        );
        let wrong_uid = json!({"metadata": {"uid": "other"}, "status": {"phase": "Running"}});
        let e = store
            .patch(&key, PatchType::Strategic, &wrong_uid, true)
            .expect_err("uid");
        assert!(
            e.code == 409 && e.message.contains("Precondition failed: UID"),
            "{e:?}"
        );
    }

    #[test]
    fn the_status_subresource_writes_only_the_status_and_never_leaves_a_terminal_phase() {
        let (mut store, key, _) = with_pod();
        let (after, _) = store
            .patch(
                &key,
                PatchType::Merge,
                &json!({"spec": {"nodeName": "n2"}, "status": {"phase": "Failed"}}),
                true,
            )
            .expect("patched");
        assert_eq!(
            after["spec"]["nodeName"], "n1",
            "a status write changed the spec"
        );
        assert_eq!(after["status"]["phase"], "Failed");
        let e = store
            .patch(
                &key,
                PatchType::Merge,
                &json!({"status": {"phase": "Running"}}),
                true,
            )
            .expect_err("terminal");
        assert_eq!(e.code, 422);
        let (main, _) = store
            .patch(
                &key,
                PatchType::Merge,
                &json!({"status": {"phase": "Pending"}}),
                false,
            )
            .expect("a main-resource patch");
        assert_eq!(
            main["status"]["phase"], "Failed",
            "the main resource changed the status"
        );
    }

    #[test]
    fn a_bound_pod_is_deleted_gracefully_then_for_good() {
        let (mut store, key, created) = with_pod();
        let (terminating, _) = store.delete(&key, &Value::Null).expect("graceful");
        assert!(terminating["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(terminating["metadata"]["deletionGracePeriodSeconds"], 30);
        let wrong = json!({"preconditions": {"uid": "other"}, "gracePeriodSeconds": 0});
        assert_eq!(store.delete(&key, &wrong).expect_err("uid").code, 409);
        let uid = created["metadata"]["uid"].clone();
        store
            .delete(
                &key,
                &json!({"preconditions": {"uid": uid}, "gracePeriodSeconds": 0}),
            )
            .expect("deleted");
        assert!(store.get(&key).is_none());
    }

    #[test]
    fn a_compacted_log_cannot_be_watched_from() {
        let mut store = Store::default();
        store
            .create(pods(), "default", pod("a", "n1"))
            .expect("created");
        let rv = store.resource_version();
        store
            .create(pods(), "default", pod("b", "n1"))
            .expect("created");
        assert_eq!(store.changes_since(rv).map(|c| c.len()), Some(1));
        store.compact();
        assert!(store.changes_since(rv).is_none());
        assert_eq!(
            store
                .changes_since(store.resource_version())
                .map(|c| c.len()),
            Some(0)
        );
    }
}
