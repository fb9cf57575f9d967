//! Whether the pod may run on this node by its labels: `nodeSelector`, the
//! required node affinity (terms ORed, expressions ANDed) and the pod's OS.

use serde::Deserialize;
use wasmlet_plugin_sdk::admission::{self, Decision, Error, Guest, NodeInfo, Pod};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Term {
    match_expressions: Vec<Requirement>,
    match_fields: Vec<Requirement>,
}

/// The parts of the pod JSON this plugin reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodJson {
    spec: SpecJson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SpecJson {
    affinity: Option<serde_json::Value>,
    os: Option<OsJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OsJson {
    name: String,
}

fn required_terms(spec: &SpecJson) -> Result<Vec<Term>, String> {
    let Some(terms) = spec.affinity.as_ref().and_then(|a| {
        a.pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
    }) else {
        return Ok(Vec::new());
    };
    serde_json::from_value(terms.clone()).map_err(|e| {
        format!("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: {e}")
    })
}

fn matches(req: &Requirement, value: Option<&str>) -> bool {
    let number = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| req.values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !req.values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => match (
            value.and_then(number),
            req.values.first().and_then(|v| number(v)),
        ) {
            (Some(have), Some(bound)) if req.operator == "Gt" => have > bound,
            (Some(have), Some(bound)) => have < bound,
            _ => false,
        },
        _ => false,
    }
}

fn label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    node.labels
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

fn term_matches(term: &Term, node: &NodeInfo) -> bool {
    // An empty term matches nothing, as in Kubernetes.
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| matches(r, label(node, &r.key)))
        && term.match_fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node.name.as_str());
            matches(r, value)
        })
}

/// Why the pod may not run here, as (reason, message); None if it may.
pub fn check(pod: &Pod, node: &NodeInfo) -> Result<Option<(String, String)>, String> {
    let parsed: PodJson = serde_json::from_str(&pod.json).map_err(|e| format!("pod JSON: {e}"))?;
    if let Some(os) = &parsed.spec.os
        && let Some(node_os) = label(node, "kubernetes.io/os")
        && os.name != node_os
    {
        return Ok(Some((
            "PodOSNotSupported".into(),
            format!(
                "Failed to admit pod as the OS field ({}) doesn't match node OS ({node_os})",
                os.name
            ),
        )));
    }
    let affinity_failed = || {
        Some((
            "NodeAffinity".to_owned(),
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
                .to_owned(),
        ))
    };
    for kv in &pod.node_selector {
        if label(node, &kv.key) != Some(kv.value.as_str()) {
            return Ok(affinity_failed());
        }
    }
    let terms = required_terms(&parsed.spec)?;
    if !terms.is_empty() && !terms.iter().any(|t| term_matches(t, node)) {
        return Ok(affinity_failed());
    }
    Ok(None)
}

struct NodeAffinity;

impl Guest for NodeAffinity {
    fn validate_settings() -> Result<(), Error> {
        Ok(())
    }

    fn admit(pod: Pod, node: NodeInfo, _active: Vec<Pod>) -> Result<Decision, Error> {
        Ok(match check(&pod, &node).map_err(Error::InvalidInput)? {
            None => admission::admit(),
            Some((reason, message)) => admission::reject(reason, message),
        })
    }
}

wasmlet_plugin_sdk::admission::export_admission!(NodeAffinity);
