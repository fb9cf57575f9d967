//! The agent's plugins: the admission chain behind the agent's admission
//! port, and the pod sources feeding its config channel.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wasmlet_agent::admission::{Admission, Admit};
use wasmlet_agent::handlers::BoxFuture;
use wasmlet_agent::pod_ext::PodExt;
use wasmlet_agent::{SourceMessage, SourceUpdate};
use wasmlet_plugin_host::{Plugin, SourceEvent, admit_all, config_source, pod_view, types};

/// A value the plugin directory's reloads replace while readers hold the
/// one they took: one writer (the reloader), many readers, no lock held
/// across a call.
#[derive(Debug, Default)]
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(value))))
    }

    pub fn get(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

/// The admission plugins in the order they run.
#[derive(Debug, Default)]
pub struct Chain {
    pub plugins: Vec<Arc<Plugin>>,
    /// Fail-closed admission plugins that should run and do not (missing,
    /// or failed to load), with why: while any is, no new pod is admitted.
    pub unavailable: Vec<(String, String)>,
}

/// Runs admission plugins in the configured order (first rejection wins).
#[derive(Debug)]
pub struct PluginAdmission {
    pub chain: Live<Chain>,
    pub node: types::NodeInfo,
    /// The WIT view of each pod admission has seen, kept while it is active.
    pub views: PodViews,
}

/// WIT pod views, built once per pod (as the sources give it: a changed pod
/// is a new `Arc`) and kept while the pod is active or being judged.
#[derive(Debug, Default)]
pub struct PodViews {
    views: Mutex<HashMap<String, (Arc<Pod>, types::Pod)>>,
    built: AtomicUsize,
}

impl PodViews {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Pod>, types::Pod)>> {
        self.views.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The view of `pod`, from the cache unless the pod changed.
    pub fn get(&self, pod: &Arc<Pod>) -> Result<types::Pod, String> {
        let uid = pod.uid_str();
        if let Some((seen, view)) = self.lock().get(uid)
            && (Arc::ptr_eq(seen, pod) || seen == pod)
        {
            return Ok(view.clone());
        }
        let view = pod_view(pod, source_of(pod))?;
        self.built.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .insert(uid.to_owned(), (pod.clone(), view.clone()));
        Ok(view)
    }

    /// Forgets the views of pods no longer in `keep`.
    pub fn retain<'a>(&self, keep: impl IntoIterator<Item = &'a Arc<Pod>>) {
        let keep: HashSet<&str> = keep.into_iter().map(|p| p.uid_str()).collect();
        self.lock().retain(|uid, _| keep.contains(uid.as_str()));
    }

    /// How many views were built so far.
    #[cfg(test)]
    fn built(&self) -> usize {
        self.built.load(Ordering::Relaxed)
    }
}

fn source_of(pod: &Pod) -> &str {
    config_source(pod, "api")
}

impl Admit for PluginAdmission {
    async fn admit(&self, pod: &Arc<Pod>, active: &[Arc<Pod>]) -> Admission {
        let chain = self.chain.get();
        if let Some((plugin, why)) = chain.unavailable.first() {
            return Admission {
                admit: false,
                reason: "AdmissionPluginUnavailable".into(),
                message: format!(
                    "fail-closed admission plugin {plugin} is not loaded ({why}); no pod is admitted until it is"
                ),
            };
        }
        if chain.plugins.is_empty() {
            return Admission::admitted();
        }
        self.views.retain(active.iter().chain([pod]));
        let view = match self.views.get(pod) {
            Ok(view) => view,
            Err(message) => {
                return Admission {
                    admit: false,
                    reason: "InvalidPod".into(),
                    message,
                };
            }
        };
        let active: Vec<types::Pod> = active
            .iter()
            .filter_map(|p| self.views.get(p).ok())
            .collect();
        let verdict = admit_all(&chain.plugins, &view, &self.node, &active).await;
        Admission {
            admit: verdict.admit,
            reason: verdict.reason,
            message: verdict.message,
        }
    }
}

/// Whose messages of one source count: instances are numbered, and once an
/// instance has delivered, its predecessors' messages are dropped. A
/// replaced source's pods stay as its predecessor left them until then.
#[derive(Debug, Clone, Default)]
pub struct SourceTurn(Arc<tokio::sync::Mutex<u64>>);

/// One running instance of a source plugin.
#[derive(Debug, Clone)]
pub struct SourceInstance {
    pub turn: SourceTurn,
    pub generation: u64,
    /// Ends this instance (and no other).
    pub stop: CancellationToken,
}

impl SourceInstance {
    /// The first instance of a source.
    pub fn first(shutdown: &CancellationToken) -> Self {
        Self {
            turn: SourceTurn::default(),
            generation: 0,
            stop: shutdown.child_token(),
        }
    }

    /// The instance that replaces this one.
    pub fn successor(&self, shutdown: &CancellationToken) -> Self {
        Self {
            turn: self.turn.clone(),
            generation: self.generation + 1,
            stop: shutdown.child_token(),
        }
    }
}

/// Starts every source plugin; their snapshots arrive on `updates`, decoded.
/// Returns each one's instance, for the reloads that replace them.
pub fn start_sources(
    sources: &[Arc<Plugin>],
    updates: &mpsc::Sender<SourceMessage>,
    shutdown: &CancellationToken,
    tasks: &mut super::tasks::CoreTasks,
) -> HashMap<String, SourceInstance> {
    let mut running = HashMap::new();
    for plugin in sources {
        let instance = SourceInstance::first(shutdown);
        running.insert(plugin.name.clone(), instance.clone());
        let (plugin, updates, shutdown) = (plugin.clone(), updates.clone(), shutdown.clone());
        tasks.spawn(format!("pod source {}", plugin.name), async move {
            let stop = instance.stop.clone();
            run_source(plugin, updates, instance, None).await;
            // Replaced by a reload: not an end of the agent's.
            if stop.is_cancelled() {
                shutdown.cancelled().await;
            }
        });
    }
    running
}

/// What loads one configured source plugin again (its manifest, as the
/// agent adjusts it): for a source that did not load or could not be
/// configured at start.
pub type SourceLoader =
    Box<dyn Fn() -> BoxFuture<'static, Result<Option<Plugin>, String>> + Send + Sync>;

/// Retries a configured source that did not start (a truncated component, a
/// URL whose host did not resolve) with back-off, telling the sync loop each
/// failure, and runs it once it loads: no restart needed for a repair.
pub async fn retry_source(
    name: String,
    load: SourceLoader,
    updates: mpsc::Sender<SourceMessage>,
    shutdown: CancellationToken,
) {
    const FIRST: Duration = Duration::from_secs(2);
    const MOST: Duration = Duration::from_secs(60);
    let mut backoff = FIRST;
    loop {
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MOST);
        let reason = match load().await {
            Ok(Some(plugin)) => {
                tracing::info!(source = %name, "pod source loaded on retry");
                let instance = SourceInstance::first(&shutdown);
                return run_source(Arc::new(plugin), updates, instance, None).await;
            }
            Ok(None) => format!("{name} is no longer configured"),
            Err(reason) => reason,
        };
        let failed = SourceMessage::Failed {
            source: name.clone(),
            reason,
        };
        if updates.send(failed).await.is_err() {
            return;
        }
    }
}

/// Runs one instance of a source plugin until its `stop` and forwards its
/// snapshots, decoded; a pod that does not decode is reported as a problem
/// of its source. An instance that replaces another stops it when it first
/// delivers (`predecessor`).
pub async fn run_source(
    plugin: Arc<Plugin>,
    updates: mpsc::Sender<SourceMessage>,
    instance: SourceInstance,
    mut predecessor: Option<CancellationToken>,
) {
    let (events_tx, mut events) = mpsc::channel(4);
    let name = plugin.name.clone();
    let SourceInstance {
        turn,
        generation,
        stop,
    } = instance;
    // Sends `message` if this instance's turn has come (and ends its
    // predecessor then); false when it is over (replaced, or the agent stops).
    let send = move |message: SourceMessage| {
        let (turn, updates) = (turn.clone(), updates.clone());
        let predecessor = predecessor.take();
        async move {
            let mut current = turn.0.lock().await;
            if *current > generation {
                return false;
            }
            if *current < generation {
                *current = generation;
                if let Some(predecessor) = predecessor {
                    predecessor.cancel();
                }
            }
            updates.send(message).await.is_ok()
        }
    };
    let forward = async move {
        let mut send = send;
        while let Some(event) = events.recv().await {
            let snapshot = match event {
                SourceEvent::Snapshot(snapshot) => snapshot,
                SourceEvent::Failed(error) => {
                    // The last good snapshot stays in force.
                    let failed = SourceMessage::Failed {
                        source: name.clone(),
                        reason: error.to_string(),
                    };
                    if !send(failed).await {
                        return;
                    }
                    continue;
                }
            };
            let mut update = SourceUpdate {
                source: name.clone(),
                ..Default::default()
            };
            for pod in snapshot.pods {
                match serde_json::from_str::<Pod>(&pod.json) {
                    Ok(decoded) => update.pods.push(decoded),
                    Err(e) => update.problems.push((pod.origin, e.to_string())),
                }
            }
            update
                .problems
                .extend(snapshot.problems.into_iter().map(|p| (p.origin, p.message)));
            if !send(update.into()).await {
                return;
            }
        }
    };
    // The source ends only when stopped; the forwarder when it does.
    tokio::join!(
        plugin.run_source(Arc::new(Notify::new()), events_tx, stop),
        forward
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "uid": uid},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.35"}]}
            }))
            .expect("a pod"),
        )
    }

    #[test]
    fn a_view_is_built_once_per_pod_and_kept_while_it_is_active() {
        let views = PodViews::default();
        let (a, b) = (pod("a", "ua"), pod("b", "ub"));
        for _ in 0..3 {
            views.get(&a).expect("a view");
            views.get(&b).expect("a view");
        }
        assert_eq!(views.built(), 2);
        // The same pod read again (a new Arc, equal): still the one view.
        views.get(&pod("a", "ua")).expect("a view");
        assert_eq!(views.built(), 2);
        // Changed under the same UID: built anew.
        let renamed = pod("a2", "ua");
        assert_eq!(views.get(&renamed).expect("a view").name, "a2");
        assert_eq!(views.built(), 3);
        // Gone from the active set: forgotten, so built again if it returns.
        views.retain([&renamed]);
        views.get(&b).expect("a view");
        assert_eq!(views.built(), 4);
    }
}
