//! The node's events to the API server, as client-go's recorder sends the
//! kubelet's: similar events (same object and reason, other messages)
//! aggregated after 10 within 10 minutes, a repeated event counted on its
//! first copy (a patch of `count` and `lastTimestamp`) rather than written
//! again, and at most a burst of 25 per object, then one every 5 minutes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use crate::{ApiClient, KubeError, bounded};

const AGGREGATE_AFTER: usize = 10;
const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);
const SPAM_BURST: f64 = 25.0;
/// Tokens a second: one event per object every 5 minutes after the burst.
const SPAM_REFILL: f64 = 1.0 / 300.0;
/// Entries kept per cache (client-go's LRU size); the stalest go first.
const CACHE_ENTRIES: usize = 4096;

/// One write the sink makes.
#[derive(Debug, Clone, PartialEq)]
pub enum EventWrite {
    Create(Event),
    /// A repeat of `event.metadata.name`: its new count, time and message.
    Patch(Event),
}

#[derive(Debug)]
struct Similar {
    messages: HashSet<String>,
    last: Instant,
}

#[derive(Debug)]
struct Seen {
    name: String,
    count: i32,
    first_timestamp: Option<Time>,
    last: Instant,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

fn object_key(event: &Event) -> Vec<&str> {
    let source = event.source.as_ref();
    let object = &event.involved_object;
    vec![
        source
            .and_then(|s| s.component.as_deref())
            .unwrap_or_default(),
        source.and_then(|s| s.host.as_deref()).unwrap_or_default(),
        object.kind.as_deref().unwrap_or_default(),
        object.namespace.as_deref().unwrap_or_default(),
        object.name.as_deref().unwrap_or_default(),
        object.uid.as_deref().unwrap_or_default(),
        object.api_version.as_deref().unwrap_or_default(),
    ]
}

/// Same object, type and reason (client-go's EventAggregatorByReasonFunc).
fn aggregate_key(event: &Event) -> String {
    let mut parts = object_key(event);
    parts.extend([
        event.type_.as_deref().unwrap_or_default(),
        event.reason.as_deref().unwrap_or_default(),
        event.reporting_component.as_deref().unwrap_or_default(),
        event.reporting_instance.as_deref().unwrap_or_default(),
    ]);
    key(&parts)
}

/// The same event again: also the field path and message (getEventKey).
fn event_key(event: &Event) -> String {
    let mut parts = object_key(event);
    parts.extend([
        event
            .involved_object
            .field_path
            .as_deref()
            .unwrap_or_default(),
        event.type_.as_deref().unwrap_or_default(),
        event.reason.as_deref().unwrap_or_default(),
        event.message.as_deref().unwrap_or_default(),
    ]);
    key(&parts)
}

/// Drops the stalest entry once `map` is full.
fn bound<V>(map: &mut HashMap<String, V>, last: impl Fn(&V) -> Instant) {
    if map.len() >= CACHE_ENTRIES
        && let Some(stalest) = map
            .iter()
            .min_by_key(|(_, v)| last(v))
            .map(|(k, _)| k.clone())
    {
        map.remove(&stalest);
    }
}

/// client-go's EventCorrelator: time is passed in.
#[derive(Debug, Default)]
pub struct Correlator {
    similar: HashMap<String, Similar>,
    seen: HashMap<String, Seen>,
    spam: HashMap<String, Bucket>,
}

impl Correlator {
    /// What to write for `event`, if anything (None: over the object's rate).
    pub fn correlate(&mut self, mut event: Event, now: Instant) -> Option<EventWrite> {
        // Aggregation: the 10th distinct message of the same kind of event
        // within 10 minutes, and all after it, count as one event.
        let similar_key = aggregate_key(&event);
        bound(&mut self.similar, |s| s.last);
        let similar = self.similar.entry(similar_key.clone()).or_insert(Similar {
            messages: HashSet::new(),
            last: now,
        });
        if now.duration_since(similar.last) > AGGREGATE_WINDOW {
            similar.messages.clear();
        }
        similar.last = now;
        similar
            .messages
            .insert(event.message.clone().unwrap_or_default());
        let seen_key = if similar.messages.len() >= AGGREGATE_AFTER {
            event.message = Some(format!(
                "(combined from similar events): {}",
                event.message.as_deref().unwrap_or_default()
            ));
            similar_key
        } else {
            event_key(&event)
        };

        // A repeat goes onto the first copy.
        bound(&mut self.seen, |s| s.last);
        let write = match self.seen.get_mut(&seen_key) {
            Some(seen) => {
                seen.count += 1;
                seen.last = now;
                event.metadata.name = Some(seen.name.clone());
                event.count = Some(seen.count);
                event.first_timestamp = seen.first_timestamp.clone();
                EventWrite::Patch(event)
            }
            None => {
                self.seen.insert(
                    seen_key,
                    Seen {
                        name: event.metadata.name.clone().unwrap_or_default(),
                        count: event.count.unwrap_or(1),
                        first_timestamp: event.first_timestamp.clone(),
                        last: now,
                    },
                );
                EventWrite::Create(event)
            }
        };

        // The object's token bucket.
        let event = match &write {
            EventWrite::Create(e) | EventWrite::Patch(e) => e,
        };
        let spam_key = key(&object_key(event));
        bound(&mut self.spam, |b| b.at);
        let bucket = self.spam.entry(spam_key).or_insert(Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * SPAM_REFILL;
        bucket.tokens = (bucket.tokens + refill).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return None;
        }
        bucket.tokens -= 1.0;
        Some(write)
    }
}

/// Writes events (the recorder's sink).
#[derive(Debug, Clone)]
pub struct EventApi {
    client: ApiClient,
}

impl EventApi {
    pub fn new(client: &ApiClient) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Carries out `write`; a patch of an event the server no longer has
    /// (expired, say) creates it again.
    pub async fn write(&self, write: &EventWrite) -> Result<(), KubeError> {
        match write {
            EventWrite::Create(event) => self.create(event).await,
            EventWrite::Patch(event) => {
                let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
                let name = event.metadata.name.as_deref().unwrap_or_default();
                let events: Api<Event> = Api::namespaced(self.client.kube(), namespace);
                let patch = json!({
                    "count": event.count,
                    "lastTimestamp": event.last_timestamp,
                    "message": event.message,
                });
                match bounded(events.patch(name, &PatchParams::default(), &Patch::Strategic(patch)))
                    .await
                {
                    Err(e) if e.is_not_found() => self.create(event).await,
                    other => other.map(|_| ()),
                }
            }
        }
    }

    async fn create(&self, event: &Event) -> Result<(), KubeError> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        let events: Api<Event> = Api::namespaced(self.client.kube(), namespace);
        match bounded(events.create(&PostParams::default(), event)).await {
            // Written before, by a write whose answer was lost.
            Err(e) if e.is_already_exists() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// `event` as this node reports it: the kubelet on `node`.
pub fn from_node(mut event: Event, node: &str) -> Event {
    event.source = Some(EventSource {
        component: Some("kubelet".into()),
        host: Some(node.to_owned()),
    });
    event.reporting_component = Some("kubelet".into());
    event.reporting_instance = Some(node.to_owned());
    event
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn event(pod: &str, n: u32, reason: &str, message: &str) -> Event {
        from_node(
            Event {
                metadata: ObjectMeta {
                    name: Some(format!("{pod}.{n:x}")),
                    namespace: Some("default".into()),
                    ..ObjectMeta::default()
                },
                involved_object: ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some(pod.into()),
                    namespace: Some("default".into()),
                    uid: Some(format!("uid-{pod}")),
                    api_version: Some("v1".into()),
                    ..ObjectReference::default()
                },
                reason: Some(reason.into()),
                message: Some(message.into()),
                type_: Some("Warning".into()),
                count: Some(1),
                ..Event::default()
            },
            "n1",
        )
    }

    fn name_count(write: &EventWrite) -> (String, i32, String) {
        let (EventWrite::Create(e) | EventWrite::Patch(e)) = write;
        (
            e.metadata.name.clone().unwrap_or_default(),
            e.count.unwrap_or_default(),
            e.message.clone().unwrap_or_default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_is_a_patch_of_the_first_copy_with_its_count() {
        let mut c = Correlator::default();
        let first = c.correlate(event("web", 1, "BackOff", "back-off"), Instant::now());
        assert!(matches!(first, Some(EventWrite::Create(_))));
        tokio::time::advance(Duration::from_secs(10)).await;
        let again = c
            .correlate(event("web", 2, "BackOff", "back-off"), Instant::now())
            .expect("written");
        assert!(matches!(again, EventWrite::Patch(_)));
        assert_eq!(name_count(&again), ("web.1".into(), 2, "back-off".into()));
        // Another pod's is its own.
        let other = c.correlate(event("db", 3, "BackOff", "back-off"), Instant::now());
        assert!(matches!(other, Some(EventWrite::Create(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn ten_similar_messages_in_ten_minutes_become_one_combined_event() {
        let mut c = Correlator::default();
        for n in 0..9 {
            let w = c
                .correlate(
                    event("web", n, "Unhealthy", &format!("probe {n}")),
                    Instant::now(),
                )
                .expect("written");
            assert!(matches!(w, EventWrite::Create(_)), "{n}");
        }
        let tenth = c
            .correlate(event("web", 9, "Unhealthy", "probe 9"), Instant::now())
            .expect("written");
        assert_eq!(
            name_count(&tenth),
            (
                "web.9".into(),
                1,
                "(combined from similar events): probe 9".into()
            )
        );
        let eleventh = c
            .correlate(event("web", 10, "Unhealthy", "probe 10"), Instant::now())
            .expect("written");
        assert_eq!(
            name_count(&eleventh),
            (
                "web.9".into(),
                2,
                "(combined from similar events): probe 10".into()
            )
        );
        // Ten minutes later the count of similar messages starts over.
        tokio::time::advance(AGGREGATE_WINDOW + Duration::from_secs(1)).await;
        let later = c
            .correlate(event("web", 11, "Unhealthy", "probe 11"), Instant::now())
            .expect("written");
        assert_eq!(name_count(&later).2, "probe 11");
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_gets_a_burst_of_25_then_one_event_every_five_minutes() {
        let mut c = Correlator::default();
        let written = (0..40)
            .filter(|n| {
                c.correlate(event("web", *n, &format!("R{n}"), "m"), Instant::now())
                    .is_some()
            })
            .count();
        assert_eq!(written, 25);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(
            c.correlate(event("web", 50, "R50", "m"), Instant::now())
                .is_none()
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            c.correlate(event("web", 51, "R51", "m"), Instant::now())
                .is_some()
        );
        // Another object has its own bucket.
        assert!(
            c.correlate(event("db", 52, "R", "m"), Instant::now())
                .is_some()
        );
    }
}
