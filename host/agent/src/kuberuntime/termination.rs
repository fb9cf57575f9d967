//! Stopping containers as the kubelet's `killContainer` and `killPod` do:
//! the preStop hook inside the grace, the others in parallel, sidecars last
//! and in reverse order, then the sandboxes.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wasmlet_core::{ContainerId, Runtime, RuntimeError, SandboxState};

use super::actions::PodActions;
use super::runtime_pod::RuntimePod;
use super::{MIN_GRACE, PodSyncer, pod_grace, seconds_of_grace};
use crate::events::EventType;
use crate::handlers::{HandlerTarget, HookError};
use crate::pod_ext::{ContainerExt, PodExt};

impl<R: Runtime + 'static> PodSyncer<R> {
    /// Stops the containers the plan replaces (a failed probe, a changed
    /// spec), each with its probe's grace or the pod's.
    pub(super) async fn kill_replaced(
        &self,
        pod: &Pod,
        runtime: &RuntimePod,
        actions: &PodActions,
    ) -> Result<(), RuntimeError> {
        let pod_ip = runtime.latest_sandbox().and_then(|s| s.ip);
        for victim in &actions.kill {
            self.recorder.record(
                pod,
                Some(&victim.name),
                EventType::Normal,
                "Killing",
                &victim.reason,
            );
            let grace = victim
                .grace_seconds
                .map_or_else(|| pod_grace(pod), seconds_of_grace);
            self.stop_container(pod, &victim.id, &victim.name, pod_ip, grace)
                .await?;
        }
        Ok(())
    }

    /// Stops one container: its preStop hook first, inside `grace`, and what
    /// the hook used is taken from what StopContainer gets (never below 2 s).
    fn stop_container(
        &self,
        pod: &Pod,
        id: &ContainerId,
        name: &str,
        pod_ip: Option<IpAddr>,
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
        let pre_stop = pod
            .app_containers()
            .iter()
            .chain(pod.init_containers())
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
            if let Some((mut target, hook)) = pre_stop {
                let started = Instant::now();
                let ran = match target.aim_hook(&hook).await {
                    Ok(hook) => handlers.hook(&target, &hook, true, grace).await,
                    Err(e) => Err(HookError::Failed(e)),
                };
                if let Err(error) = ran {
                    recorder.record(
                        &pod,
                        Some(&name),
                        EventType::Warning,
                        "FailedPreStopHook",
                        error.to_string(),
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
        let sidecars: Vec<&str> = pod
            .init_containers()
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
}
