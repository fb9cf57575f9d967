//! Admission plugins: the kubelet's canAdmitPod chain, as components.

use crate::bindings::admission_handler::Decision;
use crate::bindings::types::{NodeInfo, Pod};
use crate::error::CallError;
use crate::manifest::Kind;
use crate::plugin::{Exports, Plugin};

impl Plugin {
    /// Asks the plugin whether `pod` may start on `node`, which runs `active`.
    pub async fn admit(
        &self,
        pod: &Pod,
        node: &NodeInfo,
        active: &[Pod],
    ) -> Result<Decision, CallError> {
        let Exports::Admission(indices) = self.exports.clone() else {
            return Err(self.wrong_kind("admit", Kind::Admission));
        };
        self.call(
            "admit",
            None,
            &(pod, node, active),
            move |store, instance, args| {
                Box::pin(async move {
                    let (pod, node, active) = *args;
                    let guest = indices.load(&mut *store, &instance)?;
                    guest.call_admit(&mut *store, pod, node, active).await
                })
            },
        )
        .await
    }
}

/// One long-lived instance of an admission plugin, for callers that make many
/// calls in a row and want to skip instantiation. Calls share the guest's
/// memory, so a plugin keeps whatever state it builds. After a failure other
/// than the plugin's own error the instance is poisoned: drop it and make a
/// new one.
pub struct AdmissionInstance {
    plugin: std::sync::Arc<Plugin>,
    store: wasmtime::Store<crate::state::CallState>,
    guest: crate::bindings::admission_handler::Guest,
    poisoned: bool,
}

impl std::fmt::Debug for AdmissionInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionInstance")
            .field("plugin", &self.plugin.name)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl AdmissionInstance {
    pub async fn new(plugin: std::sync::Arc<Plugin>) -> Result<Self, CallError> {
        let Exports::Admission(indices) = plugin.exports.clone() else {
            return Err(plugin.wrong_kind("instantiate", Kind::Admission));
        };
        let started = std::time::Instant::now();
        let deadline = plugin.manifest.deadline();
        let outcome = async {
            let mut store = plugin
                .new_store(None, None)
                .map_err(crate::Failure::DeniedCapability)?;
            let run = async {
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                indices.load(&mut store, &instance).map(Ok)
            };
            let result = tokio::time::timeout(deadline, run).await;
            crate::plugin::settle(&store, result, deadline).map(|guest| (store, guest))
        }
        .await;
        let (store, guest) = plugin.record("instantiate", started, outcome)?;
        Ok(Self {
            plugin,
            store,
            guest,
            poisoned: false,
        })
    }

    pub async fn admit(
        &mut self,
        pod: &Pod,
        node: &NodeInfo,
        active: &[Pod],
    ) -> Result<Decision, CallError> {
        let deadline = self.plugin.manifest.deadline();
        if self.poisoned {
            return Err(self.plugin.record(
                "admit",
                std::time::Instant::now(),
                Err(crate::Failure::Trap(
                    "instance poisoned by an earlier failure".into(),
                )),
            )?);
        }
        let started = std::time::Instant::now();
        self.store.data_mut().deadline = started + deadline;
        let result = tokio::time::timeout(
            deadline,
            self.guest.call_admit(&mut self.store, pod, node, active),
        )
        .await;
        let outcome = crate::plugin::settle(&self.store, result, deadline);
        self.poisoned = !matches!(outcome, Ok(_) | Err(crate::Failure::Plugin(_)));
        self.plugin.record("admit", started, outcome)
    }
}

/// The verdict of an admission chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub admit: bool,
    /// The plugin that rejected the pod, if one did.
    pub plugin: Option<String>,
    pub reason: String,
    pub message: String,
}

/// Runs `plugins` in order, like the kubelet's admit handlers: the first
/// rejection wins. A plugin's own failure rejects under `fail-closed` and is
/// skipped under `fail-open`; a plugin in `monitor` mode is only logged.
pub async fn admit_all(
    plugins: &[std::sync::Arc<Plugin>],
    pod: &Pod,
    node: &NodeInfo,
    active: &[Pod],
) -> Verdict {
    use crate::manifest::{FailurePolicy, Mode};
    for plugin in plugins {
        let monitor = plugin.manifest.mode == Mode::Monitor;
        let (reason, message) = match plugin.admit(pod, node, active).await {
            Ok(decision) if decision.admit => continue,
            Ok(decision) => (
                crate::bounds::reason(&decision.reason),
                crate::bounds::message(decision.message),
            ),
            Err(error) => match plugin.manifest.failure_policy {
                FailurePolicy::FailOpen => {
                    tracing::warn!(%error, pod = %pod.name, "admission plugin failed; fail-open: ignored");
                    continue;
                }
                FailurePolicy::FailClosed => {
                    ("AdmissionPluginFailed".to_owned(), error.to_string())
                }
            },
        };
        if monitor {
            tracing::info!(
                plugin = %plugin.name, pod = %pod.name, %reason, %message,
                "monitor mode: would reject"
            );
            continue;
        }
        return Verdict {
            admit: false,
            plugin: Some(plugin.name.clone()),
            reason,
            message,
        };
    }
    Verdict {
        admit: true,
        plugin: None,
        reason: String::new(),
        message: String::new(),
    }
}
