//! Probes and lifecycle hooks through plugins: the plugin `probe-<kind>` runs
//! a probe of that kind (exec, http-get, tcp-socket, grpc), `hook-<kind>` a
//! hook (exec, http-get, sleep). Each call is granted only its own container
//! (exec) or its own pod's IP, by the plugin host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};
use wasmlet_agent::handlers::{BoxFuture, Checked, ContainerHandlers, HandlerTarget, Outcome};
use wasmlet_plugin_host::{
    Failure, Kind, Plugin, PluginSet, container_ports, lifecycle_handler, probe_handler, types,
};

#[derive(Debug, Default)]
pub struct PluginHandlers {
    probes: BTreeMap<String, Arc<Plugin>>,
    hooks: BTreeMap<String, Arc<Plugin>>,
}

impl PluginHandlers {
    pub fn from_set(set: &PluginSet) -> Self {
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

fn wit_target(target: &HandlerTarget) -> Result<types::ContainerTarget, String> {
    Ok(types::ContainerTarget {
        pod_name: target.pod_name.clone(),
        pod_namespace: target.pod_namespace.clone(),
        pod_uid: target.pod_uid.clone(),
        pod_ip: target.pod_ip.map(|ip| ip.to_string()),
        container_name: target.container_name.clone(),
        container_id: target.container_id.to_string(),
        ports: container_ports(&target.ports, &target.container_name)?,
    })
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
            let Some(plugin) = self.probes.get(kind) else {
                return unknown(format!("no probe-{kind} plugin is loaded"));
            };
            let wit = match wit_target(target) {
                Ok(t) => t,
                Err(e) => return unknown(e),
            };
            match plugin.check(&wit, &handler, timeout).await {
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
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (kind, handler) = lifecycle_handler(handler)?;
            let plugin = self
                .hooks
                .get(kind)
                .ok_or_else(|| format!("no hook-{kind} plugin is loaded"))?;
            let wit = wit_target(target)?;
            plugin
                .run_hook(&wit, &handler, pre_stop, within)
                .await
                .map_err(|e| match e.failure {
                    Failure::Deadline(_) => format!("the hook did not finish within {within:?}"),
                    Failure::Busy(_) => format!("the hook could not run: {e}"),
                    _ => e.to_string(),
                })
        })
    }
}
