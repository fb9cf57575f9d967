//! Resource fit, as the kubelet admits pods: the pod's effective requests
//! (the larger of its app containers' sum and its largest init container,
//! sidecars counting with the app containers) must fit in the node's
//! allocatable minus the requests of the pods already running.

use std::collections::BTreeMap;

use wasmlet_plugin_sdk::admission::{
    self, ContainerKind, Decision, Error, Guest, NodeInfo, Pod, Quantity,
};

/// Sums saturate: quantities may be as large as i64::MAX.
fn add(total: &mut i64, milli: i64) {
    *total = total.saturating_add(milli);
}

/// Effective requests of `pod` in milli-units, by resource name.
pub fn pod_requests(pod: &Pod) -> BTreeMap<String, i64> {
    let mut apps: BTreeMap<String, i64> = BTreeMap::new();
    let mut init_peak: BTreeMap<String, i64> = BTreeMap::new();
    let mut sidecars: BTreeMap<String, i64> = BTreeMap::new();
    for c in &pod.containers {
        // A container with a limit but no request requests its limit.
        let mut own: BTreeMap<&str, i64> = c
            .resources
            .limits
            .iter()
            .map(|q| (q.name.as_str(), q.milli))
            .collect();
        own.extend(
            c.resources
                .requests
                .iter()
                .map(|q| (q.name.as_str(), q.milli)),
        );
        for (name, milli) in own {
            match c.kind {
                ContainerKind::App => add(apps.entry(name.into()).or_default(), milli),
                ContainerKind::Sidecar => {
                    add(apps.entry(name.into()).or_default(), milli);
                    add(sidecars.entry(name.into()).or_default(), milli);
                }
                ContainerKind::Init => {
                    // An init container runs beside the sidecars started before it.
                    let with_sidecars =
                        milli.saturating_add(sidecars.get(name).copied().unwrap_or(0));
                    let peak = init_peak.entry(name.into()).or_default();
                    *peak = (*peak).max(with_sidecars);
                }
            }
        }
    }
    for (name, peak) in init_peak {
        let total = apps.entry(name).or_default();
        *total = (*total).max(peak);
    }
    apps
}

fn lookup(list: &[Quantity], name: &str) -> Option<i64> {
    list.iter().find(|q| q.name == name).map(|q| q.milli)
}

/// Milli-units as the kubelet's message shows them: millicores for cpu,
/// whole units for everything else.
fn shown(name: &str, milli: i64) -> i64 {
    if name == "cpu" {
        milli
    } else {
        milli.div_euclid(1000) + i64::from(milli.rem_euclid(1000) != 0)
    }
}

/// An extended resource (`example.com/gpu`): a domain-qualified name
/// outside `kubernetes.io`, and not a quota's `requests.` name.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// The first resource that does not fit, as (reason, message).
pub fn misfit(pod: &Pod, node: &NodeInfo, active: &[Pod]) -> Option<(String, String)> {
    let allocatable = if node.allocatable.is_empty() {
        &node.capacity
    } else {
        &node.allocatable
    };
    let mut wanted = pod_requests(pod);
    wanted.insert("pods".into(), 1000);
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    for other in active {
        for (name, milli) in pod_requests(other) {
            add(used.entry(name).or_default(), milli);
        }
        add(used.entry("pods".into()).or_default(), 1000);
    }
    for (name, requested) in wanted {
        if requested <= 0 {
            continue;
        }
        let capacity = lookup(allocatable, &name);
        // As the kubelet (removeMissingExtendedResources): a request for an
        // extended resource the node does not list is dropped, not failed.
        if capacity.is_none() && is_extended(&name) {
            continue;
        }
        let capacity = capacity.unwrap_or(0);
        let in_use = used.get(&name).copied().unwrap_or(0);
        if requested.saturating_add(in_use) > capacity {
            return Some((
                format!("OutOf{name}"),
                format!(
                    "Node didn't have enough resource: {name}, requested: {}, used: {}, capacity: {}",
                    shown(&name, requested),
                    shown(&name, in_use),
                    shown(&name, capacity)
                ),
            ));
        }
    }
    None
}

struct NodeResources;

impl Guest for NodeResources {
    fn validate_settings() -> Result<(), Error> {
        Ok(())
    }

    fn admit(pod: Pod, node: NodeInfo, active: Vec<Pod>) -> Result<Decision, Error> {
        Ok(match misfit(&pod, &node, &active) {
            None => admission::admit(),
            Some((reason, message)) => admission::reject(reason, message),
        })
    }
}

wasmlet_plugin_sdk::admission::export_admission!(NodeResources);
