//! Starting what the plan says: the sandbox (the kubelet's
//! `createPodSandbox`) and each container behind its crash-loop back-off, its
//! image and its postStart hook (`startContainer`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;
use wasmlet_core::{
    ContainerId, ContainerSecurity, ContainerState, ContainerStatus, DnsConfig, ErrorKind, Mount,
    Runtime, RuntimeError, SandboxConfig, SandboxId,
};
use wasmlet_rules::downward::RuntimeFacts;
use wasmlet_rules::expansion::Expanded;
use wasmlet_rules::security::ImageUser;

use super::actions::PodActions;
use super::runtime_pod::{
    RuntimePod, container_config, environment, finished_at, restart_count, sandbox_config,
};
use super::security_context::container_security;
use super::termination_message;
use super::{PodState, PodSyncer, pod_grace};
use crate::api_objects::{self, Fetched, Needs};
use crate::api_status::{Waiting, WaitingReason};
use crate::events::EventType;
use crate::handlers::{HandlerTarget, HookError};
use crate::logs;
use crate::network::dns::{ResolvConf, pod_dns};
use crate::network::{self, hosts};
use crate::pod_ext::{PodExt, PodUidExt};
use crate::volumes::PodVolumes;
use crate::volumes::mounts::container_mounts;

/// One container to start, and what it starts into.
struct StartContainer<'a> {
    pod: &'a Pod,
    container: &'a Container,
    sandbox: &'a SandboxId,
    sandbox_config: &'a SandboxConfig,
    /// The primary first; the node's for a host-network pod.
    pod_ips: &'a [IpAddr],
    volumes: &'a PodVolumes,
    /// The API objects the pod names.
    objects: &'a Fetched,
    previous: Option<&'a ContainerStatus>,
    fresh_sandbox: bool,
}

/// One run of a container, and what it runs in.
#[derive(Clone, Copy)]
struct ContainerRun<'a> {
    container: &'a Container,
    /// The run's restart count.
    restarts: u32,
    sandbox: &'a SandboxConfig,
    pod_ips: &'a [IpAddr],
    volumes: &'a PodVolumes,
    objects: &'a Fetched,
}

/// `SystemTime` → `Instant`, for back-off measured from a runtime timestamp.
fn instant_of(at: SystemTime) -> Instant {
    let ago = SystemTime::now().duration_since(at).unwrap_or_default();
    let now = Instant::now();
    now.checked_sub(ago).unwrap_or(now)
}

impl<R: Runtime + 'static> PodSyncer<R> {
    /// Creates the sandbox if the plan says so, then starts the planned init
    /// and app containers in order. Returns the soonest end of a back-off.
    pub(super) async fn start_all(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        state: &mut PodState,
        actions: &PodActions,
    ) -> Result<Option<Duration>, RuntimeError> {
        let attempt = if actions.create_sandbox {
            actions.attempt
        } else {
            runtime.latest_sandbox().map_or(0, |s| s.metadata.attempt)
        };
        let nothing_to_start = actions.start_init.is_empty() && actions.start.is_empty();
        // Volumes first, as the kubelet waits for them before the sandbox.
        let (volumes, objects) = if nothing_to_start {
            (PodVolumes::default(), Fetched::default())
        } else {
            self.set_up_volumes(pod, Needs::Start).await?
        };
        let sandbox_config = self
            .sandbox_config(pod, attempt, actions.create_sandbox)
            .await?;
        let sandbox = match actions.sandbox.clone() {
            Some(id) if !actions.create_sandbox => id,
            _ => self.create_sandbox(pod, &sandbox_config).await?,
        };
        let pod_ips = if nothing_to_start {
            Vec::new()
        } else {
            self.pod_ips(pod, &sandbox).await
        };

        let (inits, apps) = (pod.init_containers(), pod.app_containers());
        let to_start = actions
            .start_init
            .iter()
            .filter_map(|i| inits.get(*i))
            .chain(actions.start.iter().filter_map(|i| apps.get(*i)));
        let mut wake: Option<Duration> = None;
        for container in to_start {
            let start = StartContainer {
                pod,
                container,
                sandbox: &sandbox,
                sandbox_config: &sandbox_config,
                pod_ips: &pod_ips,
                volumes: &volumes,
                objects: &objects,
                previous: runtime.latest(&container.name).0,
                fresh_sandbox: actions.create_sandbox,
            };
            if let Some(wait) = self.start_container(start, state).await {
                wake = Some(wake.map_or(wait, |w| w.min(wait)));
            }
        }
        Ok(wake)
    }

    /// The sandbox's config. Its resolver is worked out (reading the node's
    /// resolver file, off the runtime's threads) only for a sandbox about to
    /// be created: the runtime reads it only then.
    async fn sandbox_config(
        &self,
        pod: &Pod,
        attempt: u32,
        creating: bool,
    ) -> Result<SandboxConfig, RuntimeError> {
        let dns = if creating {
            Some(self.pod_dns(pod).await?)
        } else {
            None
        };
        let settings = &self.config.dns;
        sandbox_config(
            pod,
            attempt,
            &self.config.agent,
            &self.config.log_root,
            dns,
            &settings.cluster_domain,
        )
        .map_err(|e| {
            let message = format!(
                "Failed to generate sandbox config for pod {:?}: {e}",
                pod.display_name()
            );
            self.sandbox_failed(pod, ErrorKind::InvalidArgument, message)
        })
    }

    /// `pod`'s resolver, with the kubelet's warnings as events.
    async fn pod_dns(&self, pod: &Pod) -> Result<DnsConfig, RuntimeError> {
        let host = match self.config.dns.resolv_conf.clone() {
            None => None,
            Some(path) => {
                let read = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || std::fs::read_to_string(path)
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|read| read);
                match read {
                    Ok(text) => Some(ResolvConf::parse(&text)),
                    Err(e) => {
                        let message = format!("reading resolvConf {}: {e}", path.display());
                        return Err(self.sandbox_failed(pod, ErrorKind::Internal, message));
                    }
                }
            }
        };
        let dns = pod_dns(pod, &self.config.dns, host.as_ref());
        for (reason, message) in dns.warnings {
            self.recorder
                .record(pod, None, EventType::Warning, reason, message);
        }
        Ok(dns.config)
    }

    /// Links the new container's log where log collectors look; as the
    /// kubelet, a failure is logged and the container starts anyway.
    async fn link_log(&self, pod: &Pod, name: &str, id: &ContainerId, log: PathBuf) {
        let link = logs::link_path(
            &self.config.container_logs_dir,
            pod.name_str(),
            pod.namespace_or_default(),
            name,
            id.as_str(),
        );
        let made = tokio::task::spawn_blocking({
            let link = link.clone();
            move || logs::create_link(&link, &log)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|made| made);
        if let Err(error) = made {
            tracing::warn!(%error, link = %link.display(), "linking the container's log");
        }
    }

    /// The kubelet's FailedCreatePodSandBox, as an event and an error.
    fn sandbox_failed(&self, pod: &Pod, kind: ErrorKind, message: String) -> RuntimeError {
        self.sandbox_error(pod, RuntimeError::new("RunPodSandbox", kind, message))
    }

    fn sandbox_error(&self, pod: &Pod, error: RuntimeError) -> RuntimeError {
        self.recorder.record(
            pod,
            None,
            EventType::Warning,
            "FailedCreatePodSandBox",
            format!("Failed to create pod sandbox: {error}"),
        );
        error
    }

    async fn create_sandbox(
        &self,
        pod: &Pod,
        config: &SandboxConfig,
    ) -> Result<SandboxId, RuntimeError> {
        // The kubelet's pod log directory; blocking, so off the runtime's threads.
        let dir = config.log_directory.clone();
        let created = tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir)).await;
        if let Err(error) = created
            .map_err(std::io::Error::other)
            .and_then(|result| result)
        {
            let message = format!(
                "creating log directory {}: {error}",
                config.log_directory.display()
            );
            return Err(self.sandbox_failed(pod, ErrorKind::Internal, message));
        }
        self.runtime
            .run_sandbox(config, &self.config.runtime_handler)
            .await
            .map_err(|error| self.sandbox_error(pod, error))
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
            pod_ips,
            volumes,
            objects,
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
                    "back-off {delay:?} restarting failed container={name} pod={}",
                    pod.display_name(),
                );
                if state
                    .waiting
                    .get(&name)
                    .is_none_or(|w| w.reason != WaitingReason::CrashLoopBackOff)
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
                    .insert(name, Waiting::new(WaitingReason::CrashLoopBackOff, message));
                return Some(wait);
            }
            state.crash.fail(&name, exited);
        }

        if let Err(error) = self.ensure_image(pod, container, objects, state).await {
            let wait = error.retry_after();
            state
                .waiting
                .insert(name, Waiting::new(error.reason(), error.to_string()));
            return wait;
        }

        let restarts = previous.map_or(0, |p| restart_count(p) + 1);
        let restarts = u32::try_from(restarts).unwrap_or(0);
        let run = ContainerRun {
            container,
            restarts,
            sandbox: sandbox_config,
            pod_ips,
            volumes,
            objects,
        };
        let inputs = self.container_inputs(pod, run).await;
        let (env, security, mounts) = match inputs {
            Ok(inputs) => inputs,
            Err(error) => {
                self.failed(
                    pod,
                    &name,
                    WaitingReason::CreateContainerConfigError,
                    &error,
                    state,
                );
                return None;
            }
        };
        let config = container_config(
            pod,
            container,
            restarts,
            &self.config.agent,
            env,
            security,
            mounts,
        );
        let id: ContainerId = match self
            .runtime
            .create_container(sandbox, &config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(error) => {
                self.failed(
                    pod,
                    &name,
                    WaitingReason::CreateContainerError,
                    &error,
                    state,
                );
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
        self.link_log(
            pod,
            &name,
            &id,
            sandbox_config.log_directory.join(&config.log_path),
        )
        .await;
        if let Err(error) = self.runtime.start_container(&id).await {
            self.failed(pod, &name, WaitingReason::RunContainerError, &error, state);
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
            let mut target =
                HandlerTarget::new(pod, container, id.clone(), pod_ips.first().copied());
            // postStart has no deadline of its own in Kubernetes; the hook
            // plugin's manifest bounds it.
            let within = Duration::from_secs(600);
            let ran = match target.aim_hook(hook).await {
                Ok(hook) => self.handlers.hook(&target, &hook, false, within).await,
                Err(e) => Err(HookError::Failed(e)),
            };
            if let Err(error) = ran {
                self.recorder.record(
                    pod,
                    Some(&name),
                    EventType::Warning,
                    "FailedPostStartHook",
                    error.to_string(),
                );
                // As the kubelet: kill it; it restarts per the restart policy.
                let _ = self.runtime.stop_container(&id, pod_grace(pod)).await;
                state.waiting.insert(
                    name,
                    Waiting::new(
                        WaitingReason::PostStartHookError,
                        format!("PostStartHook failed: {error}"),
                    ),
                );
                return None;
            }
        }
        state.waiting.remove(&name);
        None
    }

    /// Reads the API objects the pod names and sets up its volumes (off the
    /// runtime's threads); a failure is the kubelet's FailedMount, and the
    /// sync is retried.
    pub(super) async fn set_up_volumes(
        &self,
        pod: &Pod,
        needs: Needs,
    ) -> Result<(PodVolumes, Fetched), RuntimeError> {
        let error = match api_objects::fetch(self.objects.as_deref(), pod, needs).await {
            Ok(objects) => {
                let (volumes, owned, allocatable) = (
                    self.volumes.clone(),
                    pod.clone(),
                    self.config.allocatable.clone(),
                );
                let done = tokio::task::spawn_blocking(move || {
                    volumes
                        .set_up(&owned, &allocatable, &objects)
                        .map(|v| (v, objects))
                })
                .await;
                match done {
                    Ok(Ok(set_up)) => return Ok(set_up),
                    Ok(Err(error)) => error.to_string(),
                    Err(panicked) => panicked.to_string(),
                }
            }
            Err(error) => format!("MountVolume.SetUp failed: {error}"),
        };
        self.recorder
            .record(pod, None, EventType::Warning, "FailedMount", error.clone());
        Err(RuntimeError::new("MountVolume", ErrorKind::Internal, error))
    }

    /// The container's mounts: its volumes, the kubelet-managed
    /// `/etc/hosts`, then its termination message file (sub-paths are made
    /// and files written on the host, so off the runtime's threads).
    async fn mounts(
        &self,
        pod: &Pod,
        run: ContainerRun<'_>,
        env: &Expanded,
        privileged: bool,
    ) -> Result<Vec<Mount>, String> {
        let ContainerRun {
            container,
            restarts,
            pod_ips,
            volumes,
            ..
        } = run;
        let pod_dir = self.volumes.pod_dir(&pod.pod_uid());
        let hosts = if hosts::managed_for(pod, container, pod_ips) {
            let (hostname, domain) =
                network::hostname_and_domain(pod, &self.config.dns.cluster_domain)?;
            Some((hostname, domain))
        } else {
            None
        };
        let (pod, container, volumes, env) = (
            pod.clone(),
            container.clone(),
            volumes.clone(),
            env.env.clone(),
        );
        let pod_ips = pod_ips.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut mounts = container_mounts(&container, &volumes, &env, privileged)?;
            if let Some((hostname, domain)) = hosts {
                let hosts = hosts::write(&pod, &pod_dir, &pod_ips, &hostname, domain.as_deref())
                    .map_err(|e| format!("writing the pod's /etc/hosts: {e}"))?;
                mounts.push(hosts);
            }
            let message = termination_message::mount(&pod_dir, &container, restarts)
                .map_err(|e| format!("creating the termination message file: {e}"))?;
            mounts.extend(message);
            Ok(mounts)
        })
        .await
        .unwrap_or_else(|panicked| Err(panicked.to_string()))
    }

    /// The pod's IPs, as the downward API and the hooks see them.
    async fn pod_ips(&self, pod: &Pod, sandbox: &SandboxId) -> Vec<IpAddr> {
        if pod.host_network() {
            return self.config.host_ip.into_iter().collect();
        }
        match self.runtime.sandbox_status(sandbox).await {
            Ok(status) => status.ip.into_iter().chain(status.additional_ips).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// What the kubelet works out before creating a container: its
    /// environment, its security and its mounts. An error is a container
    /// config error.
    async fn container_inputs(
        &self,
        pod: &Pod,
        run: ContainerRun<'_>,
    ) -> Result<(Expanded, ContainerSecurity, Vec<Mount>), String> {
        let ContainerRun {
            container,
            sandbox,
            pod_ips,
            objects,
            ..
        } = run;
        let facts = RuntimeFacts {
            pod_ips,
            host_ips: self.config.host_ip.as_slice(),
            allocatable: &self.config.allocatable,
        };
        let (env, skipped) = environment(pod, container, facts, objects)?;
        for message in skipped {
            self.recorder.record(
                pod,
                None,
                EventType::Warning,
                "InvalidEnvironmentVariableNames",
                message,
            );
        }
        let security = self.security(pod, container, sandbox).await?;
        let mounts = self.mounts(pod, run, &env, security.privileged).await?;
        Ok((env, security, mounts))
    }

    /// The container's security, with the image's own user where the pod
    /// names none (so `runAsNonRoot` can be checked against it).
    async fn security(
        &self,
        pod: &Pod,
        container: &Container,
        sandbox: &SandboxConfig,
    ) -> Result<ContainerSecurity, String> {
        let image = container.image.as_deref().unwrap_or_default();
        let image = self
            .runtime
            .image_status(image)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let user = ImageUser::new(image.uid, &image.username);
        container_security(
            pod,
            container,
            sandbox.namespaces,
            user,
            &self.config.seccomp_root,
        )
    }

    fn failed(
        &self,
        pod: &Pod,
        name: &str,
        reason: WaitingReason,
        error: &dyn std::fmt::Display,
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
            .insert(name.to_owned(), Waiting::new(reason, error.to_string()));
    }
}
