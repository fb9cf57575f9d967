//! Whether the pod may run on this node by its labels: `nodeSelector`, the
//! required node affinity (terms ORed, expressions ANDed) and the pod's OS.
//! The matching is Kubernetes' own, from wasmlet-rules (shared with the host).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, PodOS, PodSpec};
use serde::Deserialize;
use wasmlet_plugin_sdk::admission::{self, Decision, Error, Guest, NodeInfo, Pod};
use wasmlet_rules::scheduling::node_affinity_matches;

/// The parts of the pod JSON this plugin reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodJson {
    spec: SpecJson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecJson {
    affinity: Option<Affinity>,
    os: Option<PodOS>,
}

/// Why the pod may not run here, as (reason, message); None if it may.
pub fn check(pod: &Pod, node: &NodeInfo) -> Result<Option<(String, String)>, String> {
    let parsed: PodJson = serde_json::from_str(&pod.json)
        .map_err(|e| format!("pod JSON (spec.affinity, spec.os): {e}"))?;
    let labels: BTreeMap<String, String> = node
        .labels
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    if let Some(os) = &parsed.spec.os
        && let Some(node_os) = labels.get("kubernetes.io/os")
        && &os.name != node_os
    {
        return Ok(Some((
            "PodOSNotSupported".into(),
            format!(
                "Failed to admit pod as the OS field ({}) doesn't match node OS ({node_os})",
                os.name
            ),
        )));
    }
    let spec = PodSpec {
        node_selector: Some(
            pod.node_selector
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
        ),
        affinity: parsed.spec.affinity,
        ..Default::default()
    };
    if node_affinity_matches(&spec, &labels, &node.name) {
        return Ok(None);
    }
    Ok(Some((
        "NodeAffinity".to_owned(),
        "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
            .to_owned(),
    )))
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
