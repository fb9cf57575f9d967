//! Probes and lifecycle hooks through plugins: the plugin `probe-<kind>` runs
//! a probe of that kind (exec, http-get, tcp-socket, grpc), `hook-<kind>` a
//! hook (exec, http-get, sleep). Each call is granted only its own container
//! (exec) or its own pod's IP, by the plugin host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::plugins::Live;
use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};
use wasmlet_agent::handlers::{
    BoxFuture, Checked, ContainerHandlers, HandlerTarget, HookError, Outcome,
};
use wasmlet_plugin_host::{
    CallTarget, ContainerCall, Failure, Kind, Plugin, PluginSet, lifecycle_handler, probe_handler,
};

/// The handler plugins, replaced whole when the plugin directory changes.
#[derive(Debug, Default)]
pub struct PluginHandlers {
    live: Live<Handlers>,
}

#[derive(Debug, Default)]
struct Handlers {
    probes: BTreeMap<String, Arc<Plugin>>,
    hooks: BTreeMap<String, Arc<Plugin>>,
}

impl PluginHandlers {
    pub fn from_set(set: &PluginSet) -> Self {
        Self {
            live: Live::new(Handlers::from_set(set)),
        }
    }

    /// The handlers of `set`, for the calls from now on.
    pub fn replace(&self, set: &PluginSet) {
        self.live.set(Handlers::from_set(set));
    }
}

impl Handlers {
    fn from_set(set: &PluginSet) -> Self {
        let mut handlers = Self::default();
        for plugin in &set.plugins {
            match plugin.kind() {
                Kind::Probe => {
                    if let Some(kind) = plugin.name.strip_prefix("probe-") {
                        handlers.probes.insert(kind.to_owned(), plugin.clone());
                    }
                }
                Kind::Lifecycle => {
                    if let Some(kind) = plugin.name.strip_prefix("hook-") {
                        handlers.hooks.insert(kind.to_owned(), plugin.clone());
                    }
                }
                _ => {}
            }
        }
        handlers
    }
}

/// The plugin host's view of the call's container, from the agent's typed one.
fn container_call(target: &HandlerTarget) -> Result<ContainerCall, String> {
    let grant = CallTarget {
        pod_uid: target.pod_uid.clone(),
        container_id: target.container_id.clone(),
        pod_ip: target.pod_ip,
        address: target.address,
    };
    ContainerCall::new(
        grant,
        &target.pod_name,
        &target.pod_namespace,
        &target.container_name,
        &target.ports,
    )
}

fn unknown(message: String) -> Checked {
    Checked {
        outcome: Outcome::Unknown,
        message,
    }
}

impl ContainerHandlers for PluginHandlers {
    fn probe<'a>(
        &'a self,
        target: &'a HandlerTarget,
        probe: &'a Probe,
        timeout: Duration,
    ) -> BoxFuture<'a, Checked> {
        Box::pin(async move {
            let (kind, handler) = match probe_handler(probe) {
                Ok(found) => found,
                Err(e) => return unknown(e),
            };
            let Some(plugin) = self.live.get().probes.get(kind).cloned() else {
                return unknown(format!("no probe-{kind} plugin is loaded"));
            };
            let call = match container_call(target) {
                Ok(t) => t,
                Err(e) => return unknown(e),
            };
            match plugin.check(&call, &handler, timeout).await {
                Ok(result) => Checked {
                    outcome: match result.outcome {
                        wasmlet_plugin_host::Outcome::Success => Outcome::Success,
                        wasmlet_plugin_host::Outcome::Failure => Outcome::Failure,
                        wasmlet_plugin_host::Outcome::Unknown => Outcome::Unknown,
                    },
                    message: result.message,
                },
                // A check that outlives timeoutSeconds failed, as in the kubelet.
                Err(e) if matches!(e.failure, Failure::Deadline(_)) => Checked {
                    outcome: Outcome::Failure,
                    message: format!("timeout: the probe did not finish within {timeout:?}"),
                },
                // Busy: it never ran; Unknown triggers nothing.
                Err(e) => unknown(e.to_string()),
            }
        })
    }

    fn hook<'a>(
        &'a self,
        target: &'a HandlerTarget,
        handler: &'a LifecycleHandler,
        pre_stop: bool,
        within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            let (kind, handler) = lifecycle_handler(handler).map_err(HookError::Invalid)?;
            let plugin =
                self.live.get().hooks.get(kind).cloned().ok_or_else(|| {
                    HookError::NoHandler(format!("no hook-{kind} plugin is loaded"))
                })?;
            let call = container_call(target).map_err(HookError::Invalid)?;
            plugin
                .run_hook(&call, &handler, pre_stop, within)
                .await
                .map_err(|e| match e.failure {
                    Failure::Deadline(_) => HookError::Deadline(within),
                    Failure::Busy(_) => HookError::Busy(e.to_string()),
                    _ => HookError::Failed(e.to_string()),
                })
        })
    }
}
