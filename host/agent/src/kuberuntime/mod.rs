//! The kubelet's `kuberuntime`: what a pod needs done ([`actions`], the
//! planner) and carrying it out against the runtime, one concern per file —
//! [`start`] (sandbox and containers, postStart), [`image`] (pull policy and
//! pull back-off), [`security_context`] (what a container may do),
//! [`termination`] (preStop, grace, sidecars last), [`termination_message`]
//! (what an exited container leaves to say) and [`gc`].
//! [`runtime_pod`] is how the agent's runtime objects are labelled and read.

pub mod actions;
pub mod backoff;
pub mod gc;
pub mod image;
pub mod runtime_pod;
pub mod security_context;
pub mod start;
pub mod termination;
pub mod termination_message;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use wasmlet_core::{Runtime, RuntimeError};

use self::actions::PodActions;
use self::backoff::Backoff;
use self::runtime_pod::RuntimePod;
use crate::active_deadline;
use crate::api_objects::{ApiObjects, Needs};
use crate::api_status::Waiting;
use crate::events::{EventType, Recorder};
use crate::handlers::ContainerHandlers;
use crate::network::DnsSettings;
use crate::pod_ext::PodExt;
use crate::prober::results::ProbeResults;
use crate::volumes::{self, Volumes};

/// The kubelet's floor for a grace period.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// What the syncer needs to know about the node.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Labels every runtime object, so this agent finds its own.
    pub agent: String,
    /// Pod log directories (`podLogsDir`).
    pub log_root: PathBuf,
    /// Where links to the containers' logs go (`/var/log/containers`).
    pub container_logs_dir: PathBuf,
    pub runtime_handler: String,
    /// The node's address: a host-network pod's IP, the downward API's hostIP.
    pub host_ip: Option<IpAddr>,
    /// What the downward API reports for a limit a container does not set.
    pub allocatable: BTreeMap<String, Quantity>,
    /// The pods' resolvers and domain.
    pub dns: DnsSettings,
    /// Where Localhost seccomp profiles are (`<rootDir>/seccomp`).
    pub seccomp_root: PathBuf,
}

/// What a pod worker remembers between syncs.
#[derive(Debug)]
pub struct PodState {
    /// container name → why it waits.
    pub waiting: BTreeMap<String, Waiting>,
    crash: Backoff<String>,
    pulls: Backoff<String>,
    /// An init container failed under restartPolicy Never.
    pub init_failed: bool,
    /// When the worker took the pod on (its `status.startTime`).
    taken_on: Instant,
    /// Why the agent failed the pod (its active deadline), if it did: its
    /// status's reason and message. Nothing is started again.
    pub failure: Option<(&'static str, &'static str)>,
}

impl Default for PodState {
    fn default() -> Self {
        Self {
            waiting: BTreeMap::new(),
            crash: Backoff::crash_loop(),
            pulls: Backoff::image_pull(),
            init_failed: false,
            taken_on: Instant::now(),
            failure: None,
        }
    }
}

/// What one sync found and did, from the one run of the planner.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// Nothing runs and nothing will be started again: the pod is finished.
    pub terminal: bool,
    /// When a back-off ends, if that is sooner than the periodic resync.
    pub wake: Option<Duration>,
    /// The runtime call that failed, if one did.
    pub error: Option<RuntimeError>,
}

pub struct PodSyncer<R> {
    pub runtime: Arc<R>,
    pub config: SyncConfig,
    /// The pods' volume directories.
    pub volumes: Volumes,
    pub recorder: Arc<Recorder>,
    /// How postStart and preStop hooks run.
    pub handlers: Arc<dyn ContainerHandlers>,
    /// Liveness and startup results: a failed one restarts its container.
    pub probes: Arc<ProbeResults>,
    /// ConfigMaps, Secrets and tokens, in cluster mode.
    pub objects: Option<Arc<dyn ApiObjects>>,
}

impl<R> std::fmt::Debug for PodSyncer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSyncer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The grace to stop `pod`'s containers with: its own, at least 2 s.
pub fn pod_grace(pod: &Pod) -> Duration {
    seconds_of_grace(pod.grace_period_seconds())
}

/// A grace in seconds as the runtime gets it: never below [`MIN_GRACE`].
fn seconds_of_grace(seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0)).max(MIN_GRACE)
}

impl<R: Runtime + 'static> PodSyncer<R> {
    /// One sync of a pod that should run: plans once, collects dead
    /// containers, and carries the plan out.
    pub async fn sync(&self, pod: &Pod, runtime: &RuntimePod, state: &mut PodState) -> SyncOutcome {
        let active = active_deadline::active_for(runtime, state.taken_on.elapsed());
        let deadline = active_deadline::remaining(pod, active);
        if state.failure.is_some() || deadline == Some(Duration::ZERO) {
            return self.deadline_exceeded(pod, runtime, state).await;
        }
        let actions = actions::compute(pod, runtime, &*self.probes);
        state.init_failed = actions.init_failed;
        self.collect_garbage(runtime).await;
        if actions.is_empty() {
            if runtime.is_running() && volumes::refreshable(pod) {
                // The kubelet's remount: files from the API follow their
                // objects (a failure is a FailedMount event; the pod runs on).
                let _ = self.set_up_volumes(pod, Needs::Volumes).await;
            }
            return SyncOutcome {
                terminal: actions.init_failed || !runtime.is_running(),
                wake: deadline,
                ..SyncOutcome::default()
            };
        }
        tracing::debug!(pod = ?pod.metadata.name, ?actions, "sync");
        let (wake, error) = match self.apply(pod, runtime, state, actions).await {
            Ok(wake) => (wake, None),
            Err(error) => (None, Some(error)),
        };
        SyncOutcome {
            terminal: state.init_failed,
            wake: wake.into_iter().chain(deadline).min(),
            error,
        }
    }

    /// The pod ran out of time: it fails, and what runs is stopped with the
    /// pod's grace.
    async fn deadline_exceeded(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        state: &mut PodState,
    ) -> SyncOutcome {
        if state.failure.is_none() {
            let (reason, message) = (active_deadline::REASON, active_deadline::MESSAGE);
            self.recorder
                .record(pod, None, EventType::Normal, reason, message);
            state.failure = Some((reason, message));
        }
        let error = if runtime.is_running() {
            self.kill(pod, runtime, pod_grace(pod)).await.err()
        } else {
            None
        };
        SyncOutcome {
            terminal: error.is_none(),
            wake: None,
            error,
        }
    }

    async fn apply(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        state: &mut PodState,
        actions: PodActions,
    ) -> Result<Option<Duration>, RuntimeError> {
        if actions.kill_pod {
            if actions.create_sandbox && runtime.latest_sandbox().is_some() {
                self.recorder.record(
                    pod,
                    None,
                    EventType::Normal,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                );
            }
            self.kill(pod, runtime, pod_grace(pod)).await?;
            if !actions.create_sandbox {
                return Ok(None);
            }
        }
        self.kill_replaced(pod, runtime, &actions).await?;
        self.start_all(pod, runtime, state, &actions).await
    }
}
