//! `wasmlet run`: the node agent as a daemon. Config → build → spawn → wait
//! for a signal → drain. Pods keep running when the agent stops.

mod cluster;
mod config;
mod exposition;
mod flags;
mod handlers;
mod plugins;
mod reload;
mod server;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pod_manifest::settings::{FileSourceSettings, HttpSourceSettings, ManifestUrl};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmlet_agent::metrics::AgentMetrics;
use wasmlet_agent::spec_support::NodeSupport;
use wasmlet_agent::stats::StatsProvider;
use wasmlet_agent::sysctl::Allowlist;
use wasmlet_agent::{Agent, AgentConfig};
use wasmlet_cri::{CriClient, CriConfig};
use wasmlet_plugin_host::{
    FailurePolicy, HostContext, Kind, Manifest, Plugin, PluginEngine, PluginMetrics, PluginSet,
    node_view,
};

pub use config::AgentFileConfig;
pub use flags::{GlobalOverrides, RunArgs, effective_config, path_or_empty};

use crate::node_facts;

/// The built-in sources, configured from the agent's own settings.
const FILE_SOURCE: &str = "file-source";
const HTTP_SOURCE: &str = "http-source";
const API_SOURCE: &str = "api-source";

/// Points the built-in sources at what the operator configured, and grants
/// them exactly that; skips a built-in source the config does not use.
/// What the agent does to every manifest it loads: the operator's caps, and
/// the built-in sources' settings from the agent's config.
fn adjust_manifest(
    config: &AgentFileConfig,
    name: &str,
    manifest: &mut Manifest,
) -> Result<bool, String> {
    for narrowed in manifest.cap(&config.plugin_limits.caps()) {
        tracing::warn!(plugin = %name, "pluginLimits: {narrowed}");
    }
    configure_builtin(config, name, manifest)
}

fn configure_builtin(
    config: &AgentFileConfig,
    name: &str,
    manifest: &mut Manifest,
) -> Result<bool, String> {
    if manifest.kind != Kind::PodSource {
        return Ok(true);
    }
    match name {
        FILE_SOURCE => {
            let Some(path) = &config.static_pod_path else {
                return Ok(false);
            };
            if !path.is_absolute() {
                return Err(format!("staticPodPath {} is not absolute", path.display()));
            }
            std::fs::create_dir_all(path)
                .map_err(|e| format!("staticPodPath {}: {e}", path.display()))?;
            let path_text = path
                .to_str()
                .ok_or_else(|| format!("staticPodPath {} is not UTF-8", path.display()))?;
            let ours = FileSourceSettings {
                path: path_text.to_owned(),
                check_frequency_ms: millis(config.file_check_frequency),
            };
            manifest.settings = merged_settings(&manifest.settings, &ours)?;
            manifest.capabilities.read_dirs = vec![path.clone()];
            Ok(true)
        }
        HTTP_SOURCE => {
            let Some(url) = &config.static_pod_url else {
                return Ok(false);
            };
            let destination = url_destination(url)?;
            let ours = HttpSourceSettings {
                url: url.clone(),
                connect_to: destination.clone(),
                header: config.static_pod_url_header.clone(),
                check_frequency_ms: millis(config.http_check_frequency),
            };
            manifest.settings = merged_settings(&manifest.settings, &ours)?;
            manifest.capabilities.connect = vec![destination.clone()];
            Ok(true)
        }
        API_SOURCE => {
            if config.kubeconfig.is_none() {
                return Ok(false);
            }
            // This node's pods, as the kubelet watches them.
            manifest.capabilities.kube_api = vec![wasmlet_plugin_host::ApiAccess {
                resource: "pods".into(),
                namespace: None,
                field_selector: Some(format!("spec.nodeName={}", config.node_name())),
            }];
            Ok(true)
        }
        _ => Ok(true),
    }
}

/// A period in whole milliseconds, as the sources' settings take it.
fn millis(period: Duration) -> u32 {
    u32::try_from(period.as_millis()).unwrap_or(u32::MAX)
}

/// A built-in source's settings (its own type, shared with the plugin) over
/// what its manifest says.
fn merged_settings(
    manifest: &serde_json::Value,
    ours: &impl serde::Serialize,
) -> Result<serde_json::Value, String> {
    let ours = serde_json::to_value(ours).map_err(|e| format!("source settings: {e}"))?;
    let mut merged = manifest.clone();
    match (merged.as_object_mut(), ours.as_object()) {
        (Some(target), Some(source)) => {
            for (k, v) in source {
                target.insert(k.clone(), v.clone());
            }
            Ok(merged)
        }
        _ => Ok(ours),
    }
}

/// `ip:port` of an `http[s]://host[:port]/...` URL: the one address the
/// http source may reach. Read as the http source reads it.
fn url_destination(url: &str) -> Result<String, String> {
    let parts = ManifestUrl::parse(url).map_err(|e| format!("staticPodURL {e}"))?;
    let with_port = format!("{}:{}", parts.host, parts.port);
    use std::net::ToSocketAddrs;
    // A name lookup blocks: off the async workers when there are some.
    let lookup = || with_port.to_socket_addrs();
    let found = match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(lookup)
        }
        _ => lookup(),
    };
    let addr = found
        .map_err(|e| format!("staticPodURL {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("staticPodURL {url:?}: no address"))?;
    Ok(addr.to_string())
}

/// Raises the soft open-file limit to the hard one: plugin sockets, CRI
/// streams and HTTP clients all take descriptors, and the default soft
/// limit (often 1024) is far below what a node with many pods needs.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(limit = ?limit.maximum, "raised the open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}

/// `wasmlet run`, shaped as linkerd2-proxy's app: config → build → spawn →
/// drain.
pub async fn run(args: RunArgs, globals: GlobalOverrides) -> anyhow::Result<()> {
    let config = effective_config(&args, globals)?;
    let not_implemented = config.not_implemented();
    if !not_implemented.is_empty() {
        tracing::warn!(
            "KubeletConfiguration fields wasmlet does not implement, ignored: {}",
            not_implemented.join(", ")
        );
    }
    let app = App::build(config).await?;
    let running = app.spawn();
    running.wait_and_drain().await
}

/// Everything built and bound, nothing running yet.
struct App {
    config: AgentFileConfig,
    agent: Agent<CriClient, plugins::PluginAdmission>,
    sources: Vec<Arc<Plugin>>,
    failed_sources: Vec<(String, String)>,
    /// What the plugin directory held at start, and the handles its reloads
    /// replace.
    plugin_set: PluginSet,
    chain: plugins::Live<plugins::Chain>,
    handlers: Arc<handlers::PluginHandlers>,
    reload_metrics: reload::ReloadMetrics,
    engine: Arc<PluginEngine>,
    host: Arc<HostContext>,
    plugin_metrics: PluginMetrics,
    ports: Vec<server::Port>,
    endpoints: Arc<server::Endpoints>,
    /// Cluster mode's, with the runtime it reports on.
    cluster: Option<(cluster::Cluster, Arc<CriClient>)>,
}

/// The core tasks, running until a signal or until one of them ends.
struct Running {
    tasks: tasks::CoreTasks,
    shutdown: CancellationToken,
    drain: Duration,
}

impl App {
    async fn build(config: AgentFileConfig) -> anyhow::Result<Self> {
        raise_open_file_limit();
        let node_name = config.node_name();
        tracing::info!(node = %node_name, "starting wasmlet");

        let runtime = Arc::new(CriClient::new(CriConfig::from(&config)));
        let streaming_runtime = runtime.clone();
        let engine = Arc::new(PluginEngine::new(config.plugin_cache()).context("plugin engine")?);
        let client = cluster::connect(&config).await?;
        let host = Arc::new(HostContext {
            node_name: node_name.clone(),
            exec: Some(runtime.clone()),
            kube: client.as_ref().map(cluster::reads),
        });
        let plugin_metrics = PluginMetrics::default();
        let set = PluginSet::load_dir_with(
            &engine,
            &host,
            &plugin_metrics,
            &config.plugin_dir,
            &config.plugin_grants,
            |name, manifest| adjust_manifest(&config, name, manifest),
        )
        .await
        .with_context(|| format!("plugin directory {}", config.plugin_dir.display()))?;
        tracing::info!("plugins:\n{}", set.table());
        for name in config.plugin_grants.keys() {
            let present = set.get(name).is_some() || set.skipped.iter().any(|s| &s.name == name);
            if !present {
                tracing::warn!(plugin = %name, "pluginGrants names a plugin that is not in the plugin directory");
            }
        }

        let chain = admission_chain(&set, config.admission_plugins.as_deref());
        for (plugin, why) in &chain.unavailable {
            tracing::error!(%plugin, "fail-closed admission plugin is not loaded; every new pod is rejected until it is: {why}");
        }
        let sources: Vec<Arc<Plugin>> = set
            .plugins
            .iter()
            .filter(|p| p.kind() == Kind::PodSource)
            .cloned()
            .collect();
        let mut node = node_facts::local_node(&node_name, Some(&config.root_dir));
        node_facts::hold_back(&mut node, &[&config.kube_reserved, &config.system_reserved]);
        if let Some(labels) = node.metadata.labels.as_mut() {
            labels.extend(config.node_labels.clone());
        }
        if !config.register_with_taints.is_empty() {
            node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
                taints: Some(config.register_with_taints.clone()),
                ..Default::default()
            });
        }
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap_or_default();
        let mut agent_config = AgentConfig::from(&config);
        if agent_config.host_ip.is_none() {
            agent_config.host_ip = node_facts::detect_node_ip(&node_name).await;
            tracing::info!(node_ip = ?agent_config.host_ip, "nodeIP not set; detected");
        }
        let objects = client.as_ref().map(cluster::objects);
        let ports =
            server::bind(&config, &node_name, agent_config.host_ip, client.as_ref()).await?;
        let cluster = client.map(|client| {
            let cluster =
                cluster::Cluster::new(client, &config, node.clone(), agent_config.host_ip);
            (cluster, runtime.clone())
        });
        let node = node_view(&node).map_err(anyhow::Error::msg)?;
        let sysctls = Allowlist::new(&config.allowed_unsafe_sysctls)
            .map_err(|e| anyhow::anyhow!("allowedUnsafeSysctls: {e}"))?;
        agent_config.node_support = NodeSupport::detect(sysctls);
        agent_config.allocatable = allocatable;
        (agent_config.sources, agent_config.failed_sources) = configured_sources(&config, &set);
        let failed_sources = agent_config.failed_sources.clone();
        for (source, reason) in &agent_config.failed_sources {
            tracing::error!(%source, "configured pod source is not running; no pod will be removed until it delivers a snapshot: {reason}");
        }

        let metrics = AgentMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        plugin_metrics.register(&mut registry);
        let reload_metrics = reload::ReloadMetrics::default();
        reload_metrics.register(&mut registry);
        let chain = plugins::Live::new(chain);
        let handlers = Arc::new(handlers::PluginHandlers::from_set(&set));
        let mut agent = Agent::new(
            runtime,
            plugins::PluginAdmission {
                chain: chain.clone(),
                node,
                views: Default::default(),
            },
            handlers.clone(),
            agent_config,
            metrics,
        );
        if let Some(objects) = objects {
            agent = agent.with_api_objects(objects);
        }
        // The prober's are served apart, at /metrics/probes, as the kubelet's.
        let mut probe_registry = Registry::default();
        agent.prober_metrics().register(&mut probe_registry);
        let endpoints = Arc::new(server::Endpoints {
            view: agent.view(),
            registry,
            probe_registry,
            stats: StatsProvider::new(
                streaming_runtime.clone(),
                agent.view().cache,
                node_name.clone(),
                config.root_dir.clone(),
            ),
            streams: server::Streams::new(streaming_runtime),
        });
        for port in &ports {
            tracing::info!("serving the {}", port.describe());
        }
        Ok(Self {
            config,
            agent,
            sources,
            failed_sources,
            plugin_set: set,
            chain,
            handlers,
            reload_metrics,
            engine,
            host,
            plugin_metrics,
            ports,
            endpoints,
            cluster,
        })
    }

    fn spawn(self) -> Running {
        let (engine, host, plugin_metrics) = (self.engine, self.host, self.plugin_metrics);
        let shutdown = CancellationToken::new();
        let (updates, config_rx) = mpsc::channel(16);
        let mut tasks = tasks::CoreTasks::default();
        let running = plugins::start_sources(&self.sources, &updates, &shutdown, &mut tasks);
        let config = Arc::new(self.config);
        let loader = SourceReload {
            engine: engine.clone(),
            host: host.clone(),
            metrics: plugin_metrics.clone(),
            manifest: PathBuf::new(),
            config: config.clone(),
        };
        for (source, _) in &self.failed_sources {
            let reload = SourceReload {
                manifest: config.plugin_dir.join(format!("{source}.toml")),
                ..loader.clone()
            };
            let load: plugins::SourceLoader = Box::new(move || {
                let reload = reload.clone();
                Box::pin(async move { reload.load().await })
            });
            tasks.spawn(
                format!("pod source {source} (retrying)"),
                plugins::retry_source(source.clone(), load, updates.clone(), shutdown.clone()),
            );
        }
        if !config.plugin_reload_period.is_zero() {
            let reloader = reload::Reloader {
                dir: config.plugin_dir.clone(),
                period: config.plugin_reload_period,
                loader,
                set: self.plugin_set,
                chain: self.chain,
                handlers: self.handlers,
                sources: running,
                retried: self.failed_sources.iter().map(|(n, _)| n.clone()).collect(),
                updates: updates.clone(),
                metrics: self.reload_metrics,
            };
            tasks.spawn("plugin directory", reloader.run(shutdown.clone()));
        }
        drop(updates);
        if let Some((cluster, runtime)) = self.cluster {
            cluster.spawn(&mut tasks, runtime, &self.endpoints.view, &shutdown);
        }
        for port in self.ports {
            let name = format!("{} server", port.name());
            tasks.spawn(
                name,
                server::serve(port, self.endpoints.clone(), shutdown.clone()),
            );
        }
        tasks.spawn("agent", self.agent.run(config_rx, shutdown.clone()));
        Running {
            tasks,
            shutdown,
            drain: config.shutdown_grace_period + Duration::from_secs(5),
        }
    }
}

impl Running {
    async fn wait_and_drain(self) -> anyhow::Result<()> {
        let Self {
            mut tasks,
            shutdown,
            drain,
        } = self;
        let outcome = tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("shutting down; pods keep running");
                Ok(())
            }
            (name, result) = tasks.first_ended() => {
                let error = tasks::ended_early(&name, result);
                tracing::error!("{error:#}");
                Err(error)
            }
        };
        shutdown.cancel();
        if tokio::time::timeout(drain, tasks.join_all()).await.is_err() {
            tracing::warn!("tasks did not stop within {drain:?}; leaving them");
        }
        outcome
    }
}

/// What loading a plugin of the directory again takes (a configured source
/// that did not start, or any plugin whose files changed).
#[derive(Clone)]
struct SourceReload {
    engine: Arc<PluginEngine>,
    host: Arc<HostContext>,
    metrics: PluginMetrics,
    config: Arc<AgentFileConfig>,
    manifest: PathBuf,
}

impl SourceReload {
    async fn load(&self) -> Result<Option<Plugin>, String> {
        self.load_or_skip()
            .await
            .map_err(|skipped| skipped.error.to_string())
    }

    /// As [`Self::load`], with what a failure is, as a directory load records it.
    async fn load_or_skip(&self) -> Result<Option<Plugin>, wasmlet_plugin_host::Skipped> {
        PluginSet::load_one(
            &self.engine,
            &self.host,
            &self.metrics,
            &self.manifest,
            &self.config.plugin_grants,
            |name, manifest| adjust_manifest(&self.config, name, manifest),
        )
        .await
    }
}

/// Every pod source the operator configured: the plugins that run, and those
/// that should but do not (did not load, could not be configured, or are
/// missing), with why. A plugin whose manifest cannot be read may be a
/// source, so it counts as one: better no cleanup than a lost pod.
fn configured_sources(
    config: &AgentFileConfig,
    set: &PluginSet,
) -> (Vec<String>, Vec<(String, String)>) {
    let running: Vec<String> = set
        .plugins
        .iter()
        .filter(|p| p.kind() == Kind::PodSource)
        .map(|p| p.name.clone())
        .collect();
    let mut failed: Vec<(String, String)> = set
        .skipped
        .iter()
        .filter(|s| s.may_be_source())
        .map(|s| (s.name.clone(), s.error.to_string()))
        .collect();
    let builtins = [
        (
            FILE_SOURCE,
            config.static_pod_path.is_some(),
            "staticPodPath",
        ),
        (HTTP_SOURCE, config.static_pod_url.is_some(), "staticPodURL"),
        (API_SOURCE, config.kubeconfig.is_some(), "kubeconfig"),
    ];
    for (name, configured, field) in builtins {
        let known = running
            .iter()
            .chain(failed.iter().map(|(n, _)| n))
            .any(|n| n == name);
        if configured && !known {
            failed.push((
                name.to_owned(),
                format!(
                    "{field} is set, but the plugin directory {} has no {name} plugin",
                    config.plugin_dir.display()
                ),
            ));
        }
    }
    (running, failed)
}

/// The admission plugins in the configured order, or all of them by name;
/// and the fail-closed ones that should be there and are not, with why. A
/// configured name is fail-closed unless its manifest says otherwise.
fn admission_chain(set: &PluginSet, order: Option<&[String]>) -> plugins::Chain {
    let admission = |p: &&Arc<Plugin>| p.kind() == Kind::Admission;
    let fail_closed = |name: &str| -> Option<String> {
        let skipped = set.skipped.iter().find(|s| s.name == name);
        match skipped {
            Some(s) if s.failure_policy == Some(FailurePolicy::FailOpen) => None,
            Some(s) if s.kind.is_none_or(|k| k == Kind::Admission) => Some(s.error.to_string()),
            Some(_) => None,
            None => Some(format!("no plugin {name} in the plugin directory")),
        }
    };
    match order {
        None => {
            let plugins = set.plugins.iter().filter(admission).cloned().collect();
            let unavailable = set
                .skipped
                .iter()
                .filter(|s| s.kind == Some(Kind::Admission))
                .filter_map(|s| Some((s.name.clone(), fail_closed(&s.name)?)))
                .collect();
            plugins::Chain {
                plugins,
                unavailable,
            }
        }
        Some(names) => {
            let mut plugins = Vec::new();
            let mut unavailable = Vec::new();
            for name in names {
                match set.get(name).filter(admission) {
                    Some(plugin) => plugins.push(plugin.clone()),
                    None => match fail_closed(name) {
                        Some(why) => unavailable.push((name.clone(), why)),
                        None => {
                            tracing::warn!(plugin = %name, "fail-open admission plugin is not loaded; skipped")
                        }
                    },
                }
            }
            plugins::Chain {
                plugins,
                unavailable,
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_source_may_reach_only_the_urls_host() {
        assert_eq!(
            url_destination("http://127.0.0.1:8080/pods.yaml"),
            Ok("127.0.0.1:8080".into())
        );
        assert_eq!(
            url_destination("http://10.0.0.5/x"),
            Ok("10.0.0.5:80".into())
        );
        assert_eq!(
            url_destination("https://10.0.0.5/x"),
            Ok("10.0.0.5:443".into())
        );
        assert!(url_destination("ftp://10.0.0.5/x").is_err());
    }
}
