//! The agent's plugins: the admission chain behind the agent's admission
//! port, and the pod sources feeding its config channel.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, mpsc, watch};
use wasmlet_agent::admission::{Admission, Admit};
use wasmlet_agent::{SourceMessage, SourceUpdate};
use wasmlet_plugin_host::{Plugin, SourceEvent, admit_all, config_source, pod_view, types};

/// Runs admission plugins in the configured order (first rejection wins).
#[derive(Debug)]
pub struct PluginAdmission {
    pub chain: Vec<Arc<Plugin>>,
    /// Fail-closed admission plugins that should run and do not (missing,
    /// or failed to load), with why: while any is, no new pod is admitted.
    pub unavailable: Vec<(String, String)>,
    pub node: types::NodeInfo,
}

fn source_of(pod: &Pod) -> &str {
    config_source(pod, "api")
}

impl Admit for PluginAdmission {
    async fn admit(&self, pod: &Pod, active: &[Arc<Pod>]) -> Admission {
        if let Some((plugin, why)) = self.unavailable.first() {
            return Admission {
                admit: false,
                reason: "AdmissionPluginUnavailable".into(),
                message: format!(
                    "fail-closed admission plugin {plugin} is not loaded ({why}); no pod is admitted until it is"
                ),
            };
        }
        if self.chain.is_empty() {
            return Admission::admitted();
        }
        let view = match pod_view(pod, source_of(pod)) {
            Ok(view) => view,
            Err(message) => {
                return Admission {
                    admit: false,
                    reason: "InvalidPod".into(),
                    message,
                };
            }
        };
        let active: Vec<types::Pod> = active
            .iter()
            .filter_map(|p| pod_view(p, source_of(p)).ok())
            .collect();
        let verdict = admit_all(&self.chain, &view, &self.node, &active).await;
        Admission {
            admit: verdict.admit,
            reason: verdict.reason,
            message: verdict.message,
        }
    }
}

/// Starts every source plugin; their snapshots arrive on `updates`, decoded.
/// A pod that does not decode is reported as a problem of its source.
pub fn start_sources(
    sources: &[Arc<Plugin>],
    updates: &mpsc::Sender<SourceMessage>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut super::tasks::CoreTasks,
) {
    for plugin in sources {
        let (events_tx, mut events) = mpsc::channel(4);
        tasks.spawn(
            format!("pod source {}", plugin.name),
            plugin
                .clone()
                .run_source(Arc::new(Notify::new()), events_tx, shutdown.clone()),
        );
        let name = plugin.name.clone();
        let updates = updates.clone();
        tasks.spawn(
            format!("pod source {} forwarder", plugin.name),
            async move {
                while let Some(event) = events.recv().await {
                    let snapshot = match event {
                        SourceEvent::Snapshot(snapshot) => snapshot,
                        SourceEvent::Failed(error) => {
                            // The last good snapshot stays in force.
                            let failed = SourceMessage::Failed {
                                source: name.clone(),
                                reason: error.to_string(),
                            };
                            if updates.send(failed).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    let mut update = SourceUpdate {
                        source: name.clone(),
                        ..Default::default()
                    };
                    for pod in snapshot.pods {
                        match serde_json::from_str::<Pod>(&pod.json) {
                            Ok(decoded) => update.pods.push(decoded),
                            Err(e) => update.problems.push((pod.origin, e.to_string())),
                        }
                    }
                    update
                        .problems
                        .extend(snapshot.problems.into_iter().map(|p| (p.origin, p.message)));
                    if updates.send(update.into()).await.is_err() {
                        return;
                    }
                }
            },
        );
    }
}
