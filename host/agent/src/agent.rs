//! The agent assembled: PLEG, cache, pod workers and the sync loop over one
//! runtime and one admission chain.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmlet_core::Runtime;

use crate::admission::Admit;
use crate::api_objects::ApiObjects;
use crate::cache::PodCache;
use crate::config_mux::{ConfigMux, SourceReadiness, SourceState};
use crate::events::Recorder;
use crate::handlers::ContainerHandlers;
use crate::health::Heartbeat;
use crate::image_gc::ImageGcPolicy;
use crate::kuberuntime::{PodSyncer, SyncConfig};
use crate::logs::{self, rotation::RotationPolicy};
use crate::metrics::AgentMetrics;
use crate::metrics::SourceLabels;
use crate::mirror_pods::MirrorPods;
use crate::network::DnsSettings;
use crate::pleg::{Pleg, RELIST_THRESHOLD};
use crate::pod_workers::{PodWorkers, WorkerContext};
use crate::prober::{ProbeResults, ProbeUpdate, Prober, ProberContext, ProberMetrics};
use crate::spec_support::NodeSupport;
use crate::status_manager::PodStatuses;
use crate::sync_loop::{LoopInputs, LoopTimings, SourceMessage, SyncLoop};
use crate::volumes::Volumes;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// The node's address (a host-network pod's IP).
    pub host_ip: Option<IpAddr>,
    pub log_root: PathBuf,
    /// Links to the containers' logs, for log collectors.
    pub container_logs_dir: PathBuf,
    /// When container logs are rotated.
    pub log_rotation: RotationPolicy,
    /// Pod directories and their volumes live under `<root_dir>/pods`.
    pub root_dir: PathBuf,
    pub runtime_handler: String,
    /// Every configured source; housekeeping waits for each to report.
    pub sources: Vec<String>,
    /// Configured sources that failed before they could run (a plugin that
    /// did not load or could not be configured), and why. They count as
    /// configured: until they deliver, nothing is removed.
    pub failed_sources: Vec<(String, String)>,
    pub relist_period: Duration,
    /// Periodic resync of every pod.
    pub resync: Duration,
    pub timings: LoopTimings,
    /// How long shutdown waits for the workers.
    pub drain: Duration,
    /// What the node's kernel enforces (AppArmor); none unless detected.
    pub node_support: NodeSupport,
    /// The node's allocatable resources, for the downward API.
    pub allocatable: BTreeMap<String, Quantity>,
    /// The pods' resolvers and domain (`clusterDNS`, `clusterDomain`,
    /// `resolvConf`).
    pub dns: DnsSettings,
    /// When unused images are removed.
    pub image_gc: ImageGcPolicy,
}

impl AgentConfig {
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            host_ip: None,
            log_root: PathBuf::from("/var/log/pods"),
            container_logs_dir: PathBuf::from("/var/log/containers"),
            log_rotation: RotationPolicy::default(),
            root_dir: PathBuf::from("/var/lib/wasmlet"),
            runtime_handler: String::new(),
            sources: Vec::new(),
            failed_sources: Vec::new(),
            relist_period: Duration::from_secs(1),
            resync: Duration::from_secs(60),
            timings: LoopTimings::default(),
            drain: Duration::from_secs(10),
            node_support: NodeSupport::default(),
            allocatable: BTreeMap::new(),
            dns: DnsSettings::default(),
            image_gc: ImageGcPolicy::default(),
        }
    }
}

/// What the outside (HTTP, tests) reads of a running agent.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub statuses: Arc<PodStatuses>,
    pub events: Arc<Recorder>,
    pub cache: Arc<PodCache>,
    pub pleg: Arc<Heartbeat>,
    pub sync_loop: Arc<Heartbeat>,
    pub sources: Arc<SourceReadiness>,
    pub mirror_pods: Arc<MirrorPods>,
}

impl AgentView {
    /// `/healthz`: the sync loop turns, the PLEG relists and every
    /// configured source has delivered.
    pub fn healthy(&self) -> Result<(), String> {
        self.sync_loop.check("sync loop", Duration::from_secs(30))?;
        self.pleg.check("pleg", RELIST_THRESHOLD)?;
        self.sources.check()
    }
}

pub struct Agent<R, A> {
    runtime: Arc<R>,
    admit: A,
    handlers: Arc<dyn ContainerHandlers>,
    objects: Option<Arc<dyn ApiObjects>>,
    config: AgentConfig,
    metrics: AgentMetrics,
    prober_metrics: ProberMetrics,
    view: AgentView,
}

impl<R, A> std::fmt::Debug for Agent<R, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + 'static, A: Admit> Agent<R, A> {
    /// `handlers` carry out probes and lifecycle hooks.
    pub fn new(
        runtime: Arc<R>,
        admit: A,
        handlers: Arc<dyn ContainerHandlers>,
        config: AgentConfig,
        metrics: AgentMetrics,
    ) -> Self {
        let mirror_pods: Arc<MirrorPods> = Arc::default();
        let view = AgentView {
            statuses: Arc::new(PodStatuses::new(mirror_pods.clone())),
            events: Arc::default(),
            cache: Arc::default(),
            pleg: Arc::default(),
            sync_loop: Arc::default(),
            sources: Arc::default(),
            mirror_pods,
        };
        for source in &config.sources {
            view.sources.set(source, SourceState::Waiting);
            let labels = SourceLabels {
                source: source.clone(),
            };
            metrics.source_ready.get_or_create(&labels).set(0);
        }
        for (source, reason) in &config.failed_sources {
            view.sources
                .set(source, SourceState::Failed(reason.clone()));
            let labels = SourceLabels {
                source: source.clone(),
            };
            metrics.source_ready.get_or_create(&labels).set(0);
            metrics.source_failures.get_or_create(&labels).inc();
        }
        Self {
            runtime,
            admit,
            handlers,
            objects: None,
            config,
            metrics,
            prober_metrics: ProberMetrics::default(),
            view,
        }
    }

    /// Where the ConfigMaps, Secrets and tokens that pods name are read
    /// (cluster mode).
    pub fn with_api_objects(mut self, objects: Arc<dyn ApiObjects>) -> Self {
        self.objects = Some(objects);
        self
    }

    /// The prober's metrics (`prober_probe_total`, ...), to register.
    pub fn prober_metrics(&self) -> &ProberMetrics {
        &self.prober_metrics
    }

    pub fn view(&self) -> AgentView {
        self.view.clone()
    }

    /// Runs until `shutdown` turns true; source snapshots arrive on `config`.
    pub async fn run(self, config: mpsc::Receiver<SourceMessage>, shutdown: CancellationToken) {
        let Self {
            runtime,
            admit,
            handlers,
            objects,
            config: cfg,
            metrics,
            prober_metrics,
            view,
        } = self;
        let (probe_tx, probes) = mpsc::channel::<ProbeUpdate>(1024);
        let probe_results = Arc::new(ProbeResults::default());
        let prober = Prober::new(Arc::new(ProberContext {
            handlers: handlers.clone(),
            results: probe_results.clone(),
            statuses: view.statuses.clone(),
            cache: view.cache.clone(),
            host_ip: cfg.host_ip,
            recorder: view.events.clone(),
            metrics: prober_metrics,
            updates: probe_tx,
        }));
        let (pleg_tx, pleg_rx) = mpsc::channel(1024);
        let (report_tx, report_rx) = mpsc::channel(1024);
        let rotation = logs::rotation::run(
            runtime.clone(),
            view.cache.clone(),
            cfg.log_rotation,
            shutdown.clone(),
        );
        let image_gc = crate::image_gc::run(
            runtime.clone(),
            cfg.image_gc,
            view.events.clone(),
            cfg.node_name.clone(),
            shutdown.clone(),
        );
        let pleg = Pleg::new(
            runtime.clone(),
            cfg.node_name.clone(),
            view.cache.clone(),
            pleg_tx,
            view.pleg.clone(),
            metrics.clone(),
        );
        let context = Arc::new(WorkerContext {
            syncer: PodSyncer {
                runtime,
                config: SyncConfig {
                    agent: cfg.node_name.clone(),
                    log_root: cfg.log_root.clone(),
                    container_logs_dir: cfg.container_logs_dir.clone(),
                    runtime_handler: cfg.runtime_handler.clone(),
                    host_ip: cfg.host_ip,
                    allocatable: cfg.allocatable.clone(),
                    dns: cfg.dns.clone(),
                    seccomp_root: cfg.root_dir.join("seccomp"),
                },
                volumes: Volumes::new(&cfg.root_dir),
                recorder: view.events.clone(),
                handlers,
                probes: probe_results,
                objects,
            },
            cache: view.cache.clone(),
            statuses: view.statuses.clone(),
            metrics: metrics.clone(),
            host_ip: cfg.host_ip,
            resync: cfg.resync,
        });
        let workers = PodWorkers::new(context, report_tx, shutdown.clone());
        let mut sync_loop = SyncLoop::new(
            ConfigMux::new(
                cfg.sources
                    .iter()
                    .chain(cfg.failed_sources.iter().map(|(name, _)| name))
                    .cloned(),
            ),
            workers,
            admit,
            view.cache.clone(),
            view.statuses.clone(),
            view.events.clone(),
            metrics,
            view.sync_loop.clone(),
            view.sources.clone(),
            prober,
        );
        sync_loop.timings = cfg.timings;
        sync_loop.host_ip = cfg.host_ip;
        sync_loop.mirrors = view.mirror_pods.clone();
        sync_loop.set_node_support(cfg.node_support.clone());
        let inputs = LoopInputs {
            config,
            pleg: pleg_rx,
            probes,
            reports: report_rx,
        };
        tokio::join!(
            pleg.run(cfg.relist_period, shutdown.clone()),
            rotation,
            image_gc,
            sync_loop.run(inputs, shutdown, cfg.drain),
        );
    }
}
