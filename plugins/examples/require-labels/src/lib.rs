//! An admission plugin as a third party would write one: pods (in the listed
//! namespaces, or all) must carry every label the operator requires.

use serde::Deserialize;
use wasmlet_plugin_sdk::admission::{self, Decision, Error, Guest, NodeInfo, Pod, host};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Label keys every pod must have.
    labels: Vec<String>,
    /// Only pods in these namespaces are checked; empty: all.
    #[serde(default)]
    namespaces: Vec<String>,
}

fn settings() -> Result<Settings, Error> {
    let settings: Settings = host::typed_settings()?;
    if settings.labels.is_empty() {
        return Err(Error::InvalidSettings(
            "labels: list at least one label key".into(),
        ));
    }
    if let Some(bad) = settings.labels.iter().find(|l| l.trim().is_empty()) {
        return Err(Error::InvalidSettings(format!(
            "labels: {bad:?} is not a label key"
        )));
    }
    Ok(settings)
}

/// The required labels `pod` lacks (none if its namespace is not checked).
fn missing_labels<'s>(settings: &'s Settings, pod: &Pod) -> Vec<&'s str> {
    if !settings.namespaces.is_empty() && !settings.namespaces.contains(&pod.namespace) {
        return Vec::new();
    }
    settings
        .labels
        .iter()
        .filter(|key| pod.label(key).is_none())
        .map(String::as_str)
        .collect()
}

struct RequireLabels;

impl Guest for RequireLabels {
    fn validate_settings() -> Result<(), Error> {
        settings().map(drop)
    }

    fn admit(pod: Pod, _node: NodeInfo, _active: Vec<Pod>) -> Result<Decision, Error> {
        let settings = settings()?;
        let missing = missing_labels(&settings, &pod);
        if missing.is_empty() {
            Ok(admission::admit())
        } else {
            Ok(admission::reject(
                "MissingLabels",
                format!(
                    "pod {}/{} lacks required labels: {}",
                    pod.namespace,
                    pod.name,
                    missing.join(", ")
                ),
            ))
        }
    }
}

wasmlet_plugin_sdk::admission::export_admission!(RequireLabels);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlet_plugin_sdk::admission::testing::pod;

    fn settings(labels: &[&str], namespaces: &[&str]) -> Settings {
        Settings {
            labels: labels.iter().map(|s| (*s).to_owned()).collect(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn lists_the_missing_labels_in_settings_order() {
        let s = settings(&["app", "team", "tier"], &[]);
        let p = pod("web").with_label("team", "a");
        assert_eq!(missing_labels(&s, &p), vec!["app", "tier"]);
    }

    #[test]
    fn unchecked_namespaces_pass() {
        let s = settings(&["team"], &["prod"]);
        assert!(missing_labels(&s, &pod("web").in_namespace("dev")).is_empty());
        assert_eq!(
            missing_labels(&s, &pod("web").in_namespace("prod")),
            vec!["team"]
        );
    }
}
