//! `/metrics` in the format the scraper asks for: OpenMetrics when its
//! `Accept` names `application/openmetrics-text` (what prometheus-client
//! writes), else the Prometheus text format 0.0.4, which `promtool check
//! metrics` and older scrapers read. The two differ in how they name a
//! family: OpenMetrics's counter `x` has samples `x_total` and its info
//! metric `x` has samples `x_info`, while the Prometheus format's HELP and
//! TYPE lines name the samples themselves; OpenMetrics's `unknown` is
//! `untyped`, and it has no `# UNIT` or `# EOF` lines.

use prometheus_client::registry::Registry;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry's metrics and their content type, for a request's `Accept`.
pub fn render(registry: &Registry, accept: Option<&str>) -> Result<(String, &'static str), String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).map_err(|e| e.to_string())?;
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        Ok((text, OPENMETRICS))
    } else {
        Ok((prometheus_text(&text), PROMETHEUS_TEXT))
    }
}

/// OpenMetrics text as the Prometheus text format.
fn prometheus_text(openmetrics: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(openmetrics.len() + 256);
    // A family's help, held until its TYPE line (which follows) names it.
    let mut help: Option<&str> = None;
    let mut counter = false;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').map_or("", |(_, text)| text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                "stateset" => ("", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                other => ("", other),
            };
            counter = kind == "counter";
            let name = format!("{family}{suffix}");
            if let Some(help) = help.take() {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        } else if line.starts_with('#') {
            // `# UNIT` and `# EOF` are OpenMetrics's alone.
        } else if counter && sample_name(line).ends_with("_created") {
            // A counter's creation time has no place in this format.
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The metric name a sample line starts with.
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;

    fn registry() -> Registry {
        let mut registry = Registry::default();
        let rejections = Family::<Vec<(String, String)>, Counter>::default();
        rejections
            .get_or_create(&vec![("reason".into(), "OutOfcpu".into())])
            .inc();
        registry.register(
            "kubelet_admission_rejections",
            "Pods rejected at admission",
            rejections,
        );
        let running = Gauge::<i64>::default();
        running.set(3);
        registry.register("kubelet_running_pods", "Running pods", running);
        let relist = Histogram::new([0.01, 0.1]);
        relist.observe(0.02);
        registry.register(
            "kubelet_pleg_relist_duration_seconds",
            "Relist time",
            relist,
        );
        registry
    }

    #[test]
    fn the_prometheus_format_names_families_as_their_samples() {
        let (text, kind) = render(&registry(), Some("text/plain")).expect("rendered");
        assert_eq!(kind, PROMETHEUS_TEXT);
        for want in [
            "# HELP kubelet_admission_rejections_total Pods rejected at admission.\n",
            "# TYPE kubelet_admission_rejections_total counter\n",
            "kubelet_admission_rejections_total{reason=\"OutOfcpu\"} 1\n",
            "# HELP kubelet_running_pods Running pods.\n# TYPE kubelet_running_pods gauge\n",
            "# TYPE kubelet_pleg_relist_duration_seconds histogram\n",
            "kubelet_pleg_relist_duration_seconds_bucket{le=\"0.1\"} 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn openmetrics_when_asked_for() {
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";
        let (text, kind) = render(&registry(), Some(accept)).expect("rendered");
        assert_eq!(kind, OPENMETRICS);
        assert!(
            text.contains("# TYPE kubelet_admission_rejections counter\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
