//! Events about pods (Scheduled, Pulling, Started, Killing, BackOff, ...), as
//! Kubernetes v1 Events: logged, kept (the newest few hundred) for
//! `/events` and tests, and broadcast to whoever sends them on (the API
//! server, in cluster mode).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const KEEP: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Events a slow reader may fall behind by before it misses some (the
/// queue of client-go's broadcaster).
const BROADCAST: usize = 1000;

#[derive(Debug)]
pub struct Recorder {
    events: Mutex<VecDeque<Event>>,
    last: Mutex<u64>,
    broadcast: tokio::sync::broadcast::Sender<Event>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            events: Mutex::default(),
            last: Mutex::default(),
            broadcast: tokio::sync::broadcast::channel(BROADCAST).0,
        }
    }
}

impl Recorder {
    /// Records an event about `pod` (and its container `container`, if any).
    pub fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let meta = &pod.metadata;
        let name = meta.name.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        match kind {
            EventType::Normal => {
                tracing::info!(pod = %name, namespace, container, reason, "{message}")
            }
            EventType::Warning => {
                tracing::warn!(pod = %name, namespace, container, reason, "{message}")
            }
        }
        let involved = ObjectReference {
            kind: Some("Pod".into()),
            api_version: Some("v1".into()),
            name: Some(name),
            namespace: Some(namespace.clone()),
            uid: meta.uid.clone(),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            ..Default::default()
        };
        self.keep(involved, namespace, kind, reason, message);
    }

    /// Records an event about the Node `node` (the kubelet's node
    /// reference: its name as its UID; the event in `default`).
    pub fn record_node(&self, node: &str, kind: EventType, reason: &str, message: String) {
        tracing::info!(node, reason, "{message}");
        let involved = ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            uid: Some(node.to_owned()),
            ..Default::default()
        };
        self.keep(involved, "default".into(), kind, reason, message);
    }

    fn keep(
        &self,
        involved: ObjectReference,
        namespace: String,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        // Named `<object>.<unix nanoseconds in hex>` as client-go names
        // them, so a restarted agent's names are new; never the same twice.
        let wall = std::time::SystemTime::now();
        let n = {
            let nanos = wall
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            *last = nanos.max(*last + 1);
            *last
        };
        let now = crate::api_status::time(wall);
        let object = involved.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{n:x}")),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(match kind {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        // No receiver (standalone mode) is fine.
        let _ = self.broadcast.send(event.clone());
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() == KEEP {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// Every event recorded from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.broadcast.subscribe()
    }

    /// The kept events, oldest first.
    pub fn list(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}
