//! Probe results (the kubelet's `prober/results`): what the probe workers
//! found, read by the planner and the status generator. A leaf: it knows
//! nothing of the workers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Container, Probe};
use wasmlet_core::{ContainerId, PodUid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }

    /// This probe of `container`, if it has one.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            Self::Liveness => container.liveness_probe.as_ref(),
            Self::Readiness => container.readiness_probe.as_ref(),
            Self::Startup => container.startup_probe.as_ref(),
        }
    }
}

/// A probe result that changed: the pod needs a sync (a restart, or readiness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub uid: PodUid,
    pub container: String,
}

/// What the planner needs to know of a container's probes.
pub trait ProbeState {
    /// The liveness or startup probe that failed, if one did: the container must go.
    fn unhealthy(&self, id: &ContainerId) -> Option<ProbeType>;
    /// Whether the container's startup probe has passed.
    fn started(&self, id: &ContainerId) -> bool;
}

/// Probe results by container (the kubelet's results managers).
#[derive(Debug, Default)]
pub struct ProbeResults {
    results: Mutex<HashMap<(ContainerId, ProbeType), bool>>,
}

impl ProbeResults {
    pub fn get(&self, id: &ContainerId, kind: ProbeType) -> Option<bool> {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(id.clone(), kind))
            .copied()
    }

    /// Records a result; true if it changed.
    pub(super) fn set(&self, id: &ContainerId, kind: ProbeType, ok: Option<bool>) -> bool {
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (id.clone(), kind);
        let before = results.get(&key).copied();
        match ok {
            Some(ok) => results.insert(key, ok),
            None => results.remove(&key),
        };
        before != ok
    }

    pub(super) fn forget(&self, id: &ContainerId) {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(c, _), _| c != id);
    }
}

impl ProbeState for ProbeResults {
    fn unhealthy(&self, id: &ContainerId) -> Option<ProbeType> {
        [ProbeType::Liveness, ProbeType::Startup]
            .into_iter()
            .find(|kind| self.get(id, *kind) == Some(false))
    }

    fn started(&self, id: &ContainerId) -> bool {
        self.get(id, ProbeType::Startup) == Some(true)
    }
}
