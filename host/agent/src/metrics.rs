//! The agent's metrics, under the kubelet's names so existing dashboards work.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OperationLabels {
    /// `create`, `update`, `sync` or `kill`.
    pub operation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabels {
    pub container_state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

fn seconds() -> Histogram {
    // 5 ms … ~80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

#[derive(Debug, Clone)]
pub struct AgentMetrics {
    pub running_pods: Gauge,
    pub running_containers: Family<StateLabels, Gauge>,
    pub pod_start_duration: Histogram,
    pub pleg_relist_duration: Histogram,
    pub pod_worker_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub admission_rejections: Family<ReasonLabels, Counter>,
    /// 1 once a configured pod source delivered its first snapshot.
    pub source_ready: Family<SourceLabels, Gauge>,
    pub source_failures: Family<SourceLabels, Counter>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            running_pods: Gauge::default(),
            running_containers: Family::default(),
            pod_start_duration: seconds(),
            pleg_relist_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            pod_worker_duration: Family::new_with_constructor(seconds),
            admission_rejections: Family::default(),
            source_ready: Family::default(),
            source_failures: Family::default(),
        }
    }
}

impl AgentMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            self.running_pods.clone(),
        );
        registry.register(
            "kubelet_running_containers",
            "Number of containers currently running",
            self.running_containers.clone(),
        );
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the agent seeing a pod for the first time to the pod running",
            self.pod_start_duration.clone(),
        );
        registry.register(
            "kubelet_pleg_relist_duration_seconds",
            "Duration in seconds for relisting pods in PLEG",
            self.pleg_relist_duration.clone(),
        );
        registry.register(
            "kubelet_pod_worker_duration_seconds",
            "Duration in seconds to sync a single pod, by operation",
            self.pod_worker_duration.clone(),
        );
        // The encoder adds `_total` to counters.
        registry.register(
            "kubelet_admission_rejections",
            "Cumulative number of pod admission rejections, by reason",
            self.admission_rejections.clone(),
        );
        registry.register(
            "wasmlet_pod_source_ready",
            "1 once a configured pod source has delivered its first snapshot; until every one has, no pod is removed",
            self.source_ready.clone(),
        );
        registry.register(
            "wasmlet_pod_source_failures",
            "Cumulative number of failed attempts of a pod source to load or give a snapshot",
            self.source_failures.clone(),
        );
    }
}
