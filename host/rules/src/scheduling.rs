//! Whether a pod fits a node by its labels and taints: Kubernetes' toleration
//! and node-selector matching (component-helpers' `ToleratesTaint` and
//! `nodeaffinity`), on the k8s-openapi types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// Whether `toleration` tolerates `taint`: same effect (or any), same key
/// (or any, with `Exists`), and for `Equal` the same value.
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
    match toleration.operator.as_deref().unwrap_or_default() {
        "Exists" => true,
        "" | "Equal" => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The first taint with `effect` that none of `tolerations` tolerates.
pub fn untolerated<'t>(
    tolerations: &[Toleration],
    taints: &'t [Taint],
    effect: &str,
) -> Option<&'t Taint> {
    taints
        .iter()
        .filter(|t| t.effect == effect)
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// One requirement against the value the node has for its key, if any.
pub fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => match (
            value.and_then(number),
            values.first().and_then(|v| number(v)),
        ) {
            (Some(have), Some(bound)) if op == "Gt" => have > bound,
            (Some(have), Some(bound)) => have < bound,
            _ => false,
        },
        _ => false,
    }
}

/// A term: its expressions (on labels) and fields (`metadata.name` only)
/// all hold. An empty term matches nothing.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node_name);
            requirement_matches(r, value)
        })
}

/// The pod's `nodeSelector` and its required node affinity (terms ORed)
/// against the node's labels and name.
pub fn node_affinity_matches(
    spec: &PodSpec,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let selector_holds = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice())
        .unwrap_or_default();
    selector_holds && (terms.is_empty() || terms.iter().any(|t| term_matches(t, labels, node_name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Toleration {
            key: set(key),
            operator: set(operator),
            value: set(value),
            effect: set(effect),
            ..Default::default()
        }
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let t = taint("dedicated", "db", "NoExecute");
        assert!(tolerates(&toleration("dedicated", "Equal", "db", ""), &t));
        assert!(tolerates(
            &toleration("dedicated", "", "db", "NoExecute"),
            &t
        ));
        assert!(!tolerates(&toleration("dedicated", "Equal", "web", ""), &t));
        assert!(!tolerates(
            &toleration("dedicated", "Equal", "db", "NoSchedule"),
            &t
        ));
        assert!(
            tolerates(&toleration("", "Exists", "", ""), &t),
            "tolerates everything"
        );
        assert!(
            !tolerates(&toleration("", "Equal", "", ""), &t),
            "Equal needs a key"
        );
        assert!(!tolerates(
            &toleration("dedicated", "Sometimes", "db", ""),
            &t
        ));
        let taints = [taint("a", "1", "NoSchedule"), t.clone()];
        assert_eq!(untolerated(&[], &taints, "NoExecute"), Some(&t));
        assert_eq!(
            untolerated(
                &[toleration("dedicated", "Exists", "", "")],
                &taints,
                "NoExecute"
            ),
            None
        );
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn requirements_cover_every_operator() {
        assert!(requirement_matches(
            &requirement("k", "In", &["a", "b"]),
            Some("b")
        ));
        assert!(!requirement_matches(&requirement("k", "In", &["a"]), None));
        assert!(requirement_matches(
            &requirement("k", "NotIn", &["a"]),
            None
        ));
        assert!(requirement_matches(
            &requirement("k", "Exists", &[]),
            Some("")
        ));
        assert!(requirement_matches(
            &requirement("k", "DoesNotExist", &[]),
            None
        ));
        assert!(requirement_matches(
            &requirement("k", "Gt", &["3"]),
            Some("4")
        ));
        assert!(!requirement_matches(
            &requirement("k", "Lt", &["3"]),
            Some("x")
        ));
        assert!(!requirement_matches(
            &requirement("k", "Near", &["3"]),
            Some("3")
        ));
    }

    #[test]
    fn node_affinity_ors_terms_ands_expressions_and_needs_the_selector() {
        let labels: BTreeMap<String, String> = [("zone", "a"), ("disk", "ssd")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let term = |reqs: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
            match_expressions: Some(reqs),
            match_fields: None,
        };
        let spec = |terms: Vec<NodeSelectorTerm>, selector: &[(&str, &str)]| PodSpec {
            node_selector: Some(
                selector
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let zone_b = term(vec![requirement("zone", "In", &["b"])]);
        let ssd_in_a = term(vec![
            requirement("zone", "In", &["a"]),
            requirement("disk", "In", &["ssd"]),
        ]);
        assert!(node_affinity_matches(
            &spec(vec![zone_b.clone(), ssd_in_a], &[]),
            &labels,
            "n"
        ));
        assert!(!node_affinity_matches(
            &spec(vec![zone_b], &[]),
            &labels,
            "n"
        ));
        assert!(!node_affinity_matches(
            &spec(vec![], &[("disk", "hdd")]),
            &labels,
            "n"
        ));
        assert!(
            !node_affinity_matches(&spec(vec![term(vec![])], &[]), &labels, "n"),
            "an empty term"
        );
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", "In", &["n"])]),
        };
        assert!(node_affinity_matches(
            &spec(vec![by_name], &[]),
            &labels,
            "n"
        ));
    }
}
