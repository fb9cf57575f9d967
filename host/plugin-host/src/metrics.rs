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
    /// Calls that were refused a capability and went on: the guest caught
    /// the refusal, so no error says it.
    pub caught_denials: Family<CallLabels, Counter>,
}

impl Default for PluginMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            caught_denials: Family::default(),
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
        registry.register(
            "wasmlet_plugin_caught_denials",
            "Plugin calls refused a capability that went on (the plugin caught the refusal)",
            self.caught_denials.clone(),
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

    pub fn caught_denials_of(&self, plugin: &str, call: &str) -> u64 {
        self.caught_denials
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_prometheus_text_with_their_labels() {
        let metrics = PluginMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let labels = CallLabels {
            plugin: "p".into(),
            call: "admit".into(),
        };
        metrics.calls.get_or_create(&labels).inc();
        metrics.duration.get_or_create(&labels).observe(0.00003);
        metrics
            .errors
            .get_or_create(&ErrorLabels {
                plugin: "p".into(),
                call: "admit".into(),
                reason: "deadline".into(),
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for want in [
            "wasmlet_plugin_calls_total{plugin=\"p\",call=\"admit\"} 1",
            "wasmlet_plugin_errors_total{plugin=\"p\",call=\"admit\",reason=\"deadline\"} 1",
            "wasmlet_plugin_call_duration_seconds_count{plugin=\"p\",call=\"admit\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in:\n{text}");
        }
        assert_eq!(metrics.calls_of("p", "admit"), 1);
    }
}
