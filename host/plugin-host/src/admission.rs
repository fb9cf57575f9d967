//! Admission plugins: the kubelet's canAdmitPod chain, as components.

use std::sync::Arc;
use std::time::Instant;

use crate::bindings::admission_handler::{self, Decision};
use crate::bindings::types::{NodeInfo, Pod};
use crate::call::{SlotWait, settle};
use crate::error::{CallError, Failure};
use crate::plugin::Plugin;
use crate::state::CallState;

impl Plugin {
    /// Asks the plugin whether `pod` may start on `node`, which runs `active`.
    pub async fn admit(
        &self,
        pod: &Pod,
        node: &NodeInfo,
        active: &[Pod],
    ) -> Result<Decision, CallError> {
        let indices: admission_handler::GuestIndices = self.exports_for("admit")?;
        self.call_within(
            "admit",
            None,
            SlotWait::OutOfDeadline,
            self.manifest.deadline(),
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

    /// `validate-settings` of an admission plugin.
    pub async fn validate_settings(&self) -> Result<(), CallError> {
        let indices: admission_handler::GuestIndices = self.exports_for("validate-settings")?;
        self.call_within(
            "validate-settings",
            None,
            SlotWait::OutOfDeadline,
            self.manifest.deadline(),
            &(),
            move |store, instance, ()| {
                Box::pin(async move {
                    let guest = indices.load(&mut *store, &instance)?;
                    guest.call_validate_settings(&mut *store).await
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
    plugin: Arc<Plugin>,
    store: wasmtime::Store<CallState>,
    guest: admission_handler::Guest,
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
    pub async fn new(plugin: Arc<Plugin>) -> Result<Self, CallError> {
        let (store, guest) = plugin
            .instantiate::<admission_handler::GuestIndices>(None)
            .await?;
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
                Instant::now(),
                Err(Failure::Trap(
                    "instance poisoned by an earlier failure".into(),
                )),
            )?);
        }
        let started = Instant::now();
        self.store.data_mut().deadline = started + deadline;
        let _running = self.plugin.engine.ticker.clock.running();
        let result = tokio::time::timeout(
            deadline,
            self.guest.call_admit(&mut self.store, pod, node, active),
        )
        .await;
        let outcome = settle(&self.store, result, deadline);
        self.plugin
            .report_caught_denials("admit", &self.store, outcome.is_ok());
        self.poisoned = !matches!(outcome, Ok(_) | Err(Failure::Plugin(_)));
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
    plugins: &[Arc<Plugin>],
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
