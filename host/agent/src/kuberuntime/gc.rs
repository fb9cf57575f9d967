//! Garbage collection of runtime objects, as the kubelet's container GC.

use std::collections::BTreeSet;

use wasmlet_core::{ContainerState, ErrorKind, Runtime, RuntimeError};

use super::PodSyncer;
use super::runtime_pod::RuntimePod;

impl<R: Runtime + 'static> PodSyncer<R> {
    /// Removes every runtime object of a stopped pod, then its volumes
    /// (the kubelet's orphaned pod directory cleanup).
    pub async fn remove(&self, runtime: &RuntimePod) -> Result<(), RuntimeError> {
        for container in &runtime.containers {
            self.runtime.remove_container(&container.id).await?;
        }
        for sandbox in &runtime.sandboxes {
            self.runtime.remove_sandbox(&sandbox.id).await?;
        }
        let (volumes, uid) = (self.volumes.clone(), runtime.uid.clone());
        let removed = tokio::task::spawn_blocking(move || volumes.tear_down(&uid)).await;
        let error = match removed {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(panicked) => panicked.to_string(),
        };
        Err(RuntimeError::new(
            "RemovePodVolumes",
            ErrorKind::Internal,
            error,
        ))
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
            if !newest && let Err(error) = self.runtime.remove_container(&container.id).await {
                tracing::warn!(%error, container = %container.id, "container gc");
            }
        }
        // Old sandboxes stay until the pod goes: removing one would remove
        // the exited containers whose statuses are the pod's last state.
    }
}
