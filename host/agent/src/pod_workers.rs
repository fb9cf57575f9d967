//! Pod workers: one task per pod UID, fed through a `watch` channel so the
//! latest update wins. A worker goes syncing → terminating → terminated; once
//! terminating it never syncs again, and its grace period can only shrink.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmlet_core::{PodUid, Runtime};

use crate::api_status::{StatusInput, api_status, time};
use crate::cache::PodCache;
use crate::kuberuntime::runtime_pod::{RuntimePod, inspect};
use crate::kuberuntime::{PodState, PodSyncer, pod_grace};
use crate::metrics::{AgentMetrics, OperationLabels};
use crate::pod_ext::PodUidExt;
use crate::status_manager::PodStatuses;

/// How the sync loop asks a worker for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Create,
    Update,
    Sync,
    /// Stop the pod within `grace`; with `remove`, also delete its runtime
    /// objects and status (it is gone from every source).
    Kill {
        grace: Duration,
        remove: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Termination {
    grace: Duration,
    remove: bool,
}

#[derive(Debug, Clone)]
struct Work {
    pod: Arc<Pod>,
    operation: &'static str,
    terminate: Option<Termination>,
}

/// What a worker tells the sync loop when it is done with an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerReport {
    /// Synced; wants another sync after `requeue`.
    Synced { uid: PodUid, requeue: Duration },
    /// Stopped (and removed, if asked); the worker has exited.
    Terminated { uid: PodUid },
}

/// What every worker shares.
#[derive(Debug)]
pub struct WorkerContext<R> {
    pub syncer: PodSyncer<R>,
    pub cache: Arc<PodCache>,
    pub statuses: Arc<PodStatuses>,
    pub metrics: AgentMetrics,
    pub host_ip: Option<IpAddr>,
    /// Periodic resync of a healthy pod (the kubelet's syncFrequency).
    pub resync: Duration,
}

#[derive(Debug)]
pub struct PodWorkers<R> {
    context: Arc<WorkerContext<R>>,
    workers: HashMap<PodUid, watch::Sender<Work>>,
    tasks: JoinSet<()>,
    /// Which pod each task works for, to forget a worker that panicked.
    task_pods: HashMap<tokio::task::Id, PodUid>,
    reports: mpsc::Sender<WorkerReport>,
    shutdown: CancellationToken,
}

impl<R: Runtime + 'static> PodWorkers<R> {
    pub fn new(
        context: Arc<WorkerContext<R>>,
        reports: mpsc::Sender<WorkerReport>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            context,
            workers: HashMap::new(),
            tasks: JoinSet::new(),
            task_pods: HashMap::new(),
            reports,
            shutdown,
        }
    }

    pub fn has(&self, uid: &PodUid) -> bool {
        self.workers.contains_key(uid)
    }

    /// The pod the worker of `uid` is working on.
    pub fn pod(&self, uid: &PodUid) -> Option<Arc<Pod>> {
        self.workers.get(uid).map(|w| w.borrow().pod.clone())
    }

    /// The pods that have a worker, running or stopping.
    pub fn pods(&self) -> impl Iterator<Item = Arc<Pod>> + '_ {
        self.workers.values().map(|w| w.borrow().pod.clone())
    }

    pub fn is_terminating(&self, uid: &PodUid) -> bool {
        self.workers
            .get(uid)
            .is_some_and(|w| w.borrow().terminate.is_some())
    }

    /// Hands `pod` to its worker, starting one if needed.
    pub fn update(&mut self, pod: Arc<Pod>, kind: UpdateKind) {
        let uid = pod.pod_uid();
        let operation = match kind {
            UpdateKind::Create => "create",
            UpdateKind::Update => "update",
            UpdateKind::Sync => "sync",
            UpdateKind::Kill { .. } => "kill",
        };
        let terminate = match kind {
            UpdateKind::Kill { grace, remove } => Some(Termination { grace, remove }),
            _ => None,
        };
        if let Some(worker) = self.workers.get(&uid) {
            worker.send_modify(|work| {
                match (&mut work.terminate, terminate) {
                    // Terminating is final; a new kill may only shorten the grace.
                    (Some(current), Some(new)) => {
                        current.grace = current.grace.min(new.grace);
                        current.remove |= new.remove;
                    }
                    (Some(_), None) => return,
                    (None, new) => work.terminate = new,
                }
                if kind != UpdateKind::Sync {
                    work.pod = pod;
                }
                work.operation = operation;
            });
            return;
        }
        if kind == UpdateKind::Sync {
            return; // nothing to sync: the pod has no worker (any more)
        }
        let (tx, rx) = watch::channel(Work {
            pod,
            operation,
            terminate,
        });
        self.workers.insert(uid.clone(), tx);
        let task = self.tasks.spawn(worker(
            self.context.clone(),
            uid.clone(),
            rx,
            self.reports.clone(),
            self.shutdown.clone(),
        ));
        self.task_pods.insert(task.id(), uid);
    }

    /// The worker reported Terminated: forget it.
    pub fn forget(&mut self, uid: &PodUid) {
        self.workers.remove(uid);
    }

    /// Reaps finished worker tasks. A worker that panicked is logged and
    /// forgotten; its pod's UID is returned, for the sync loop to start a
    /// new worker (the runtime keeps what the old one did).
    pub fn reap(&mut self) -> Vec<PodUid> {
        let mut panicked = Vec::new();
        while let Some(result) = self.tasks.try_join_next_with_id() {
            let (id, error) = match result {
                Ok((id, ())) => (id, None),
                Err(error) => (error.id(), Some(error)),
            };
            let Some(uid) = self.task_pods.remove(&id) else {
                continue;
            };
            if let Some(error) = error
                && error.is_panic()
            {
                tracing::error!(pod = %uid, %error, "pod worker panicked; starting a new one");
                self.workers.remove(&uid);
                panicked.push(uid);
            }
        }
        panicked
    }

    /// Waits up to `grace` for the workers to notice shutdown; the rest are
    /// aborted. Pods keep running either way.
    pub async fn drain(mut self, grace: Duration) {
        self.workers.clear();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("pod workers did not stop within {grace:?}; aborting them");
            self.tasks.abort_all();
        }
    }
}

/// Requeue delay after a failed sync: the kubelet's 10 s, jittered by up to half.
fn error_backoff() -> Duration {
    Duration::from_secs(10).mul_f64(1.0 + fastrand::f64() * 0.5)
}

async fn worker<R: Runtime + 'static>(
    ctx: Arc<WorkerContext<R>>,
    uid: PodUid,
    mut work: watch::Receiver<Work>,
    reports: mpsc::Sender<WorkerReport>,
    shutdown: CancellationToken,
) {
    let mut state = PodState::default();
    let first_seen = Instant::now();
    let start_time = time(std::time::SystemTime::now());
    let mut running_reported = false;
    // When the cache last held what this worker's own changes left behind.
    let mut last_sync: Option<Instant> = None;
    loop {
        let Work {
            pod,
            operation,
            terminate,
        } = work.borrow_and_update().clone();
        let started = Instant::now();
        let report = match terminate {
            None => {
                let runtime = match last_sync {
                    Some(since) => ctx.cache.newer_than(&uid, since).await,
                    // The first sync reads the runtime itself rather than wait for a relist.
                    None => match fresh(&ctx, &uid).await {
                        Some(pod) => pod,
                        None => Arc::new(RuntimePod {
                            uid: uid.clone(),
                            ..Default::default()
                        }),
                    },
                };
                let outcome = ctx.syncer.sync(&pod, &runtime, &mut state).await;
                if let Some(error) = &outcome.error {
                    tracing::warn!(%error, pod = %uid, "sync failed");
                }
                // Status follows the agent's own calls, not the next relist.
                let read_at = Instant::now();
                let after = fresh(&ctx, &uid).await.unwrap_or(runtime);
                last_sync = Some(read_at);
                let status = pod_status(&ctx, &pod, &after, &state, outcome.terminal, &start_time);
                if !running_reported && status.phase.as_deref() == Some("Running") {
                    running_reported = true;
                    ctx.metrics
                        .pod_start_duration
                        .observe(first_seen.elapsed().as_secs_f64());
                }
                ctx.statuses.set(&pod, status);
                let requeue = match (&outcome.error, outcome.wake) {
                    (Some(_), _) => error_backoff(),
                    (None, wake) => wake.map_or(ctx.resync, |w| w.min(ctx.resync)),
                };
                WorkerReport::Synced {
                    uid: uid.clone(),
                    requeue,
                }
            }
            Some(termination) => {
                if terminate_pod(
                    &ctx,
                    &pod,
                    &uid,
                    termination,
                    &shutdown,
                    &start_time,
                    &state,
                )
                .await
                {
                    WorkerReport::Terminated { uid: uid.clone() }
                } else {
                    return; // shutdown came first
                }
            }
        };
        ctx.metrics
            .pod_worker_duration
            .get_or_create(&OperationLabels {
                operation: operation.into(),
            })
            .observe(started.elapsed().as_secs_f64());
        let terminated = matches!(report, WorkerReport::Terminated { .. });
        if reports.send(report).await.is_err() || terminated {
            return;
        }
        tokio::select! {
            changed = work.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}

/// Reads the pod from the runtime and records it in the cache.
async fn fresh<R: Runtime + 'static>(
    ctx: &WorkerContext<R>,
    uid: &PodUid,
) -> Option<Arc<RuntimePod>> {
    let at = Instant::now();
    match inspect(&*ctx.syncer.runtime, &ctx.syncer.config.agent, uid).await {
        Ok(pod) => {
            ctx.cache.set(pod.clone(), at);
            Some(Arc::new(pod))
        }
        Err(error) => {
            tracing::warn!(%error, pod = %uid, "reading pod from the runtime");
            None
        }
    }
}

fn pod_status<R: Runtime + 'static>(
    ctx: &WorkerContext<R>,
    pod: &Pod,
    runtime: &RuntimePod,
    state: &PodState,
    terminal: bool,
    start_time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> k8s_openapi::api::core::v1::PodStatus {
    let mut status = api_status(StatusInput {
        pod,
        runtime,
        waiting: &state.waiting,
        terminal: terminal || state.init_failed,
        host_ip: ctx.host_ip,
        start_time: Some(start_time),
        probes: Some(&ctx.syncer.probes),
    });
    if let Some((reason, message)) = state.failure {
        status.phase = Some("Failed".into());
        status.reason = Some(reason.into());
        status.message = Some(message.into());
    }
    status
}

/// Stops the pod (retrying until it works); true once done.
async fn terminate_pod<R: Runtime + 'static>(
    ctx: &WorkerContext<R>,
    pod: &Arc<Pod>,
    uid: &PodUid,
    termination: Termination,
    shutdown: &CancellationToken,
    start_time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    state: &PodState,
) -> bool {
    let mut retry = Duration::from_secs(1);
    loop {
        let result = async {
            let runtime = inspect(&*ctx.syncer.runtime, &ctx.syncer.config.agent, uid).await?;
            ctx.syncer.kill(pod, &runtime, termination.grace).await?;
            let stopped = inspect(&*ctx.syncer.runtime, &ctx.syncer.config.agent, uid).await?;
            if termination.remove {
                ctx.syncer.remove(&stopped).await?;
                ctx.cache.set(
                    RuntimePod {
                        uid: uid.clone(),
                        ..Default::default()
                    },
                    Instant::now(),
                );
            } else {
                ctx.cache.set(stopped.clone(), Instant::now());
            }
            Ok::<_, wasmlet_core::RuntimeError>(stopped)
        }
        .await;
        match result {
            Ok(stopped) => {
                if termination.remove {
                    ctx.statuses.remove(uid);
                } else {
                    // Stopped by the agent, not finished: whatever ran is
                    // reported as it ended, and a pod that would have gone on is Failed.
                    let mut status = pod_status(ctx, pod, &stopped, state, false, start_time);
                    if status.phase.as_deref() == Some("Running")
                        || status.phase.as_deref() == Some("Pending")
                    {
                        status.phase = Some("Failed".into());
                    }
                    ctx.statuses.set(pod, status);
                }
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, pod = %uid, "terminating pod failed; retrying in {retry:?}");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = shutdown.cancelled() => return false,
                }
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The grace to stop `pod` with when it is removed or deleted.
pub fn kill_grace(pod: &Pod) -> Duration {
    pod_grace(pod)
}
