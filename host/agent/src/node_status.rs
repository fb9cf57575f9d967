//! The Node's conditions, as the kubelet's node status setters make them:
//! Ready from the runtime's status and the PLEG's health, and the three
//! pressure conditions from what the node observes against the kubelet's
//! default hard eviction thresholds. A condition's transition time moves
//! only when its status does; its heartbeat with every report.

use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use wasmlet_core::RuntimeStatus;

/// What the Ready condition is made of.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    /// The runtime's last status, or why there is none.
    pub runtime: Option<Result<RuntimeStatus, String>>,
    /// The PLEG's relist health (`pleg was last seen active …`).
    pub pleg: Result<(), String>,
}

/// Whether the node is short of memory, disk or process IDs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

impl NodeHealth {
    /// The kubelet's reasons the node is not ready, in its order and words.
    fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        match &self.runtime {
            None => errors.push("container runtime status check may not have completed yet".into()),
            Some(Err(_)) => errors.push("container runtime is down".into()),
            Some(Ok(_)) => {}
        }
        if let Err(pleg) = &self.pleg {
            errors.push(format!("PLEG is not healthy: {pleg}"));
        }
        if let Some(Ok(status)) = &self.runtime {
            for (kind, what) in [
                ("RuntimeReady", "container runtime not ready"),
                ("NetworkReady", "container runtime network not ready"),
            ] {
                match status.condition(kind) {
                    Some(c) if c.status => {}
                    Some(c) => errors.push(format!(
                        "{what}: {kind}=false reason:{} message:{}",
                        c.reason, c.message
                    )),
                    None => errors.push(format!("{what}: {kind} is missing")),
                }
            }
        }
        errors
    }
}

/// Several errors as Kubernetes' aggregate error prints them.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        ..NodeCondition::default()
    }
}

/// The node's conditions now, given the previous ones (for their
/// transition times).
pub fn conditions(
    previous: &[NodeCondition],
    health: &NodeHealth,
    pressure: Pressure,
    now: &Time,
) -> Vec<NodeCondition> {
    let pressure_condition = |kind: &str, under: bool, yes: (&str, &str), no: (&str, &str)| {
        let (reason, message) = if under { yes } else { no };
        condition(kind, under, reason, message)
    };
    let errors = health.errors();
    let ready = if errors.is_empty() {
        condition(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status",
        )
    } else {
        condition("Ready", false, "KubeletNotReady", &aggregate(&errors))
    };
    let fresh = [
        pressure_condition(
            "MemoryPressure",
            pressure.memory,
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
        ),
        pressure_condition(
            "DiskPressure",
            pressure.disk,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        pressure_condition(
            "PIDPressure",
            pressure.pid,
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        ),
        ready,
    ];
    fresh
        .into_iter()
        .map(|mut c| {
            let before = previous.iter().find(|p| p.type_ == c.type_);
            c.last_heartbeat_time = Some(now.clone());
            c.last_transition_time = match before {
                Some(p) if p.status == c.status => p.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
            c
        })
        .collect()
}

/// The kubelet's node events for the conditions whose status `current`
/// changed from `previous` (all of them on a first status): `NodeReady`,
/// `NodeHasSufficientMemory`, ...
pub fn transitions(previous: &[NodeCondition], current: &[NodeCondition]) -> Vec<&'static str> {
    current
        .iter()
        .filter(|c| {
            previous
                .iter()
                .find(|p| p.type_ == c.type_)
                .is_none_or(|p| p.status != c.status)
        })
        .filter_map(|c| {
            let on = c.status == "True";
            Some(match (c.type_.as_str(), on) {
                ("Ready", true) => "NodeReady",
                ("Ready", false) => "NodeNotReady",
                ("MemoryPressure", true) => "NodeHasInsufficientMemory",
                ("MemoryPressure", false) => "NodeHasSufficientMemory",
                ("DiskPressure", true) => "NodeHasDiskPressure",
                ("DiskPressure", false) => "NodeHasNoDiskPressure",
                ("PIDPressure", true) => "NodeHasInsufficientPID",
                ("PIDPressure", false) => "NodeHasSufficientPID",
                _ => return None,
            })
        })
        .collect()
}

/// Whether `new` says something `old` did not, heartbeats aside (the
/// kubelet's nodeStatusHasChanged): a change is reported at once, the
/// same status only every report period.
pub fn changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let without_beats = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    without_beats(old) != without_beats(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlet_core::RuntimeCondition;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("a time"))
    }

    fn runtime(network: bool) -> RuntimeStatus {
        let c = |kind: &str, status| RuntimeCondition {
            kind: kind.into(),
            status,
            reason: if status {
                String::new()
            } else {
                "NetworkPluginNotReady".into()
            },
            message: if status {
                String::new()
            } else {
                "cni plugin not initialized".into()
            },
        };
        RuntimeStatus {
            conditions: vec![c("RuntimeReady", true), c("NetworkReady", network)],
        }
    }

    fn ready(conditions: &[NodeCondition]) -> &NodeCondition {
        conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready")
    }

    #[test]
    fn ready_follows_the_runtime_and_the_pleg_in_the_kubelets_words() {
        let healthy = NodeHealth {
            runtime: Some(Ok(runtime(true))),
            pleg: Ok(()),
        };
        let now = conditions(&[], &healthy, Pressure::default(), &at(10));
        assert_eq!(now.len(), 4);
        assert_eq!(ready(&now).status, "True");
        assert_eq!(ready(&now).reason.as_deref(), Some("KubeletReady"));

        let sick = NodeHealth {
            runtime: Some(Ok(runtime(false))),
            pleg: Err("pleg was last seen active 3m0s ago; threshold is 3m0s".into()),
        };
        let later = conditions(&now, &sick, Pressure::default(), &at(20));
        assert_eq!(ready(&later).status, "False");
        assert_eq!(
            ready(&later).message.as_deref(),
            Some(
                "[PLEG is not healthy: pleg was last seen active 3m0s ago; threshold is 3m0s, \
                 container runtime network not ready: NetworkReady=false \
                 reason:NetworkPluginNotReady message:cni plugin not initialized]"
            )
        );
        let down = NodeHealth {
            runtime: Some(Err("connection refused".into())),
            pleg: Ok(()),
        };
        let down = conditions(&later, &down, Pressure::default(), &at(30));
        assert_eq!(
            ready(&down).message.as_deref(),
            Some("container runtime is down")
        );
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let healthy = NodeHealth {
            runtime: Some(Ok(runtime(true))),
            pleg: Ok(()),
        };
        let first = conditions(&[], &healthy, Pressure::default(), &at(10));
        let same = conditions(&first, &healthy, Pressure::default(), &at(20));
        assert_eq!(ready(&same).last_transition_time, Some(at(10)));
        assert_eq!(ready(&same).last_heartbeat_time, Some(at(20)));
        let pressed = Pressure {
            memory: true,
            ..Pressure::default()
        };
        let moved = conditions(&same, &healthy, pressed, &at(30));
        let memory = moved
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .expect("memory");
        assert_eq!(memory.status, "True");
        assert_eq!(memory.last_transition_time, Some(at(30)));

        let status = |c: Vec<NodeCondition>| NodeStatus {
            conditions: Some(c),
            ..NodeStatus::default()
        };
        assert!(!changed(&status(first.clone()), &status(same)));
        assert!(changed(&status(first), &status(moved)));
    }

    #[test]
    fn a_first_status_and_each_change_are_the_kubelets_node_events() {
        let healthy = NodeHealth {
            runtime: Some(Ok(runtime(true))),
            pleg: Ok(()),
        };
        let first = conditions(&[], &healthy, Pressure::default(), &at(10));
        assert_eq!(
            transitions(&[], &first),
            [
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeHasSufficientPID",
                "NodeReady"
            ]
        );
        let same = conditions(&first, &healthy, Pressure::default(), &at(20));
        assert!(transitions(&first, &same).is_empty());
        let sick = NodeHealth {
            runtime: Some(Ok(runtime(false))),
            pleg: Ok(()),
        };
        let pressed = Pressure {
            disk: true,
            ..Pressure::default()
        };
        let worse = conditions(&same, &sick, pressed, &at(30));
        assert_eq!(
            transitions(&same, &worse),
            ["NodeHasDiskPressure", "NodeNotReady"]
        );
    }
}
