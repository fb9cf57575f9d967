//! Which log file a request for a container's log means, as the kubelet's
//! `GetKubeletContainerLogs` finds it: the pod by namespace and name, the
//! container in its spec, and its current instance, or with `previous` the
//! one before it; with the kubelet's errors when there is none.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use wasmlet_core::{ContainerId, ContainerState, PodUid};

use crate::api_status::status_container_id;
use crate::cache::PodCache;
use crate::pod_ext::{PodExt, PodUidExt};
use crate::status_manager::PodStatuses;

/// A container instance's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLog {
    pub path: PathBuf,
    pub uid: PodUid,
    pub id: ContainerId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("pod \"{pod}\" in namespace \"{namespace}\" does not exist")]
    NoPod { namespace: String, pod: String },
    #[error("container \"{container}\" not found in pod \"{pod}\"")]
    NoContainer { pod: String, container: String },
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}")]
    NotStarted {
        pod: String,
        container: String,
        reason: String,
    },
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPrevious { pod: String, container: String },
    #[error("container \"{container}\" in pod \"{pod}\": instance {id} and its log are gone")]
    Gone {
        pod: String,
        container: String,
        id: String,
    },
}

impl LookupError {
    /// The pod or container is not there at all (404), rather than having no
    /// log yet (400), as the kubelet answers.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NoPod { .. } | Self::NoContainer { .. })
    }
}

fn in_spec(pod: &Pod, container: &str) -> bool {
    let spec = pod.spec.as_ref();
    pod.app_containers()
        .iter()
        .chain(pod.init_containers())
        .any(|c| c.name == container)
        || spec
            .and_then(|s| s.ephemeral_containers.as_ref())
            .is_some_and(|e| e.iter().any(|c| c.name == container))
}

/// The container instance whose log is meant, by its ID in the pod's
/// status (the kubelet's `validateContainerLogStatus`): the running or
/// terminated one; while it waits to restart, the one that terminated last;
/// with `previous`, always the one that terminated last.
fn instance_id(pod: &Pod, container: &str, previous: bool) -> Result<String, LookupError> {
    let status = pod
        .status
        .iter()
        .flat_map(|s| {
            [
                &s.container_statuses,
                &s.init_container_statuses,
                &s.ephemeral_container_statuses,
            ]
        })
        .flat_map(|list| list.iter().flatten())
        .find(|c| c.name == container);
    let pod_name = pod.name_str();
    let not_available = || LookupError::NotStarted {
        pod: pod_name.into(),
        container: container.into(),
        reason: "ContainerCreating".into(),
    };
    let status = status.ok_or_else(not_available)?;
    let last_terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.clone());
    if previous {
        return last_terminated.ok_or_else(|| LookupError::NoPrevious {
            pod: pod_name.into(),
            container: container.into(),
        });
    }
    let state = status.state.as_ref();
    if state.is_some_and(|s| s.running.is_some() || s.terminated.is_some()) {
        return status.container_id.clone().ok_or_else(not_available);
    }
    last_terminated.ok_or_else(|| LookupError::NotStarted {
        pod: pod_name.into(),
        container: container.into(),
        reason: state
            .and_then(|s| s.waiting.as_ref()?.reason.clone())
            .unwrap_or_else(|| "ContainerCreating".into()),
    })
}

pub fn find(
    statuses: &PodStatuses,
    cache: &PodCache,
    namespace: &str,
    pod_name: &str,
    container: &str,
    previous: bool,
) -> Result<ContainerLog, LookupError> {
    let pod = statuses
        .list()
        .into_iter()
        .find(|p| p.namespace_or_default() == namespace && p.name_str() == pod_name)
        .ok_or_else(|| LookupError::NoPod {
            namespace: namespace.into(),
            pod: pod_name.into(),
        })?;
    if !in_spec(&pod, container) {
        return Err(LookupError::NoContainer {
            pod: pod_name.into(),
            container: container.into(),
        });
    }
    let wanted = instance_id(&pod, container, previous)?;
    let uid = pod.pod_uid();
    let instance = cache.get(&uid).and_then(|runtime_pod| {
        runtime_pod
            .containers
            .iter()
            .find(|c| status_container_id(&c.id) == wanted)
            .map(|c| (c.id.clone(), c.log_path.clone()))
    });
    let (id, path) = instance.ok_or_else(|| LookupError::Gone {
        pod: pod_name.into(),
        container: container.into(),
        id: wanted,
    })?;
    Ok(ContainerLog { path, uid, id })
}

/// Whether the instance still runs, as the PLEG last saw it.
pub fn is_running(cache: &PodCache, log: &ContainerLog) -> bool {
    cache.get(&log.uid).is_some_and(|pod| {
        pod.containers
            .iter()
            .any(|c| c.id == log.id && c.state == ContainerState::Running)
    })
}
