//! The prober (the kubelet's prober manager): one worker per container and
//! probe type decides *when* to probe and what consecutive results mean; the
//! [`ContainerHandlers`] port (in the daemon: probe plugins) decides *how*.
//! Changed results reach the sync loop through its probe channel.

pub mod results;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Container, Pod};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wasmlet_core::{ContainerId, ContainerState as RuntimeState, PodUid};

use crate::cache::PodCache;
use crate::events::{EventType, Recorder};
use crate::handlers::{Checked, ContainerHandlers, HandlerTarget, Outcome};
use crate::kuberuntime::runtime_pod::pod_ip;
use crate::pod_ext::{ContainerExt, PodUidExt};
use crate::status_manager::PodStatuses;
pub use results::{ProbeResults, ProbeState, ProbeType, ProbeUpdate};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProbeLabels {
    pub probe_type: String,
    pub result: String,
    pub container: String,
    pub pod: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProbeTypeLabels {
    pub probe_type: String,
}

/// `prober_probe_total` and `prober_probe_duration_seconds`, as the kubelet's.
#[derive(Debug, Clone)]
pub struct ProberMetrics {
    pub total: Family<ProbeLabels, Counter>,
    pub duration: Family<ProbeTypeLabels, Histogram, fn() -> Histogram>,
}

fn probe_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

impl Default for ProberMetrics {
    fn default() -> Self {
        Self {
            total: Family::default(),
            duration: Family::new_with_constructor(probe_seconds),
        }
    }
}

impl ProberMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "prober_probe",
            "Cumulative number of liveness, readiness or startup probes, by result",
            self.total.clone(),
        );
        registry.register(
            "prober_probe_duration_seconds",
            "Duration in seconds of a probe response",
            self.duration.clone(),
        );
    }
}

/// What every probe worker shares.
pub struct ProberContext {
    pub handlers: Arc<dyn ContainerHandlers>,
    pub results: Arc<ProbeResults>,
    pub statuses: Arc<PodStatuses>,
    pub cache: Arc<PodCache>,
    /// The node's address: a host-network pod's IP.
    pub host_ip: Option<IpAddr>,
    pub recorder: Arc<Recorder>,
    pub metrics: ProberMetrics,
    pub updates: mpsc::Sender<ProbeUpdate>,
}

impl std::fmt::Debug for ProberContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProberContext").finish_non_exhaustive()
    }
}

/// The probe workers of every pod.
#[derive(Debug)]
pub struct Prober {
    context: Arc<ProberContext>,
    workers: HashMap<PodUid, CancellationToken>,
    tasks: JoinSet<()>,
}

impl Prober {
    pub fn new(context: Arc<ProberContext>) -> Self {
        Self {
            context,
            workers: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    pub fn results(&self) -> Arc<ProbeResults> {
        self.context.results.clone()
    }

    /// Starts a worker for every probe of `pod`'s containers (once).
    pub fn add_pod(&mut self, pod: &Arc<Pod>) {
        let uid = pod.pod_uid();
        if self.workers.contains_key(&uid) {
            return;
        }
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let stop = CancellationToken::new();
        let mut any = false;
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.is_sidecar());
        for container in sidecars.chain(&spec.containers) {
            for kind in [
                ProbeType::Startup,
                ProbeType::Liveness,
                ProbeType::Readiness,
            ] {
                if kind.of(container).is_some() {
                    any = true;
                    self.tasks.spawn(probe_worker(
                        self.context.clone(),
                        pod.clone(),
                        container.clone(),
                        kind,
                        stop.clone(),
                    ));
                }
            }
        }
        if any {
            self.workers.insert(uid, stop);
        }
    }

    /// Stops the workers of a pod that is terminating or gone.
    pub fn remove_pod(&mut self, uid: &PodUid) {
        if let Some(stop) = self.workers.remove(uid) {
            stop.cancel();
        }
        while self.tasks.try_join_next().is_some() {}
    }

    pub async fn stop(mut self) {
        for (_, stop) in self.workers.drain() {
            stop.cancel();
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

/// The kubelet's probe worker: every `periodSeconds`, probe the container's
/// current instance and flip the result only after `successThreshold` /
/// `failureThreshold` identical results in a row.
async fn probe_worker(
    ctx: Arc<ProberContext>,
    pod: Arc<Pod>,
    container: Container,
    kind: ProbeType,
    stopped: CancellationToken,
) {
    let Some(probe) = kind.of(&container).cloned() else {
        return;
    };
    let uid = pod.pod_uid();
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let initial_delay = seconds(probe.initial_delay_seconds, 0);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    let has_startup = container.startup_probe.is_some();
    // Until a container's first result: readiness fails, liveness passes,
    // startup is unknown.
    let initial = match kind {
        ProbeType::Readiness => Some(false),
        ProbeType::Liveness => Some(true),
        ProbeType::Startup => None,
    };

    let mut current: Option<ContainerId> = None;
    let mut on_hold = false;
    let mut last: Option<Outcome> = None;
    let mut run = 0;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped.cancelled() => break,
        }
        if ctx.statuses.is_finished(&uid) {
            break;
        }
        // What the runtime has, typed, from the pod cache (the PLEG's and
        // the pod workers' latest reading).
        let Some(runtime) = ctx.cache.get(&uid) else {
            continue;
        };
        let Some(latest) = runtime.latest(&container.name).0 else {
            continue;
        };
        let id = latest.id.clone();
        if current.as_ref() != Some(&id) {
            // A new instance of the container: start over.
            if let Some(old) = current.replace(id.clone()) {
                ctx.results.forget(&old);
            }
            ctx.results.set(&id, kind, initial);
            on_hold = false;
            last = None;
            run = 0;
        }
        if on_hold {
            continue;
        }
        if latest.state != RuntimeState::Running {
            continue; // only running containers are probed
        }
        if kind == ProbeType::Startup && ctx.results.get(&id, kind) == Some(true) {
            continue; // a startup probe is done once it succeeded
        }
        if kind != ProbeType::Startup
            && has_startup
            && ctx.results.get(&id, ProbeType::Startup) != Some(true)
        {
            continue; // liveness and readiness wait for startup
        }
        let running_for = latest
            .started_at
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .unwrap_or_default();
        if running_for < initial_delay {
            continue;
        }

        let pod_ip = pod_ip(&pod, &runtime, ctx.host_ip);
        let mut target = HandlerTarget::new(&pod, &container, id.clone(), pod_ip);
        let begun = Instant::now();
        let checked = match target.aim_probe(&probe).await {
            Ok(aimed) => ctx.handlers.probe(&target, &aimed, timeout).await,
            Err(message) => Checked {
                outcome: Outcome::Failure,
                message,
            },
        };
        let result_name = match checked.outcome {
            Outcome::Success => "successful",
            Outcome::Failure => "failed",
            Outcome::Unknown => "unknown",
        };
        ctx.metrics
            .duration
            .get_or_create(&ProbeTypeLabels {
                probe_type: kind.name().into(),
            })
            .observe(begun.elapsed().as_secs_f64());
        ctx.metrics
            .total
            .get_or_create(&ProbeLabels {
                probe_type: kind.name().into(),
                result: result_name.into(),
                container: container.name.clone(),
                pod: target.pod_name.clone(),
                namespace: target.pod_namespace.clone(),
            })
            .inc();
        match checked.outcome {
            Outcome::Unknown => {
                tracing::warn!(pod = %target.pod_name, container = %container.name, probe = kind.name(), "probe could not run: {}", checked.message);
                continue;
            }
            Outcome::Failure => ctx.recorder.record(
                &pod,
                Some(&container.name),
                EventType::Warning,
                "Unhealthy",
                format!("{} probe failed: {}", kind.name(), checked.message),
            ),
            Outcome::Success if !checked.message.is_empty() => ctx.recorder.record(
                &pod,
                Some(&container.name),
                EventType::Warning,
                "ProbeWarning",
                format!("{} probe warning: {}", kind.name(), checked.message),
            ),
            Outcome::Success => {}
        }
        if last == Some(checked.outcome) {
            run += 1;
        } else {
            last = Some(checked.outcome);
            run = 1;
        }
        let ok = checked.outcome == Outcome::Success;
        let threshold = if ok {
            success_threshold
        } else {
            failure_threshold
        };
        if run < threshold {
            continue;
        }
        if ctx.results.set(&id, kind, Some(ok)) {
            let update = ProbeUpdate {
                uid: uid.clone(),
                container: container.name.clone(),
            };
            if ctx.updates.send(update).await.is_err() {
                break;
            }
        }
        if !ok && kind != ProbeType::Readiness {
            // The container will be killed; wait for its next instance.
            on_hold = true;
            run = 0;
        }
    }
}
