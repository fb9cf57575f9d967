//! The PLEG (pod lifecycle event generator), generic kind: relists the
//! runtime's sandboxes and containers every period, compares them with the
//! previous relist, turns differences into events for the sync loop, and
//! keeps the pod cache fresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmlet_core::{
    ContainerFilter, ContainerId, ContainerRuntime, ContainerState, Labels, PodUid, SandboxFilter,
    SandboxId, SandboxRuntime, SandboxState,
};

use crate::cache::PodCache;
use crate::health::Heartbeat;
use crate::kuberuntime::runtime_pod::{AGENT, POD_UID, inspect};
use crate::metrics::AgentMetrics;

/// Relist health: unhealthy once no relist succeeded for this long.
pub const RELIST_THRESHOLD: Duration = Duration::from_secs(180);
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    ContainerStarted,
    ContainerDied,
    ContainerRemoved,
    ContainerChanged,
    /// The sandbox appeared, died or went away.
    SandboxChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLifecycleEvent {
    pub uid: PodUid,
    pub kind: EventKind,
}

/// What one relist saw of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Container(ContainerState),
    Sandbox(SandboxState),
}

#[derive(Debug)]
pub struct Pleg<R> {
    runtime: Arc<R>,
    agent: String,
    cache: Arc<PodCache>,
    events: mpsc::Sender<PodLifecycleEvent>,
    health: Arc<Heartbeat>,
    metrics: AgentMetrics,
    /// object id → (pod, state) as of the previous relist.
    previous: HashMap<String, (PodUid, Seen)>,
}

impl<R: SandboxRuntime + ContainerRuntime + 'static> Pleg<R> {
    pub fn new(
        runtime: Arc<R>,
        agent: impl Into<String>,
        cache: Arc<PodCache>,
        events: mpsc::Sender<PodLifecycleEvent>,
        health: Arc<Heartbeat>,
        metrics: AgentMetrics,
    ) -> Self {
        Self {
            runtime,
            agent: agent.into(),
            cache,
            events,
            health,
            metrics,
            previous: HashMap::new(),
        }
    }

    /// Relists every `period` until `shutdown`.
    pub async fn run(mut self, period: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(error) = self.relist().await {
                tracing::warn!(%error, "pleg relist failed");
            }
        }
    }

    /// One relist: list, compare, inspect the pods that changed, emit events.
    pub async fn relist(&mut self) -> Result<(), wasmlet_core::RuntimeError> {
        let started = Instant::now();
        let ours = Labels::from([(AGENT.to_owned(), self.agent.clone())]);
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: ours.clone(),
                ..Default::default()
            })
            .await?;
        let containers = self
            .runtime
            .list_containers(&ContainerFilter {
                labels: ours,
                ..Default::default()
            })
            .await?;

        let mut current: HashMap<String, (PodUid, Seen)> = HashMap::new();
        for s in &sandboxes {
            let uid = s.labels.get(POD_UID).cloned().unwrap_or_default().into();
            current.insert(sandbox_key(&s.id), (uid, Seen::Sandbox(s.state)));
        }
        for c in &containers {
            let uid = c.labels.get(POD_UID).cloned().unwrap_or_default().into();
            current.insert(container_key(&c.id), (uid, Seen::Container(c.state)));
        }

        let mut events: BTreeMap<PodUid, BTreeSet<EventKind>> = BTreeMap::new();
        for (id, (uid, now)) in &current {
            let before = self.previous.get(id).map(|(_, s)| *s);
            if let Some(kind) = event_for(before, Some(*now)) {
                events.entry(uid.clone()).or_default().insert(kind);
            }
        }
        for (id, (uid, before)) in &self.previous {
            if !current.contains_key(id)
                && let Some(kind) = event_for(Some(*before), None)
            {
                events.entry(uid.clone()).or_default().insert(kind);
            }
        }

        let present: BTreeSet<PodUid> = current.values().map(|(uid, _)| uid.clone()).collect();
        for uid in events.keys() {
            match inspect(&*self.runtime, &self.agent, uid).await {
                Ok(pod) => self.cache.set(pod, started),
                Err(error) => {
                    // Keep the old states of this pod so the next relist retries it.
                    tracing::warn!(%error, pod = %uid, "pleg could not inspect pod");
                    for (id, entry) in &self.previous {
                        if &entry.0 == uid {
                            current.insert(id.clone(), entry.clone());
                        }
                    }
                }
            }
        }
        self.cache.retain(|uid| present.contains(uid), started);
        self.cache.relisted(started);
        self.previous = current;
        self.health.beat();
        self.metrics
            .pleg_relist_duration
            .observe(started.elapsed().as_secs_f64());

        for (uid, kinds) in events {
            for kind in kinds {
                let event = PodLifecycleEvent {
                    uid: uid.clone(),
                    kind,
                };
                if self.events.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn sandbox_key(id: &SandboxId) -> String {
    format!("s/{id}")
}

fn container_key(id: &ContainerId) -> String {
    format!("c/{id}")
}

/// The kubelet's `generateEvents`: what a change of one object means.
fn event_for(before: Option<Seen>, now: Option<Seen>) -> Option<EventKind> {
    use ContainerState::*;
    match (before, now) {
        (a, b) if a == b => None,
        (_, Some(Seen::Sandbox(_))) | (Some(Seen::Sandbox(_)), None) => {
            Some(EventKind::SandboxChanged)
        }
        (_, Some(Seen::Container(Running))) => Some(EventKind::ContainerStarted),
        (_, Some(Seen::Container(Exited))) => Some(EventKind::ContainerDied),
        (Some(Seen::Container(Running)), None) => Some(EventKind::ContainerDied),
        (Some(Seen::Container(_)), None) => Some(EventKind::ContainerRemoved),
        (_, Some(Seen::Container(Created | Unknown))) => Some(EventKind::ContainerChanged),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerState::*;

    #[test]
    fn events_follow_the_kubelet() {
        let c = |s| Some(Seen::Container(s));
        assert_eq!(
            event_for(None, c(Running)),
            Some(EventKind::ContainerStarted)
        );
        assert_eq!(
            event_for(c(Running), c(Exited)),
            Some(EventKind::ContainerDied)
        );
        assert_eq!(event_for(c(Running), None), Some(EventKind::ContainerDied));
        assert_eq!(
            event_for(c(Exited), None),
            Some(EventKind::ContainerRemoved)
        );
        assert_eq!(
            event_for(None, c(Created)),
            Some(EventKind::ContainerChanged)
        );
        assert_eq!(event_for(c(Running), c(Running)), None);
        assert_eq!(
            event_for(
                Some(Seen::Sandbox(SandboxState::Ready)),
                Some(Seen::Sandbox(SandboxState::NotReady))
            ),
            Some(EventKind::SandboxChanged)
        );
    }
}
