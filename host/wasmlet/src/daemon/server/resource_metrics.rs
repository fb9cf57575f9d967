//! `/metrics/resource`: the kubelet's resource metrics (what metrics-server
//! scrapes), from one Summary reading: CPU time and working set of the
//! node, each pod and each container, and the containers' start times.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use wasmlet_agent::stats::Summary;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ContainerLabels {
    container: String,
    namespace: String,
    pod: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PodLabels {
    namespace: String,
    pod: String,
}

type Seconds = Counter<f64, std::sync::atomic::AtomicU64>;
type Value = Gauge<f64, std::sync::atomic::AtomicU64>;

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// A registry holding `summary`'s figures, or only the scrape error when
/// there is none.
pub fn registry(summary: Option<&Summary>) -> Registry {
    let mut registry = Registry::default();
    let scrape_error = Value::default();
    registry.register(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        scrape_error.clone(),
    );
    let Some(summary) = summary else {
        scrape_error.set(1.0);
        return registry;
    };
    let node_cpu = Seconds::default();
    let node_memory = Value::default();
    let container_cpu = Family::<ContainerLabels, Seconds>::default();
    let container_memory = Family::<ContainerLabels, Value>::default();
    let container_start = Family::<ContainerLabels, Value>::default();
    let pod_cpu = Family::<PodLabels, Seconds>::default();
    let pod_memory = Family::<PodLabels, Value>::default();
    if let Some(nanos) = summary.node.cpu.usage_core_nano_seconds {
        node_cpu.inc_by(seconds(nanos));
    }
    if let Some(bytes) = summary.node.memory.working_set_bytes {
        node_memory.set(bytes as f64);
    }
    for pod in &summary.pods {
        let of_pod = PodLabels {
            namespace: pod.pod_ref.namespace.clone(),
            pod: pod.pod_ref.name.clone(),
        };
        if let Some(nanos) = pod.cpu.usage_core_nano_seconds {
            pod_cpu.get_or_create(&of_pod).inc_by(seconds(nanos));
        }
        if let Some(bytes) = pod.memory.working_set_bytes {
            pod_memory.get_or_create(&of_pod).set(bytes as f64);
        }
        for c in &pod.containers {
            let labels = ContainerLabels {
                container: c.name.clone(),
                namespace: of_pod.namespace.clone(),
                pod: of_pod.pod.clone(),
            };
            if let Some(nanos) = c.cpu.usage_core_nano_seconds {
                container_cpu.get_or_create(&labels).inc_by(seconds(nanos));
            }
            if let Some(bytes) = c.memory.working_set_bytes {
                container_memory.get_or_create(&labels).set(bytes as f64);
            }
            if let Some(start) = &c.start_time {
                container_start
                    .get_or_create(&labels)
                    .set(start.0.as_millisecond() as f64 / 1e3);
            }
        }
    }
    registry.register(
        "node_cpu_usage_seconds",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        node_cpu,
    );
    registry.register(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        node_memory,
    );
    registry.register(
        "pod_cpu_usage_seconds",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        pod_cpu,
    );
    registry.register(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        pod_memory,
    );
    registry.register(
        "container_cpu_usage_seconds",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        container_cpu,
    );
    registry.register(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        container_memory,
    );
    registry.register(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        container_start,
    );
    registry
}
