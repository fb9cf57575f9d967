//! Hot reload of the plugin directory: every `pluginReloadPeriod` the
//! directory is looked at, and a plugin whose manifest or component was
//! added, changed or removed is loaded and validated on its own; only then
//! is it swapped in (the admission chain and the handlers are replaced
//! whole, so a call sees the old set or the new one). A plugin that fails to
//! load keeps its previous version, and the failure is logged and counted.
//! Running pods are untouched: a reloaded source's pods stay as its previous
//! instance left them until the new one delivers its first snapshot.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wasmlet_agent::SourceMessage;
use wasmlet_plugin_host::{Kind, Manifest, Plugin, PluginSet};

use super::handlers::PluginHandlers;
use super::plugins::{Chain, Live, SourceInstance, run_source};
use super::{SourceReload, admission_chain};

/// When a plugin's files were last changed, as far as the directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    manifest: Option<(SystemTime, u64)>,
    component: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Every manifest in `dir` and its component's stamp. Blocking.
fn scan(dir: &Path) -> BTreeMap<String, (PathBuf, Fingerprint)> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_manifest = path.extension().is_some_and(|e| e == "toml")
            && !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        if !is_manifest {
            continue;
        }
        let component = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| Manifest::parse(&text).ok())
            .and_then(|m| m.component)
            .map_or_else(|| path.with_extension("wasm"), |named| dir.join(named));
        let fingerprint = Fingerprint {
            manifest: stamp(&path),
            component: stamp(&component),
        };
        found.insert(name, (path, fingerprint));
    }
    found
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    plugin: String,
    /// `loaded`, `removed` or `failed`.
    result: String,
}

/// `wasmlet_plugin_reloads_total`.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics(Family<ReloadLabels, Counter>);

impl ReloadMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wasmlet_plugin_reloads",
            "Plugins reloaded from the plugin directory, by plugin and result (loaded, removed, failed)",
            self.0.clone(),
        );
    }

    fn count(&self, plugin: &str, result: &str) {
        self.0
            .get_or_create(&ReloadLabels {
                plugin: plugin.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }
}

/// The plugin directory's watcher, and the one writer of what it loaded.
pub struct Reloader {
    pub dir: PathBuf,
    pub period: Duration,
    pub loader: SourceReload,
    pub set: PluginSet,
    pub chain: Live<Chain>,
    pub handlers: Arc<PluginHandlers>,
    /// The running instance of each source plugin.
    pub sources: HashMap<String, SourceInstance>,
    /// Sources that did not start and are retried on their own: left alone.
    pub retried: Vec<String>,
    pub updates: mpsc::Sender<SourceMessage>,
    pub metrics: ReloadMetrics,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("dir", &self.dir)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Watches until `shutdown`. Ends early only if a source instance it
    /// started ended by itself (as a core task would).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let dir = self.dir.clone();
        let mut known = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || scan(&dir))
                .await
                .unwrap_or_default()
        };
        let mut instances = JoinSet::new();
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                Some(ended) = instances.join_next() => match ended {
                    Ok(Some(name)) => {
                        tracing::error!(source = %name, "a reloaded pod source ended by itself");
                        return;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::error!(%error, "a reloaded pod source panicked");
                        return;
                    }
                },
                _ = tick.tick() => {}
            }
            let now = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || scan(&dir))
                    .await
                    .unwrap_or_default()
            };
            let changed: Vec<String> = known
                .keys()
                .chain(now.keys())
                .filter(|name| known.get(*name).map(|k| &k.1) != now.get(*name).map(|n| &n.1))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|name| !self.retried.contains(name))
                .collect();
            if changed.is_empty() {
                continue;
            }
            for name in &changed {
                match now.get(name) {
                    Some((manifest, _)) => {
                        self.reload(name, manifest, &shutdown, &mut instances).await;
                    }
                    None => self.remove(name),
                }
            }
            known = now;
            self.chain.set(admission_chain(
                &self.set,
                self.loader.config.admission_plugins.as_deref(),
            ));
            self.handlers.replace(&self.set);
            tracing::info!("plugins after reload:\n{}", self.set.table());
        }
    }

    /// Loads `name` anew; in its place only if it loads.
    async fn reload(
        &mut self,
        name: &str,
        manifest: &Path,
        shutdown: &CancellationToken,
        instances: &mut JoinSet<Option<String>>,
    ) {
        let loader = SourceReload {
            manifest: manifest.to_path_buf(),
            ..self.loader.clone()
        };
        match loader.load_or_skip().await {
            Ok(Some(plugin)) => {
                let plugin = Arc::new(plugin);
                tracing::info!(plugin = %name, kind = %plugin.kind(), "plugin reloaded");
                self.metrics.count(name, "loaded");
                self.set.skipped.retain(|s| s.name != name);
                self.set.plugins.retain(|p| p.name != name);
                self.set.plugins.push(plugin.clone());
                self.set.plugins.sort_by(|a, b| a.name.cmp(&b.name));
                match plugin.kind() {
                    Kind::PodSource => self.restart_source(plugin, shutdown, instances),
                    _ => self.stop_source(name),
                }
            }
            // Not configured (e.g. a built-in source the config does not use).
            Ok(None) => self.remove(name),
            Err(skipped) => {
                let why = skipped.error.to_string();
                let kept = if self.set.get(name).is_some() {
                    "the previous version stays"
                } else {
                    // As at start: a plugin that does not load is skipped
                    // (a fail-closed admission plugin then holds up admission).
                    self.set.skipped.retain(|s| s.name != name);
                    self.set.skipped.push(skipped);
                    "it is not loaded"
                };
                tracing::error!(plugin = %name, "plugin reload failed; {kept}: {why}");
                self.metrics.count(name, "failed");
            }
        }
    }

    /// Gone from the directory: loaded or not, it is no longer there (a
    /// fail-closed plugin that failed to load stops holding up admission,
    /// as it would not have at a start without it).
    fn remove(&mut self, name: &str) {
        let skipped = self.set.skipped.len();
        self.set.skipped.retain(|s| s.name != name);
        if self.set.get(name).is_none() {
            if self.set.skipped.len() != skipped {
                self.metrics.count(name, "removed");
            }
            return;
        }
        tracing::info!(plugin = %name, "plugin removed from the plugin directory");
        self.metrics.count(name, "removed");
        self.set.plugins.retain(|p| p.name != name);
        self.stop_source(name);
    }

    /// A removed source's pods stay as it left them: nothing running is
    /// lost because a file went away.
    fn stop_source(&mut self, name: &str) {
        if let Some(instance) = self.sources.remove(name) {
            tracing::warn!(source = %name, "pod source stopped; its pods stay as it last gave them");
            instance.stop.cancel();
        }
    }

    /// Starts the new instance; the old one runs until the new one delivers.
    fn restart_source(
        &mut self,
        plugin: Arc<Plugin>,
        shutdown: &CancellationToken,
        instances: &mut JoinSet<Option<String>>,
    ) {
        let previous = self.sources.get(&plugin.name);
        let instance = previous.map_or_else(
            || SourceInstance::first(shutdown),
            |p| p.successor(shutdown),
        );
        let predecessor = previous.map(|p| p.stop.clone());
        self.sources.insert(plugin.name.clone(), instance.clone());
        let updates = self.updates.clone();
        instances.spawn(async move {
            let stop = instance.stop.clone();
            let name = plugin.name.clone();
            run_source(plugin, updates, instance, predecessor).await;
            // Stopped (replaced, removed, or the agent stops): fine.
            (!stop.is_cancelled()).then_some(name)
        });
    }
}
