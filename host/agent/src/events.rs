//! Events about pods (Scheduled, Pulling, Started, Killing, BackOff, ...), as
//! Kubernetes v1 Events: logged, and kept (the newest few hundred) for
//! `/events` and tests.

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

#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<VecDeque<Event>>,
    next: Mutex<u64>,
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
        let n = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        let now = crate::api_status::time(std::time::SystemTime::now());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{n:x}")),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(namespace),
                uid: meta.uid.clone(),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
                ..Default::default()
            },
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
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() == KEEP {
            events.pop_front();
        }
        events.push_back(event);
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
