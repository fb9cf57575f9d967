//! Untolerated NoExecute taints reject a pod, as at the kubelet's admission
//! (NoSchedule is the scheduler's business). Static pods are exempt: the
//! kubelet runs them whatever the node's taints.

use wasmlet_plugin_sdk::admission::{
    self, Decision, Error, Guest, NodeInfo, Pod, Taint, Toleration,
};

/// Kubernetes' `ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_str() {
        "Exists" => true,
        "" | "Equal" => {
            !key.is_empty() && toleration.value.as_deref().unwrap_or_default() == taint.value
        }
        _ => false,
    }
}

/// The first NoExecute taint no toleration of `pod` tolerates.
pub fn untolerated<'n>(pod: &Pod, node: &'n NodeInfo) -> Option<&'n Taint> {
    node.taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .find(|t| !pod.tolerations.iter().any(|tol| tolerates(tol, t)))
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
        Ok(match untolerated(&pod, &node) {
            None => admission::admit(),
            Some(taint) => admission::reject(
                "Taint",
                format!(
                    "Predicate TaintToleration failed: node(s) had untolerated taint {{{}: {}}}",
                    taint.key, taint.value
                ),
            ),
        })
    }
}

wasmlet_plugin_sdk::admission::export_admission!(Taints);
