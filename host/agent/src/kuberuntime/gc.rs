//! Garbage collection of runtime objects, as the kubelet's container GC.

use std::collections::BTreeSet;
use std::path::PathBuf;

use wasmlet_core::{ContainerState, ContainerStatus, ErrorKind, Runtime, RuntimeError};

use super::PodSyncer;
use super::runtime_pod::RuntimePod;
use crate::logs;

impl<R: Runtime + 'static> PodSyncer<R> {
    /// Removes every runtime object of a stopped pod, then its logs and
    /// log links and its volumes (the kubelet's orphaned pod directory
    /// cleanup and its pod log directory GC).
    pub async fn remove(&self, runtime: &RuntimePod) -> Result<(), RuntimeError> {
        for container in &runtime.containers {
            self.runtime.remove_container(&container.id).await?;
        }
        for sandbox in &runtime.sandboxes {
            self.runtime.remove_sandbox(&sandbox.id).await?;
        }
        let mut log_paths: Vec<PathBuf> = runtime
            .containers
            .iter()
            .map(|c| self.log_link(runtime, c))
            .collect();
        if !runtime.name.is_empty() {
            log_paths.push(logs::pod_log_dir(
                &self.config.log_root,
                &runtime.namespace,
                &runtime.name,
                runtime.uid.as_str(),
            ));
        }
        let (volumes, uid) = (self.volumes.clone(), runtime.uid.clone());
        let removed = tokio::task::spawn_blocking(move || {
            for path in &log_paths {
                logs::remove(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            }
            volumes.tear_down(&uid).map_err(|e| e.to_string())
        })
        .await;
        let error = match removed {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(panicked) => panicked.to_string(),
        };
        Err(RuntimeError::new(
            "RemovePodVolumes",
            ErrorKind::Internal,
            error,
        ))
    }

    fn log_link(&self, runtime: &RuntimePod, container: &ContainerStatus) -> PathBuf {
        logs::link_path(
            &self.config.container_logs_dir,
            &runtime.name,
            &runtime.namespace,
            &container.metadata.name,
            container.id.as_str(),
        )
    }

    /// One dead container per name, as the kubelet's GC: keeps the newest
    /// exited container of each name, whose status and logs are the pod's
    /// last state, and removes older exited ones.
    pub(super) async fn collect_garbage(&self, runtime: &RuntimePod) {
        let mut seen = BTreeSet::new();
        for container in runtime
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Exited)
        {
            let newest = seen.insert(container.metadata.name.as_str());
            if newest {
                continue;
            }
            if let Err(error) = self.runtime.remove_container(&container.id).await {
                tracing::warn!(%error, container = %container.id, "container gc");
                continue;
            }
            let link = self.log_link(runtime, container);
            if let Ok(Err(error)) = tokio::task::spawn_blocking(move || logs::remove(&link)).await {
                tracing::warn!(%error, container = %container.id, "removing the log link");
            }
        }
        // Old sandboxes stay until the pod goes: removing one would remove
        // the exited containers whose statuses are the pod's last state.
    }
}
