//! What a pod needs done to match its spec: the kubelet's `computePodActions`,
//! as a pure function of the spec and what the runtime has.

use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_core::{ContainerId, ContainerState, ContainerStatus, SandboxId, SandboxState};

use crate::kuberuntime::runtime_pod::{CONTAINER_HASH, RuntimePod, container_hash};
use crate::pod_ext::{ContainerExt, PodExt};
use crate::prober::results::ProbeState;

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
    /// Init containers to start (indices into `initContainers`): the next
    /// one in the init phase, or sidecars to bring back.
    pub start_init: Vec<usize>,
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
            && self.start_init.is_empty()
            && self.start.is_empty()
            && self.kill.is_empty()
    }
}

/// A running container that must be replaced (a failed probe, a changed
/// spec), and whether it starts again: after a failed probe only if
/// `restarts`; after a changed spec always, as the kubelet.
fn replacement(
    container: &Container,
    status: &ContainerStatus,
    probes: &dyn ProbeState,
    restarts: bool,
) -> Option<(ToKill, bool)> {
    if let Some(probe) = probes.unhealthy(&status.id) {
        let kill = ToKill {
            id: status.id.clone(),
            name: container.name.clone(),
            reason: format!(
                "Container {} failed {} probe{}",
                container.name,
                probe.name().to_lowercase(),
                if restarts { ", will be restarted" } else { "" }
            ),
            grace_seconds: probe
                .of(container)
                .and_then(|p| p.termination_grace_period_seconds),
        };
        return Some((kill, restarts));
    }
    let kill = ToKill {
        id: status.id.clone(),
        name: container.name.clone(),
        reason: format!(
            "Container {} definition changed, will be restarted",
            container.name
        ),
        grace_seconds: None,
    };
    spec_changed(container, status).then_some((kill, true))
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

/// Compares `pod`'s spec with `runtime` and says what to do; `probes` tells
/// which running containers failed a probe or have yet to start.
pub fn compute(pod: &Pod, runtime: &RuntimePod, probes: &dyn ProbeState) -> PodActions {
    let mut actions = PodActions::default();
    let Some(spec) = pod.spec.as_ref() else {
        return actions;
    };
    let policy = pod.restart_policy();
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
        // OnFailure: what already succeeded stays done.
        let to_start: Vec<usize> = spec
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !(policy == "OnFailure" && runtime.latest(&c.name).0.is_some_and(succeeded))
            })
            .map(|(i, _)| i)
            .collect();
        // Nothing left to run: the pod is done, no new sandbox (nor init
        // containers run again), as the kubelet.
        if to_start.is_empty() && !spec.containers.is_empty() {
            return actions;
        }
        actions.create_sandbox = true;
        actions.attempt = attempt;
        if inits.is_empty() {
            actions.start = to_start;
        } else {
            actions.start_init.push(0);
        }
        return actions;
    }
    actions.sandbox = sandbox.map(|s| s.id.clone());

    // Init containers run one at a time, in order, until each has succeeded;
    // a sidecar only has to be running (and past its startup probe). Once an
    // app container exists the init phase is over (e.g. its records were
    // garbage-collected).
    let app_started = spec
        .containers
        .iter()
        .any(|c| runtime.latest(&c.name).0.is_some());
    if !app_started {
        for (i, init) in inits.iter().enumerate() {
            let latest = runtime.latest(&init.name).0;
            if init.is_sidecar() {
                match latest {
                    Some(s) if s.state == ContainerState::Running => {
                        if let Some((kill, _)) = replacement(init, s, probes, true) {
                            actions.kill.push(kill);
                            actions.start_init.push(i);
                            return actions;
                        }
                        if init.startup_probe.is_some() && !probes.started(&s.id) {
                            return actions;
                        }
                        continue;
                    }
                    _ => {
                        actions.start_init.push(i);
                        return actions;
                    }
                }
            }
            match latest {
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
                    actions.start_init.push(i);
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
                match replacement(container, s, probes, policy != "Never") {
                    Some((kill, again)) => {
                        actions.kill.push(kill);
                        if again {
                            actions.start.push(i);
                        }
                    }
                    None => keep += 1,
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
    // Nothing runs and nothing will: the pod is done; stop its sandbox (and
    // its sidecars, which only serve the app containers).
    if keep == 0 && actions.start.is_empty() && actions.kill.is_empty() {
        actions.kill_pod = true;
        return actions;
    }
    // Sidecars come back whenever they stop, whatever the pod's policy.
    if app_started {
        for (i, init) in inits.iter().enumerate().filter(|(_, c)| c.is_sidecar()) {
            match runtime.latest(&init.name).0 {
                Some(s) if s.state == ContainerState::Running => {
                    if let Some((kill, _)) = replacement(init, s, probes, true) {
                        actions.kill.push(kill);
                        actions.start_init.push(i);
                    }
                }
                _ => actions.start_init.push(i),
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kuberuntime::runtime_pod::RESTART_COUNT;
    use crate::prober::ProbeType;
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
            mounts: Vec::new(),
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

    /// The same probe results for every container.
    struct Probed {
        unhealthy: Option<ProbeType>,
        started: bool,
    }

    impl Probed {
        fn passing() -> Self {
            Self {
                unhealthy: None,
                started: true,
            }
        }

        fn failed(probe: ProbeType) -> Self {
            Self {
                unhealthy: Some(probe),
                started: true,
            }
        }
    }

    impl ProbeState for Probed {
        fn unhealthy(&self, _: &ContainerId) -> Option<ProbeType> {
            self.unhealthy
        }

        fn started(&self, _: &ContainerId) -> bool {
            self.started
        }
    }

    /// With every probe passing.
    fn compute(pod: &Pod, runtime: &RuntimePod) -> PodActions {
        super::compute(pod, runtime, &Probed::passing())
    }

    #[test]
    fn a_failed_liveness_probe_restarts_the_container_unless_never() {
        let rt = runtime(READY, vec![status("a", Running, 0, 1)]);
        let failed = Probed::failed(ProbeType::Liveness);
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
        let startup = Probed::failed(ProbeType::Startup);
        let a = super::compute(&own_grace, &rt, &startup);
        assert_eq!(a.kill[0].grace_seconds, None, "only the failed probe's");
    }

    /// `pod` with init container `name` made a sidecar.
    fn with_sidecar(mut pod: Pod, name: &str) -> Pod {
        for c in pod
            .spec
            .iter_mut()
            .flat_map(|s| s.init_containers.iter_mut().flatten())
        {
            if c.name == name {
                c.restart_policy = Some("Always".into());
            }
        }
        pod
    }

    /// A status of `pod`'s init container `name`, its spec hash matching.
    fn init_status(pod: &Pod, name: &str, state: ContainerState, age: u64) -> ContainerStatus {
        let mut s = status(name, state, 0, age);
        if let Some(c) = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .find(|c| c.name == name)
        {
            s.annotations
                .insert(CONTAINER_HASH.into(), container_hash(c));
        }
        s
    }

    #[test]
    fn a_sidecar_runs_beside_the_app_and_comes_back_whenever_it_stops() {
        let p = with_sidecar(pod("Never", &["side", "init"], &["a"]), "side");
        let a = compute(&p, &runtime(READY, vec![]));
        assert_eq!((a.start_init.clone(), a.start.len()), (vec![0], 0));
        // Running is enough for the next init container to go.
        let side = init_status(&p, "side", Running, 3);
        let a = compute(&p, &runtime(READY, vec![side.clone()]));
        assert_eq!(a.start_init, vec![1]);
        let done = vec![side.clone(), status("init", Exited, 0, 2)];
        let a = compute(&p, &runtime(READY, done.clone()));
        assert_eq!((a.start_init.clone(), a.start.clone()), (vec![], vec![0]));

        // It restarts even under Never while the app runs ...
        let mut gone = init_status(&p, "side", Exited, 3);
        gone.exit_code = 1;
        let app = status("a", Running, 0, 1);
        let rt = runtime(READY, vec![gone.clone(), status("init", Exited, 0, 2), app]);
        let a = compute(&p, &rt);
        assert_eq!((a.start_init.clone(), a.kill_pod), (vec![0], false));
        // ... and is stopped with the pod once the app is done.
        let finished = status("a", Exited, 0, 1);
        let rt = runtime(READY, vec![side, status("init", Exited, 0, 2), finished]);
        let a = compute(&p, &rt);
        assert!(a.kill_pod && a.start_init.is_empty(), "{a:?}");
    }

    #[test]
    fn a_sidecar_with_a_startup_probe_holds_the_init_phase_until_it_passes() {
        let mut p = with_sidecar(pod("Always", &["side"], &["a"]), "side");
        if let Some(side) = p
            .spec
            .as_mut()
            .and_then(|s| s.init_containers.as_mut())
            .and_then(|i| i.first_mut())
        {
            side.startup_probe = Some(Default::default());
        }
        let rt = runtime(READY, vec![init_status(&p, "side", Running, 1)]);
        let waiting = Probed {
            unhealthy: None,
            started: false,
        };
        assert!(super::compute(&p, &rt, &waiting).is_empty());
        assert_eq!(compute(&p, &rt).start, vec![0]);
        // A failed startup probe replaces the sidecar.
        let a = super::compute(&p, &rt, &Probed::failed(ProbeType::Startup));
        assert_eq!((a.kill.len(), a.start_init.clone()), (1, vec![0]));
    }

    #[test]
    fn a_finished_on_failure_pod_gets_no_new_sandbox_nor_init_run() {
        let p = pod("OnFailure", &["i"], &["a"]);
        let done = RuntimePod {
            uid: "u".into(),
            sandboxes: vec![sandbox(SandboxState::NotReady, 0)],
            containers: vec![status("a", Exited, 0, 1), status("i", Exited, 0, 2)],
            ..Default::default()
        };
        assert!(compute(&p, &done).is_empty(), "{:?}", compute(&p, &done));
        // A failed app container still gets a new sandbox, inits first.
        let failed = RuntimePod {
            containers: vec![status("a", Exited, 1, 1), status("i", Exited, 0, 2)],
            ..done
        };
        let a = compute(&p, &failed);
        assert!(a.create_sandbox && a.start_init == vec![0], "{a:?}");
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
        assert_eq!((a.start_init.clone(), a.start.len()), (vec![0], 0));
    }

    #[test]
    fn init_containers_run_in_order_and_a_failure_blocks_the_app() {
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let a = compute(&p, &runtime(READY, vec![status("i1", Running, 0, 1)]));
        assert!(a.is_empty(), "waits for the running init container: {a:?}");
        let a = compute(&p, &runtime(READY, vec![status("i1", Exited, 0, 1)]));
        assert_eq!(a.start_init, vec![1]);
        let done = vec![status("i2", Exited, 0, 1), status("i1", Exited, 0, 2)];
        assert_eq!(compute(&p, &runtime(READY, done)).start, vec![0]);
        // A failed init container is retried (Always/OnFailure) ...
        let failed = vec![status("i1", Exited, 1, 1)];
        let a = compute(&p, &runtime(READY, failed.clone()));
        assert_eq!((a.start_init.clone(), a.start.len()), (vec![0], 0));
        // ... and fails the pod under Never.
        let a = compute(&pod("Never", &["i1"], &["a"]), &runtime(READY, failed));
        assert!(a.init_failed && a.start_init.is_empty() && a.start.is_empty());
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
