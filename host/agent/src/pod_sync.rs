//! Carries out a pod's actions against the runtime (the kubelet's `SyncPod`,
//! `startContainer`, `killPod`), with image pull and crash-loop back-off.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::task::JoinSet;
use wasmlet_core::{
    ContainerId, ContainerState, Runtime, RuntimeError, SandboxId, SandboxState,
    default_pull_policy,
};

use crate::actions::{self, PodActions};
use crate::backoff::Backoff;
use crate::events::{EventType, Recorder};
use crate::handlers::{ContainerHandlers, HandlerTarget};
use crate::pod_ext::{ContainerExt, PodExt};
use crate::prober::results::ProbeResults;
use crate::runtime_pod::{
    RuntimePod, container_config, finished_at, grace_period_seconds, restart_count, sandbox_config,
};
use crate::status::Waiting;

/// The kubelet's floor for a grace period.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// What the syncer needs to know about the node.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Labels every runtime object, so this agent finds its own.
    pub agent: String,
    pub log_root: PathBuf,
    pub runtime_handler: String,
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
}

impl Default for PodState {
    fn default() -> Self {
        Self {
            waiting: BTreeMap::new(),
            crash: Backoff::crash_loop(),
            pulls: Backoff::image_pull(),
            init_failed: false,
        }
    }
}

pub struct PodSyncer<R> {
    pub runtime: Arc<R>,
    pub config: SyncConfig,
    pub recorder: Arc<Recorder>,
    /// How postStart and preStop hooks run.
    pub handlers: Arc<dyn ContainerHandlers>,
    /// Liveness and startup results: a failed one restarts its container.
    pub probes: Arc<ProbeResults>,
}

impl<R> std::fmt::Debug for PodSyncer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSyncer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn spec_containers(pod: &Pod) -> (&[Container], &[Container]) {
    pod.spec.as_ref().map_or((&[], &[]), |s| {
        (
            s.init_containers.as_deref().unwrap_or_default(),
            s.containers.as_slice(),
        )
    })
}

/// The grace to stop `pod`'s containers with: its own, at least 2 s.
pub fn pod_grace(pod: &Pod) -> Duration {
    Duration::from_secs(u64::try_from(grace_period_seconds(pod)).unwrap_or(0)).max(MIN_GRACE)
}

/// `SystemTime` → `Instant`, for back-off measured from a runtime timestamp.
fn instant_of(at: SystemTime) -> Instant {
    let ago = SystemTime::now().duration_since(at).unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

impl<R: Runtime + 'static> PodSyncer<R> {
    /// One sync of a pod that should run. Returns when it wants to be synced
    /// again at the latest (a back-off that ends), if sooner than the resync.
    pub async fn sync(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        state: &mut PodState,
    ) -> Result<Option<Duration>, RuntimeError> {
        let actions = actions::compute(pod, runtime, &*self.probes);
        state.init_failed = actions.init_failed;
        self.collect_garbage(runtime).await;
        if actions.is_empty() {
            return Ok(None);
        }
        tracing::debug!(pod = ?pod.metadata.name, ?actions, "sync");
        self.apply(pod, runtime, state, actions).await
    }

    async fn apply(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        state: &mut PodState,
        actions: PodActions,
    ) -> Result<Option<Duration>, RuntimeError> {
        let mut requeue: Option<Duration> = None;
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
        let pod_ip = runtime.latest_sandbox().and_then(|s| s.ip);
        for victim in &actions.kill {
            self.recorder.record(
                pod,
                Some(&victim.name),
                EventType::Normal,
                "Killing",
                &victim.reason,
            );
            let grace = victim.grace_seconds.map_or_else(
                || pod_grace(pod),
                |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)).max(MIN_GRACE),
            );
            self.stop_container(pod, &victim.id, &victim.name, pod_ip, grace)
                .await?;
        }

        let attempt = if actions.create_sandbox {
            actions.attempt
        } else {
            runtime.latest_sandbox().map_or(0, |s| s.metadata.attempt)
        };
        let sandbox_config =
            sandbox_config(pod, attempt, &self.config.agent, &self.config.log_root);
        let sandbox: SandboxId = match actions.sandbox.clone() {
            Some(id) if !actions.create_sandbox => id,
            _ => {
                std::fs::create_dir_all(&sandbox_config.log_directory).map_err(|e| {
                    RuntimeError::new(
                        "RunPodSandbox",
                        wasmlet_core::ErrorKind::Internal,
                        format!(
                            "creating log directory {}: {e}",
                            sandbox_config.log_directory.display()
                        ),
                    )
                })?;
                match self
                    .runtime
                    .run_sandbox(&sandbox_config, &self.config.runtime_handler)
                    .await
                {
                    Ok(id) => id,
                    Err(error) => {
                        self.recorder.record(
                            pod,
                            None,
                            EventType::Warning,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {error}"),
                        );
                        return Err(error);
                    }
                }
            }
        };

        let (inits, apps) = spec_containers(pod);
        let fresh = actions.create_sandbox;
        let to_start = actions
            .start_init
            .iter()
            .map(|i| (true, *i))
            .chain(actions.start.iter().map(|i| (false, *i)));
        for (init, i) in to_start {
            let Some(container) = (if init { inits.get(i) } else { apps.get(i) }) else {
                continue;
            };
            let start = StartContainer {
                pod,
                container,
                sandbox: &sandbox,
                sandbox_config: &sandbox_config,
                previous: runtime.latest(&container.name).0,
                fresh_sandbox: fresh,
            };
            if let Some(wait) = self.start_container(start, state).await {
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            }
        }
        Ok(requeue)
    }

    /// Starts one container unless it is backing off; `Some(wait)` if it is.
    async fn start_container(
        &self,
        start: StartContainer<'_>,
        state: &mut PodState,
    ) -> Option<Duration> {
        let StartContainer {
            pod,
            container,
            sandbox,
            sandbox_config,
            previous,
            fresh_sandbox,
        } = start;
        let name = container.name.clone();
        let now = Instant::now();
        // Crash-loop back-off: only for a container that ran and stopped in
        // this sandbox; a new sandbox starts its containers at once.
        if let Some(prev) = previous.filter(|p| p.state == ContainerState::Exited && !fresh_sandbox)
        {
            let exited = instant_of(finished_at(prev));
            let (wait, delay) = state.crash.remaining_since(&name, exited, now);
            if !wait.is_zero() {
                let message = format!(
                    "back-off {delay:?} restarting failed container={name} pod={}_{}({})",
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.uid_str(),
                );
                if state
                    .waiting
                    .get(&name)
                    .is_none_or(|w| w.reason != "CrashLoopBackOff")
                {
                    self.recorder.record(
                        pod,
                        Some(&name),
                        EventType::Warning,
                        "BackOff",
                        format!("Back-off restarting failed container {name}"),
                    );
                }
                state
                    .waiting
                    .insert(name, waiting("CrashLoopBackOff", message));
                return Some(wait);
            }
            state.crash.fail(&name, exited);
        }

        if let Err((reason, message, wait)) = self.ensure_image(pod, container, state).await {
            state.waiting.insert(name, waiting(reason, message));
            return wait;
        }

        let restarts = previous.map_or(0, |p| restart_count(p) + 1);
        let config = container_config(
            pod,
            container,
            u32::try_from(restarts).unwrap_or(0),
            &self.config.agent,
            sandbox_config,
        );
        let id: ContainerId = match self
            .runtime
            .create_container(sandbox, &config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(error) => {
                self.failed(pod, &name, "CreateContainerError", &error, state);
                return None;
            }
        };
        self.recorder.record(
            pod,
            Some(&name),
            EventType::Normal,
            "Created",
            format!("Created container {name}"),
        );
        if let Err(error) = self.runtime.start_container(&id).await {
            self.failed(pod, &name, "RunContainerError", &error, state);
            return None;
        }
        self.recorder.record(
            pod,
            Some(&name),
            EventType::Normal,
            "Started",
            format!("Started container {name}"),
        );
        if let Some(hook) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
        {
            let pod_ip = match self.runtime.sandbox_status(sandbox).await {
                Ok(status) => status.ip,
                Err(_) => None,
            };
            let target = HandlerTarget::new(pod, container, id.clone(), pod_ip);
            // postStart has no deadline of its own in Kubernetes; the hook
            // plugin's manifest bounds it.
            if let Err(message) = self
                .handlers
                .hook(&target, hook, false, Duration::from_secs(600))
                .await
            {
                self.recorder.record(
                    pod,
                    Some(&name),
                    EventType::Warning,
                    "FailedPostStartHook",
                    &message,
                );
                // As the kubelet: kill it; it restarts per the restart policy.
                let _ = self.runtime.stop_container(&id, pod_grace(pod)).await;
                state.waiting.insert(
                    name,
                    waiting(
                        "PostStartHookError",
                        format!("PostStartHook failed: {message}"),
                    ),
                );
                return None;
            }
        }
        state.waiting.remove(&name);
        None
    }

    fn failed(
        &self,
        pod: &Pod,
        name: &str,
        reason: &str,
        error: &RuntimeError,
        state: &mut PodState,
    ) {
        self.recorder.record(
            pod,
            Some(name),
            EventType::Warning,
            "Failed",
            format!("Error: {error}"),
        );
        state
            .waiting
            .insert(name.to_owned(), waiting(reason, error.to_string()));
    }

    /// Makes sure the container's image is there, per its pull policy.
    /// Err: the waiting reason and message, and when to retry.
    async fn ensure_image(
        &self,
        pod: &Pod,
        container: &Container,
        state: &mut PodState,
    ) -> Result<(), (&'static str, String, Option<Duration>)> {
        let image = container.image.clone().unwrap_or_default();
        let name = container.name.as_str();
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).into());
        let present = match self.runtime.image_status(&image).await {
            Ok(found) => found.is_some(),
            Err(error) => {
                return Err(("ErrImageInspect", error.to_string(), None));
            }
        };
        match (policy.as_str(), present) {
            ("Never", false) => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.recorder.record(
                    pod,
                    Some(name),
                    EventType::Warning,
                    "ErrImageNeverPull",
                    &message,
                );
                return Err(("ErrImageNeverPull", message, None));
            }
            ("Never" | "IfNotPresent", true) => {
                if !state.waiting.contains_key(name) {
                    self.recorder.record(
                        pod,
                        Some(name),
                        EventType::Normal,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                }
                return Ok(());
            }
            _ => {}
        }
        let now = Instant::now();
        let wait = state.pulls.remaining(&image, now);
        if !wait.is_zero() {
            let message = format!("Back-off pulling image \"{image}\"");
            self.recorder
                .record(pod, Some(name), EventType::Normal, "BackOff", &message);
            return Err(("ImagePullBackOff", message, Some(wait)));
        }
        self.recorder.record(
            pod,
            Some(name),
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let started = Instant::now();
        match self.runtime.pull_image(&image, None).await {
            Ok(_) => {
                state.pulls.forget(&image);
                self.recorder.record(
                    pod,
                    Some(name),
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:?}",
                        started.elapsed()
                    ),
                );
                Ok(())
            }
            Err(error) => {
                let wait = state.pulls.fail(&image, Instant::now());
                let message = format!("Failed to pull image \"{image}\": {error}");
                self.recorder
                    .record(pod, Some(name), EventType::Warning, "Failed", &message);
                Err(("ErrImagePull", message, Some(wait)))
            }
        }
    }

    /// Stops one container: its preStop hook first, inside `grace`, and what
    /// the hook used is taken from what StopContainer gets (never below 2 s).
    fn stop_container(
        &self,
        pod: &Pod,
        id: &ContainerId,
        name: &str,
        pod_ip: Option<std::net::IpAddr>,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send + 'static {
        self.recorder.record(
            pod,
            Some(name),
            EventType::Normal,
            "Killing",
            format!("Stopping container {name}"),
        );
        // Only app containers and sidecars may have hooks.
        let (inits, apps) = spec_containers(pod);
        let pre_stop = apps
            .iter()
            .chain(inits)
            .find(|c| c.name == name)
            .and_then(|spec| {
                let hook = spec.lifecycle.as_ref()?.pre_stop.clone()?;
                Some((HandlerTarget::new(pod, spec, id.clone(), pod_ip), hook))
            });
        let (runtime, handlers, recorder) = (
            self.runtime.clone(),
            self.handlers.clone(),
            self.recorder.clone(),
        );
        let (pod, id, name) = (pod.clone(), id.clone(), name.to_owned());
        async move {
            let mut left = grace;
            if let Some((target, hook)) = pre_stop {
                let started = Instant::now();
                if let Err(message) = handlers.hook(&target, &hook, true, grace).await {
                    recorder.record(
                        &pod,
                        Some(&name),
                        EventType::Warning,
                        "FailedPreStopHook",
                        message,
                    );
                }
                left = grace.saturating_sub(started.elapsed()).max(MIN_GRACE);
            }
            runtime.stop_container(&id, left).await
        }
    }

    /// Stops every running container and then the pod's sandboxes: the
    /// others in parallel, each with `grace`, then the sidecars one by one in
    /// reverse order, with what is left of it (they serve the others to the end).
    pub async fn kill(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let sidecars: Vec<&str> = spec_containers(pod)
            .0
            .iter()
            .filter(|c| c.is_sidecar())
            .map(|c| c.name.as_str())
            .collect();
        let pod_ip = runtime.latest_sandbox().and_then(|s| s.ip);
        let mut stops = JoinSet::new();
        for container in runtime
            .running()
            .filter(|c| !sidecars.contains(&c.metadata.name.as_str()))
        {
            let stop =
                self.stop_container(pod, &container.id, &container.metadata.name, pod_ip, grace);
            stops.spawn(stop);
        }
        let mut first_error = None;
        while let Some(result) = stops.join_next().await {
            if let Ok(Err(error)) = result {
                first_error.get_or_insert(error);
            }
        }
        for name in sidecars.iter().rev() {
            for container in runtime.running().filter(|c| c.metadata.name == *name) {
                let left = grace.saturating_sub(started.elapsed()).max(MIN_GRACE);
                if let Err(error) = self
                    .stop_container(pod, &container.id, name, pod_ip, left)
                    .await
                {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        for sandbox in runtime
            .sandboxes
            .iter()
            .filter(|s| s.state == SandboxState::Ready)
        {
            self.runtime.stop_sandbox(&sandbox.id).await?;
        }
        Ok(())
    }

    /// Removes every runtime object of a stopped pod.
    pub async fn remove(&self, runtime: &RuntimePod) -> Result<(), RuntimeError> {
        for container in &runtime.containers {
            self.runtime.remove_container(&container.id).await?;
        }
        for sandbox in &runtime.sandboxes {
            self.runtime.remove_sandbox(&sandbox.id).await?;
        }
        Ok(())
    }

    /// Container GC, as the kubelet's (one dead container per name): keeps
    /// the newest exited container of each name, whose status and logs are
    /// the pod's last state, and removes older exited ones.
    async fn collect_garbage(&self, runtime: &RuntimePod) {
        let mut seen = std::collections::BTreeSet::new();
        for container in runtime
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Exited)
        {
            let newest = seen.insert(container.metadata.name.as_str());
            if !newest && let Err(error) = self.runtime.remove_container(&container.id).await {
                tracing::warn!(%error, container = %container.id, "container gc");
            }
        }
        // Old sandboxes stay until the pod goes: removing one would remove
        // the exited containers whose statuses are the pod's last state.
    }
}

struct StartContainer<'a> {
    pod: &'a Pod,
    container: &'a Container,
    sandbox: &'a SandboxId,
    sandbox_config: &'a wasmlet_core::SandboxConfig,
    previous: Option<&'a wasmlet_core::ContainerStatus>,
    fresh_sandbox: bool,
}

fn waiting(reason: &str, message: String) -> Waiting {
    Waiting {
        reason: reason.to_owned(),
        message,
    }
}
