//! What a pod needs done to match its spec: the kubelet's `computePodActions`,
//! as a pure function of the spec and what the runtime has.

use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_core::{ContainerId, ContainerState, ContainerStatus, SandboxId, SandboxState};

use crate::prober::ProbeType;
use crate::runtime_pod::{CONTAINER_HASH, RuntimePod, container_hash};

/// A container to stop, and why (for the Killing event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToKill {
    pub id: ContainerId,
    pub name: String,
    pub reason: String,
    /// A failed probe's own `terminationGracePeriodSeconds`, which replaces
    /// the pod's for this kill.
    pub grace_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop everything (and then, if `create_sandbox`, start over).
    pub kill_pod: bool,
    pub create_sandbox: bool,
    /// The attempt of the sandbox to create.
    pub attempt: u32,
    /// The sandbox containers start in (when not creating one).
    pub sandbox: Option<SandboxId>,
    /// The init container to start next (index into `initContainers`).
    pub next_init: Option<usize>,
    /// App containers to start (indices into `containers`), in order.
    pub start: Vec<usize>,
    pub kill: Vec<ToKill>,
    /// A non-restartable init container failed: the pod has failed.
    pub init_failed: bool,
}

impl PodActions {
    pub fn is_empty(&self) -> bool {
        !self.kill_pod
            && !self.create_sandbox
            && self.next_init.is_none()
            && self.start.is_empty()
            && self.kill.is_empty()
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether a container that stopped with `status` runs again under `policy`.
pub fn should_restart(policy: &str, status: &ContainerStatus) -> bool {
    match status.state {
        ContainerState::Running => false,
        ContainerState::Exited => match policy {
            "Never" => false,
            "OnFailure" => status.exit_code != 0,
            _ => true,
        },
        // Created but never started (e.g. the agent died in between), or unknown.
        ContainerState::Created | ContainerState::Unknown => policy != "Never",
    }
}

fn succeeded(status: &ContainerStatus) -> bool {
    status.state == ContainerState::Exited && status.exit_code == 0
}

fn spec_changed(container: &Container, status: &ContainerStatus) -> bool {
    status
        .annotations
        .get(CONTAINER_HASH)
        .is_some_and(|hash| *hash != container_hash(container))
}

/// Compares `pod`'s spec with `runtime` and says what to do. `unhealthy`
/// names the failed liveness or startup probe of a container, if one failed.
pub fn compute(
    pod: &Pod,
    runtime: &RuntimePod,
    unhealthy: &dyn Fn(&ContainerId) -> Option<ProbeType>,
) -> PodActions {
    let mut actions = PodActions::default();
    let Some(spec) = pod.spec.as_ref() else {
        return actions;
    };
    let policy = restart_policy(pod);
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let sandbox = runtime.latest_sandbox();
    let sandbox_ready = sandbox.is_some_and(|s| s.state == SandboxState::Ready);

    if !sandbox_ready {
        let attempt = sandbox.map_or(0, |s| s.metadata.attempt + 1);
        // Under Never, a pod whose containers already ran is finished, not restarted.
        if sandbox.is_some() && policy == "Never" && !runtime.containers.is_empty() {
            actions.kill_pod = runtime.is_running();
            return actions;
        }
        actions.kill_pod = runtime.is_running();
        actions.create_sandbox = true;
        actions.attempt = attempt;
        if inits.is_empty() {
            actions.start = spec
                .containers
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    // OnFailure: what already succeeded stays done.
                    !(policy == "OnFailure" && runtime.latest(&c.name).0.is_some_and(succeeded))
                })
                .map(|(i, _)| i)
                .collect();
        } else {
            actions.next_init = Some(0);
        }
        return actions;
    }
    actions.sandbox = sandbox.map(|s| s.id.clone());

    // Init containers run one at a time, in order, until each has succeeded.
    // Once an app container exists the init phase is over (e.g. its records
    // were garbage-collected).
    let app_started = spec
        .containers
        .iter()
        .any(|c| runtime.latest(&c.name).0.is_some());
    if !app_started {
        for (i, init) in inits.iter().enumerate() {
            match runtime.latest(&init.name).0 {
                Some(s) if succeeded(s) => continue,
                Some(s) if s.state == ContainerState::Running => return actions,
                Some(s)
                    if !should_restart(
                        if policy == "Never" {
                            "Never"
                        } else {
                            "OnFailure"
                        },
                        s,
                    ) =>
                {
                    actions.init_failed = true;
                    actions.kill_pod = runtime.is_running();
                    return actions;
                }
                _ => {
                    actions.next_init = Some(i);
                    return actions;
                }
            }
        }
    }

    let mut keep = 0;
    for (i, container) in spec.containers.iter().enumerate() {
        match runtime.latest(&container.name).0 {
            None => actions.start.push(i),
            Some(s) if s.state == ContainerState::Running => {
                if let Some(probe) = unhealthy(&s.id) {
                    let restart = policy != "Never";
                    actions.kill.push(ToKill {
                        id: s.id.clone(),
                        name: container.name.clone(),
                        reason: format!(
                            "Container {} failed {} probe{}",
                            container.name,
                            probe.name().to_lowercase(),
                            if restart { ", will be restarted" } else { "" }
                        ),
                        grace_seconds: probe
                            .of(container)
                            .and_then(|p| p.termination_grace_period_seconds),
                    });
                    if restart {
                        actions.start.push(i);
                    }
                } else if spec_changed(container, s) {
                    actions.kill.push(ToKill {
                        id: s.id.clone(),
                        name: container.name.clone(),
                        reason: format!(
                            "Container {} definition changed, will be restarted",
                            container.name
                        ),
                        grace_seconds: None,
                    });
                    actions.start.push(i);
                } else {
                    keep += 1;
                }
            }
            Some(s)
                if should_restart(policy, s) || spec_changed(container, s) && policy != "Never" =>
            {
                actions.start.push(i)
            }
            Some(_) => {}
        }
    }
    // Nothing runs and nothing will: the pod is done; stop its sandbox.
    if keep == 0 && actions.start.is_empty() && actions.kill.is_empty() {
        actions.kill_pod = true;
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_pod::RESTART_COUNT;
    use k8s_openapi::api::core::v1::PodSpec;
    use std::time::{Duration, SystemTime};
    use wasmlet_core::{ContainerMetadata, Labels, Namespaces, SandboxMetadata, SandboxStatus};

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: Some("busybox:1.35".into()),
            ..Default::default()
        }
    }

    fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u".into());
        pod.spec = Some(PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: Some(inits.iter().map(|n| container(n)).collect()),
            containers: apps.iter().map(|n| container(n)).collect(),
            ..Default::default()
        });
        pod
    }

    fn sandbox(state: SandboxState, attempt: u32) -> SandboxStatus {
        SandboxStatus {
            id: format!("s{attempt}").into(),
            metadata: SandboxMetadata {
                attempt,
                ..Default::default()
            },
            state,
            created_at: SystemTime::UNIX_EPOCH,
            ip: None,
            additional_ips: Vec::new(),
            namespaces: Namespaces::default(),
            labels: Labels::new(),
            annotations: Labels::new(),
            runtime_handler: String::new(),
        }
    }

    fn status(name: &str, state: ContainerState, exit_code: i32, age: u64) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-{age}").into(),
            metadata: ContainerMetadata {
                name: name.into(),
                attempt: 0,
            },
            state,
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1000 - age),
            started_at: None,
            finished_at: None,
            exit_code,
            image: String::new(),
            image_ref: String::new(),
            reason: String::new(),
            message: String::new(),
            labels: Labels::new(),
            annotations: Labels::from([
                (CONTAINER_HASH.into(), container_hash(&container(name))),
                (RESTART_COUNT.into(), "0".into()),
            ]),
            log_path: Default::default(),
            resources: None,
        }
    }

    fn runtime(
        sandbox_state: Option<SandboxState>,
        containers: Vec<ContainerStatus>,
    ) -> RuntimePod {
        RuntimePod {
            uid: "u".into(),
            sandboxes: sandbox_state.map(|s| sandbox(s, 0)).into_iter().collect(),
            containers,
            ..Default::default()
        }
    }

    use ContainerState::*;
    const READY: Option<SandboxState> = Some(SandboxState::Ready);

    /// With every probe passing.
    fn compute(pod: &Pod, runtime: &RuntimePod) -> PodActions {
        super::compute(pod, runtime, &|_| None)
    }

    #[test]
    fn a_failed_liveness_probe_restarts_the_container_unless_never() {
        let rt = runtime(READY, vec![status("a", Running, 0, 1)]);
        let failed = |_: &ContainerId| Some(ProbeType::Liveness);
        let a = super::compute(&pod("Always", &[], &["a"]), &rt, &failed);
        assert_eq!(a.kill.len(), 1);
        assert!(
            a.kill[0]
                .reason
                .contains("failed liveness probe, will be restarted")
        );
        assert_eq!(a.start, vec![0]);
        assert_eq!(a.kill[0].grace_seconds, None, "the pod's grace");
        let a = super::compute(&pod("Never", &[], &["a"]), &rt, &failed);
        assert_eq!((a.kill.len(), a.start.len()), (1, 0));

        // A liveness probe's own terminationGracePeriodSeconds is the kill's.
        let mut own_grace = pod("Always", &[], &["a"]);
        if let Some(spec) = own_grace.spec.as_mut() {
            spec.containers[0].liveness_probe = Some(k8s_openapi::api::core::v1::Probe {
                termination_grace_period_seconds: Some(7),
                ..Default::default()
            });
        }
        let a = super::compute(&own_grace, &rt, &failed);
        assert_eq!(a.kill[0].grace_seconds, Some(7));
        let startup = |_: &ContainerId| Some(ProbeType::Startup);
        let a = super::compute(&own_grace, &rt, &startup);
        assert_eq!(a.kill[0].grace_seconds, None, "only the failed probe's");
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_then_its_containers() {
        let a = compute(&pod("Always", &[], &["a", "b"]), &RuntimePod::default());
        assert!(a.create_sandbox && !a.kill_pod);
        assert_eq!((a.attempt, a.start.clone()), (0, vec![0, 1]));
        let a = compute(
            &pod("Always", &["i1", "i2"], &["a"]),
            &RuntimePod::default(),
        );
        assert_eq!((a.next_init, a.start.len()), (Some(0), 0));
    }

    #[test]
    fn init_containers_run_in_order_and_a_failure_blocks_the_app() {
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let a = compute(&p, &runtime(READY, vec![status("i1", Running, 0, 1)]));
        assert!(a.is_empty(), "waits for the running init container: {a:?}");
        let a = compute(&p, &runtime(READY, vec![status("i1", Exited, 0, 1)]));
        assert_eq!(a.next_init, Some(1));
        let done = vec![status("i2", Exited, 0, 1), status("i1", Exited, 0, 2)];
        assert_eq!(compute(&p, &runtime(READY, done)).start, vec![0]);
        // A failed init container is retried (Always/OnFailure) ...
        let failed = vec![status("i1", Exited, 1, 1)];
        let a = compute(&p, &runtime(READY, failed.clone()));
        assert_eq!((a.next_init, a.start.len()), (Some(0), 0));
        // ... and fails the pod under Never.
        let a = compute(&pod("Never", &["i1"], &["a"]), &runtime(READY, failed));
        assert!(a.init_failed && a.next_init.is_none() && a.start.is_empty());
    }

    #[test]
    fn restart_policies() {
        let exited = |code| runtime(READY, vec![status("a", Exited, code, 1)]);
        for (policy, code, restart) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("Never", 1, false),
        ] {
            let a = compute(&pod(policy, &[], &["a"]), &exited(code));
            assert_eq!(!a.start.is_empty(), restart, "{policy} exit {code}");
            assert_eq!(
                a.kill_pod, !restart,
                "{policy} exit {code}: stop the finished pod"
            );
        }
    }

    #[test]
    fn a_changed_spec_restarts_only_that_container() {
        let p = pod("Always", &[], &["a", "b"]);
        let mut a_old = status("a", Running, 0, 1);
        a_old
            .annotations
            .insert(CONTAINER_HASH.into(), "stale".into());
        let actions = compute(&p, &runtime(READY, vec![a_old, status("b", Running, 0, 1)]));
        assert_eq!(actions.kill.len(), 1);
        assert_eq!(actions.kill[0].name, "a");
        assert_eq!(actions.start, vec![0]);
        assert!(!actions.kill_pod);
    }

    #[test]
    fn a_dead_sandbox_is_recreated_with_the_next_attempt() {
        let rt = runtime(
            Some(SandboxState::NotReady),
            vec![status("a", Running, 0, 1)],
        );
        let a = compute(&pod("Always", &[], &["a"]), &rt);
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.attempt, 1);
        let rt = runtime(
            Some(SandboxState::NotReady),
            vec![status("a", Exited, 0, 1)],
        );
        let a = compute(&pod("Never", &[], &["a"]), &rt);
        assert!(
            !a.create_sandbox,
            "Never: a finished pod is not started again"
        );
    }

    #[test]
    fn a_running_pod_in_line_with_its_spec_needs_nothing() {
        let p = pod("Always", &["i"], &["a"]);
        let rt = runtime(
            READY,
            vec![status("a", Running, 0, 1), status("i", Exited, 0, 2)],
        );
        assert!(compute(&p, &rt).is_empty());
    }
}
