//! The sync loop (the kubelet's `syncLoopIteration`): one `select!` over
//! everything that can make a pod need work, in an explicit priority order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmlet_core::{ContainerState, PodUid, Runtime, SandboxState};

use crate::admission::{Admission, AdmissionQueue, Admit};
use crate::api_status::rejected_status;
use crate::cache::PodCache;
use crate::config_mux::{ConfigMux, Op, SourceReadiness, SourceState};
use crate::events::{EventType, Recorder};
use crate::health::Heartbeat;
use crate::kuberuntime::runtime_pod::{GRACE_PERIOD, POD_NAME, POD_NAMESPACE, RuntimePod};
use crate::metrics::{AgentMetrics, ReasonLabels, SourceLabels, StateLabels};
use crate::mirror_pods::{MirrorPods, MirrorSet};
use crate::pleg::{EventKind, PodLifecycleEvent};
use crate::pod_ext::{PodExt, PodUidExt};
use crate::pod_workers::{PodWorkers, UpdateKind, WorkerReport, kill_grace};
use crate::prober::{ProbeUpdate, Prober};
use crate::spec_support::NodeSupport;
use crate::status_manager::PodStatuses;

/// One source's complete desired set, as decoded by the agent's host.
#[derive(Debug, Clone, Default)]
pub struct SourceUpdate {
    pub source: String,
    pub pods: Vec<Pod>,
    /// Manifests the source could not read: (origin, why).
    pub problems: Vec<(String, String)>,
}

/// What a source's supervisor tells the sync loop.
#[derive(Debug, Clone)]
pub enum SourceMessage {
    Snapshot(SourceUpdate),
    /// An attempt failed (the source could not load, be configured, or give
    /// a snapshot): its last pods stay.
    Failed {
        source: String,
        reason: String,
    },
}

impl From<SourceUpdate> for SourceMessage {
    fn from(update: SourceUpdate) -> Self {
        Self::Snapshot(update)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LoopTimings {
    /// How often pods whose requeue time passed are dispatched.
    pub sync_tick: Duration,
    pub housekeeping: Duration,
}

impl Default for LoopTimings {
    fn default() -> Self {
        Self {
            sync_tick: Duration::from_secs(1),
            housekeeping: Duration::from_secs(2),
        }
    }
}

/// The channels the loop listens on.
#[derive(Debug)]
pub struct LoopInputs {
    pub config: mpsc::Receiver<SourceMessage>,
    pub pleg: mpsc::Receiver<PodLifecycleEvent>,
    pub probes: mpsc::Receiver<ProbeUpdate>,
    pub reports: mpsc::Receiver<WorkerReport>,
}

#[derive(Debug)]
pub struct SyncLoop<R, A> {
    pub mux: ConfigMux,
    pub workers: PodWorkers<R>,
    admission: AdmissionQueue<A>,
    pub cache: Arc<PodCache>,
    pub statuses: Arc<PodStatuses>,
    pub recorder: Arc<Recorder>,
    pub metrics: AgentMetrics,
    pub heartbeat: Arc<Heartbeat>,
    pub readiness: Arc<SourceReadiness>,
    pub prober: Prober,
    pub timings: LoopTimings,
    pub host_ip: Option<IpAddr>,
    /// Where the static and mirror pods are published, for the mirror pods' writer.
    pub mirrors: Arc<MirrorPods>,
    /// Admitted pods that are not terminated: what admission weighs against.
    active: HashMap<PodUid, Arc<Pod>>,
    /// Pods admission refused, with the status that says why.
    rejected: HashMap<PodUid, k8s_openapi::api::core::v1::PodStatus>,
    /// When each pod's worker wants its next sync.
    due: BTreeMap<PodUid, Instant>,
    /// Admitted pods waiting for an older pod of the same full name (an
    /// edited static pod's old UID) to stop, as the kubelet's pod workers
    /// hold a static pod back: two never run at once.
    waiting_to_start: BTreeMap<PodUid, Arc<Pod>>,
}

fn uid_of(pod: &Pod) -> PodUid {
    pod.pod_uid()
}

impl<R: Runtime + 'static, A: Admit> SyncLoop<R, A> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mux: ConfigMux,
        workers: PodWorkers<R>,
        admit: A,
        cache: Arc<PodCache>,
        statuses: Arc<PodStatuses>,
        recorder: Arc<Recorder>,
        metrics: AgentMetrics,
        heartbeat: Arc<Heartbeat>,
        readiness: Arc<SourceReadiness>,
        prober: Prober,
    ) -> Self {
        Self {
            readiness,
            prober,
            mux,
            workers,
            admission: AdmissionQueue::new(admit),
            cache,
            statuses,
            recorder,
            metrics,
            heartbeat,
            timings: LoopTimings::default(),
            host_ip: None,
            mirrors: Arc::default(),
            active: HashMap::new(),
            rejected: HashMap::new(),
            due: BTreeMap::new(),
            waiting_to_start: BTreeMap::new(),
        }
    }

    /// What admission may count on the node to enforce.
    pub fn set_node_support(&mut self, node: NodeSupport) {
        self.admission.node = Arc::new(node);
    }

    /// Runs until `shutdown`, then gives the workers `drain` to stop. Pods
    /// keep running: a restarted agent adopts them.
    pub async fn run(
        mut self,
        mut inputs: LoopInputs,
        shutdown: CancellationToken,
        drain: Duration,
    ) {
        let mut sync_tick = tokio::time::interval(self.timings.sync_tick);
        let mut housekeeping = tokio::time::interval(self.timings.housekeeping);
        for tick in [&mut sync_tick, &mut housekeeping] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            self.heartbeat.beat();
            // Priority: what the sources want, what the runtime did, pods that
            // are due, probe results, worker reports, then housekeeping.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(message) = inputs.config.recv() => match message {
                    SourceMessage::Snapshot(update) => self.handle_source(update),
                    SourceMessage::Failed { source, reason } => self.source_failed(&source, reason),
                },
                Some(event) = inputs.pleg.recv() => self.handle_pleg(event),
                (pod, verdict) = self.admission.verdict() => self.admitted(pod, verdict),
                _ = sync_tick.tick() => self.dispatch_due(),
                Some(probe) = inputs.probes.recv() => self.sync_pod(&probe.uid),
                Some(report) = inputs.reports.recv() => self.handle_report(report),
                _ = housekeeping.tick() => self.housekeeping(),
            }
        }
        self.admission.abort();
        self.prober.stop().await;
        self.workers.drain(drain).await;
    }

    /// A failure before a source's first snapshot leaves it unready: nothing
    /// is cleaned up, since its pods may be running. Later ones keep its pods.
    fn source_failed(&mut self, source: &str, reason: String) {
        self.metrics
            .source_failures
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .inc();
        if self.mux.has_seen(source) {
            tracing::warn!(%source, "pod source failed; keeping its last pods: {reason}");
        } else {
            tracing::error!(%source, "pod source failed before its first snapshot; no pod is removed until it delivers one: {reason}");
            self.readiness.set(source, SourceState::Failed(reason));
        }
    }

    fn handle_source(&mut self, update: SourceUpdate) {
        if !self.mux.has_seen(&update.source) {
            self.readiness.set(&update.source, SourceState::Ready);
            self.metrics
                .source_ready
                .get_or_create(&SourceLabels {
                    source: update.source.clone(),
                })
                .set(1);
        }
        for (origin, message) in &update.problems {
            tracing::warn!(source = %update.source, %origin, "could not read pod manifest: {message}");
        }
        let merge = self.mux.apply(&update.source, update.pods);
        for dropped in merge.dropped {
            tracing::warn!(source = %dropped.source, pod = %dropped.full_name, "pod dropped: {}", dropped.reason);
            if let Some(pod) = self
                .mux
                .pods()
                .find(|p| p.full_name() == dropped.full_name)
                .cloned()
            {
                self.recorder.record(
                    &pod,
                    None,
                    EventType::Warning,
                    "DuplicatePod",
                    format!(
                        "source {} also gives this pod: {}",
                        dropped.source, dropped.reason
                    ),
                );
            }
        }
        for update in merge.updates {
            match update.op {
                Op::Add => self.add_pods(update.pods),
                Op::Update => {
                    for pod in update.pods {
                        let uid = uid_of(&pod);
                        if let Some(waiting) = self.waiting_to_start.get_mut(&uid) {
                            *waiting = pod;
                            continue;
                        }
                        // One waiting for admission is judged as it then is.
                        if !self.rejected.contains_key(&uid)
                            && !self.admission.contains(uid.as_str())
                        {
                            self.active.insert(uid_of(&pod), pod.clone());
                            self.workers.update(pod, UpdateKind::Update);
                        }
                    }
                }
                Op::Remove | Op::Delete => {
                    let remove = update.op == Op::Remove;
                    for pod in update.pods {
                        let uid = uid_of(&pod);
                        self.admission.remove(uid.as_str());
                        if self.waiting_to_start.remove(&uid).is_some() {
                            continue; // it never started
                        }
                        if self.rejected.contains_key(&uid) {
                            if remove {
                                self.rejected.remove(&uid);
                                self.statuses.remove(&uid);
                            }
                            continue;
                        }
                        let grace = kill_grace(&pod);
                        self.prober.remove_pod(&uid);
                        self.workers.update(pod, UpdateKind::Kill { grace, remove });
                    }
                }
                // Only the status changed on the server: a pod whose
                // readiness gates others set is looked at again with it.
                Op::Reconcile => {
                    for pod in update.pods {
                        let gated = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.readiness_gates.as_ref())
                            .is_some_and(|g| !g.is_empty());
                        if gated && self.workers.has(&uid_of(&pod)) {
                            self.workers.update(pod, UpdateKind::Update);
                        }
                    }
                }
            }
        }
        self.publish_mirrors();
    }

    /// The static pods (and those still stopping) beside the mirror pods.
    fn publish_mirrors(&self) {
        let static_pods: BTreeMap<String, Arc<Pod>> = self
            .mux
            .pods()
            .filter(|p| p.is_static())
            .map(|p| (p.full_name(), p.clone()))
            .collect();
        let terminating = self
            .workers
            .pods()
            .filter(|p| p.is_static())
            .map(|p| p.full_name())
            .filter(|name| !static_pods.contains_key(name))
            .collect();
        self.mirrors.publish(MirrorSet {
            static_pods,
            terminating,
            mirrors: self.mux.mirror_pods(),
            sources_ready: self.mux.seen_all_sources(),
        });
    }

    /// New pods, oldest first, queued for admission.
    fn add_pods(&mut self, mut pods: Vec<Arc<Pod>>) {
        pods.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        for pod in pods {
            let uid = uid_of(&pod);
            if let Some(working) = self.workers.pod(&uid) {
                // Given back while its worker stops: the worker's report
                // brings it back through admission. Never under another
                // name: a UID is one pod's.
                if working.full_name() == pod.full_name() {
                    self.workers.update(pod, UpdateKind::Update);
                }
                continue;
            }
            self.admission.push(pod);
        }
        self.admit_next();
    }

    /// Starts admitting the next pod, against those admitted so far that
    /// are still active: a finished pod (Succeeded or Failed) no longer
    /// holds resources or ports, unless it is still being stopped (the
    /// kubelet's `filterOutInactivePods`).
    fn admit_next(&mut self) {
        let (active, statuses, workers) = (&self.active, &self.statuses, &self.workers);
        self.admission.start_next(|| {
            active
                .iter()
                .filter(|(uid, _)| !statuses.is_finished(uid) || workers.is_terminating(uid))
                .map(|(_, pod)| pod.clone())
                .collect()
        });
    }

    /// A verdict: the pod starts, or is rejected with a status that says why.
    /// One removed (or given under another name) while judged is forgotten.
    fn admitted(&mut self, judged: Arc<Pod>, verdict: Admission) {
        let uid = uid_of(&judged);
        let wanted = self
            .mux
            .pods()
            .find(|p| {
                uid_of(p) == uid
                    && p.full_name() == judged.full_name()
                    && p.metadata.deletion_timestamp.is_none()
            })
            .cloned();
        if let Some(pod) = wanted {
            self.apply_verdict(pod, verdict);
        }
        self.admit_next();
    }

    fn apply_verdict(&mut self, pod: Arc<Pod>, verdict: Admission) {
        let uid = uid_of(&pod);
        if !verdict.admit {
            let message = format!("Pod was rejected: {}", verdict.message);
            self.recorder
                .record(&pod, None, EventType::Warning, &verdict.reason, &message);
            self.metrics
                .admission_rejections
                .get_or_create(&ReasonLabels {
                    reason: verdict.reason.clone(),
                })
                .inc();
            let status = rejected_status(&verdict.reason, &verdict.message, self.host_ip);
            self.statuses.set(&pod, status.clone());
            self.rejected.insert(uid, status);
            return;
        }
        self.recorder.record(
            &pod,
            None,
            EventType::Normal,
            "Scheduled",
            format!(
                "Successfully assigned {}/{} to {}",
                pod.namespace_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                pod.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or_default()
            ),
        );
        if self.namesake_stopping(&pod) {
            self.waiting_to_start.insert(uid, pod);
            return;
        }
        self.start(pod);
    }

    fn start(&mut self, pod: Arc<Pod>) {
        self.active.insert(uid_of(&pod), pod.clone());
        self.prober.add_pod(&pod);
        self.workers.update(pod, UpdateKind::Create);
    }

    /// Whether another pod of `pod`'s full name is still being stopped.
    fn namesake_stopping(&self, pod: &Pod) -> bool {
        let (uid, name) = (uid_of(pod), pod.full_name());
        self.active
            .iter()
            .any(|(u, p)| *u != uid && p.full_name() == name && self.workers.is_terminating(u))
    }

    /// Starts the waiting pods whose namesake has stopped.
    fn start_unblocked(&mut self) {
        let free: Vec<PodUid> = self
            .waiting_to_start
            .iter()
            .filter(|(_, pod)| !self.namesake_stopping(pod))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in free {
            if let Some(pod) = self.waiting_to_start.remove(&uid) {
                self.start(pod);
            }
        }
    }

    fn handle_pleg(&mut self, event: PodLifecycleEvent) {
        // A removed container needs nothing: the sync that removed it knows.
        if event.kind != EventKind::ContainerRemoved {
            self.sync_pod(&event.uid);
        }
    }

    fn sync_pod(&mut self, uid: &PodUid) {
        self.due.remove(uid);
        if let Some(pod) = self.active.get(uid).cloned() {
            self.workers.update(pod, UpdateKind::Sync);
        }
    }

    fn dispatch_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PodUid> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            self.sync_pod(&uid);
        }
    }

    fn handle_report(&mut self, report: WorkerReport) {
        match report {
            WorkerReport::Synced { uid, requeue } => {
                if !self.workers.is_terminating(&uid) {
                    self.due.insert(uid, Instant::now() + requeue);
                }
            }
            WorkerReport::Terminated { uid } => {
                self.prober.remove_pod(&uid);
                self.workers.forget(&uid);
                self.active.remove(&uid);
                self.due.remove(&uid);
                if let Some(status) = self.rejected.get(&uid)
                    && let Some(pod) = self.mux.pods().find(|p| uid_of(p) == uid)
                {
                    self.statuses.set(pod, status.clone());
                }
                // Removed and given back (the same manifest, so the same UID)
                // while it was stopping: a new pod, admitted as any other.
                let wanted = self
                    .mux
                    .pods()
                    .find(|p| uid_of(p) == uid && p.metadata.deletion_timestamp.is_none())
                    .cloned();
                if let Some(pod) = wanted
                    && !self.rejected.contains_key(&uid)
                {
                    self.add_pods(vec![pod]);
                }
                self.start_unblocked();
                self.publish_mirrors();
            }
        }
        self.reap_workers();
    }

    /// A worker that panicked is replaced, and its pod synced again.
    fn reap_workers(&mut self) {
        for uid in self.workers.reap() {
            if let Some(pod) = self.active.get(&uid).cloned() {
                self.workers.update(pod, UpdateKind::Create);
            }
        }
    }

    /// Kills what runs but no source wants (only once every source has
    /// spoken: until then it may belong to one that has not), and updates
    /// the gauges.
    fn housekeeping(&mut self) {
        let runtime_pods = self.cache.all();
        if self.mux.seen_all_sources() {
            let desired: HashSet<PodUid> = self.mux.pods().map(|p| uid_of(p)).collect();
            let orphans: Vec<&Arc<RuntimePod>> = runtime_pods
                .iter()
                .filter(|p| !p.is_empty() && !desired.contains(&p.uid) && !self.workers.has(&p.uid))
                .collect();
            for orphan in orphans {
                tracing::info!(pod = %orphan.uid, name = %orphan.name, "removing a pod no source wants");
                let pod = orphan_pod(orphan);
                let grace = kill_grace(&pod);
                self.workers.update(
                    Arc::new(pod),
                    UpdateKind::Kill {
                        grace,
                        remove: true,
                    },
                );
            }
        }
        // A rejected pod that runs (found running after a restart, under a
        // policy that now refuses it) is stopped, as the kubelet stops a pod
        // it does not admit; its rejected status stays.
        let running_rejected: Vec<Arc<Pod>> = runtime_pods
            .iter()
            .filter(|p| self.rejected.contains_key(&p.uid) && !self.workers.has(&p.uid))
            .filter(|p| {
                p.sandboxes.iter().any(|s| s.state == SandboxState::Ready)
                    || p.containers
                        .iter()
                        .any(|c| c.state == ContainerState::Running)
            })
            .filter_map(|p| self.mux.pods().find(|d| uid_of(d) == p.uid).cloned())
            .collect();
        for pod in running_rejected {
            tracing::info!(pod = %pod.full_name(), "stopping a running pod that admission rejected");
            let grace = kill_grace(&pod);
            self.workers.update(
                pod,
                UpdateKind::Kill {
                    grace,
                    remove: false,
                },
            );
        }
        let running_pods = runtime_pods
            .iter()
            .filter(|p| p.sandboxes.iter().any(|s| s.state == SandboxState::Ready))
            .count();
        self.metrics.running_pods.set(running_pods as i64);
        let mut by_state: BTreeMap<&'static str, i64> = [
            ("running", 0),
            ("exited", 0),
            ("created", 0),
            ("unknown", 0),
        ]
        .into();
        for c in runtime_pods.iter().flat_map(|p| &p.containers) {
            let state = match c.state {
                ContainerState::Running => "running",
                ContainerState::Exited => "exited",
                ContainerState::Created => "created",
                ContainerState::Unknown => "unknown",
            };
            *by_state.entry(state).or_default() += 1;
        }
        for (state, n) in by_state {
            self.metrics
                .running_containers
                .get_or_create(&StateLabels {
                    container_state: state.into(),
                })
                .set(n);
        }
        self.reap_workers();
    }
}

/// A stand-in pod for runtime objects no source wants, from their labels.
fn orphan_pod(runtime: &RuntimePod) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.uid = Some(runtime.uid.to_string());
    let labels = runtime.sandboxes.first().map(|s| &s.labels);
    pod.metadata.name = labels
        .and_then(|l| l.get(POD_NAME).cloned())
        .or_else(|| Some(runtime.name.clone()));
    pod.metadata.namespace = labels
        .and_then(|l| l.get(POD_NAMESPACE).cloned())
        .or_else(|| Some(runtime.namespace.clone()));
    let grace = runtime
        .sandboxes
        .first()
        .and_then(|s| s.annotations.get(GRACE_PERIOD))
        .and_then(|g| g.parse().ok());
    pod.metadata.deletion_grace_period_seconds = grace;
    pod
}
