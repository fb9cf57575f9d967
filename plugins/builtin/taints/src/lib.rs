//! Untolerated NoExecute taints reject a pod, as at the kubelet's admission
//! (NoSchedule is the scheduler's business). Static pods are exempt: the
//! kubelet runs them whatever the node's taints. The matching is Kubernetes'
//! own, from wasmlet-rules (shared with the host).

use k8s_openapi::api::core::v1 as k8s;
use wasmlet_plugin_sdk::admission::{self, Decision, Error, Guest, NodeInfo, Pod};
use wasmlet_rules::scheduling::untolerated;

fn tolerations(pod: &Pod) -> Vec<k8s::Toleration> {
    pod.tolerations
        .iter()
        .map(|t| k8s::Toleration {
            key: t.key.clone(),
            operator: Some(t.operator.clone()),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect()
}

fn taints(node: &NodeInfo) -> Vec<k8s::Taint> {
    node.taints
        .iter()
        .map(|t| k8s::Taint {
            key: t.key.clone(),
            value: Some(t.value.clone()),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect()
}

struct Taints;

impl Guest for Taints {
    fn validate_settings() -> Result<(), Error> {
        Ok(())
    }

    fn admit(pod: Pod, node: NodeInfo, _active: Vec<Pod>) -> Result<Decision, Error> {
        if matches!(pod.source.as_str(), "file" | "http") {
            return Ok(admission::admit());
        }
        let taints = taints(&node);
        Ok(
            match untolerated(&tolerations(&pod), &taints, "NoExecute") {
                None => admission::admit(),
                Some(taint) => admission::reject(
                    "Taint",
                    format!(
                        "Predicate TaintToleration failed: node(s) had untolerated taint {{{}: {}}}",
                        taint.key,
                        taint.value.as_deref().unwrap_or_default()
                    ),
                ),
            },
        )
    }
}

wasmlet_plugin_sdk::admission::export_admission!(Taints);
