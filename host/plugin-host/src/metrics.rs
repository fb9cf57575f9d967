//! Per-plugin metrics: calls, errors by reason, latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    pub plugin: String,
    pub call: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    pub plugin: String,
    pub call: String,
    /// `deadline`, `memory`, `trap`, `denied`, `bad_output`, `plugin_error`.
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 10 µs … ~10 s: plugin calls range from a fresh-store admission (tens of
    // µs) to a probe that waits on the network.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1e-5, 4.0, 11,
    ))
}

/// Shared by every plugin of an engine; register once with [`Self::register`].
#[derive(Debug, Clone)]
pub struct PluginMetrics {
    pub calls: Family<CallLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<CallLabels, Histogram, fn() -> Histogram>,
}

impl Default for PluginMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl PluginMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wasmlet_plugin_calls",
            "Plugin calls, by plugin and exported function",
            self.calls.clone(),
        );
        registry.register(
            "wasmlet_plugin_errors",
            "Failed plugin calls, by plugin, function and reason",
            self.errors.clone(),
        );
        registry.register(
            "wasmlet_plugin_call_duration_seconds",
            "Plugin call latency, instantiation included",
            self.duration.clone(),
        );
    }

    pub fn calls_of(&self, plugin: &str, call: &str) -> u64 {
        self.calls
            .get_or_create(&CallLabels {
                plugin: plugin.into(),
                call: call.into(),
            })
            .get()
    }

    pub fn errors_of(&self, plugin: &str, call: &str, reason: &str) -> u64 {
        self.errors
            .get_or_create(&ErrorLabels {
                plugin: plugin.into(),
                call: call.into(),
                reason: reason.into(),
            })
            .get()
    }
}
