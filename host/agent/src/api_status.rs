//! Pod status as the kubelet computes it: phase, conditions, container statuses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use wasmlet_core::{ContainerState as RtState, ContainerStatus as RtStatus, SandboxState};

use crate::kuberuntime::runtime_pod::{RuntimePod, pod_ip, restart_count};
use crate::pod_ext::{ContainerExt, PodExt};
use crate::prober::results::{ProbeResults, ProbeType};

/// The kubelet's reasons for a container that is not running (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingReason {
    ContainerCreating,
    PodInitializing,
    CrashLoopBackOff,
    ErrImageInspect,
    ErrImageNeverPull,
    ImagePullBackOff,
    ErrImagePull,
    CreateContainerConfigError,
    CreateContainerError,
    RunContainerError,
    PostStartHookError,
}

impl WaitingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerCreating => "ContainerCreating",
            Self::PodInitializing => "PodInitializing",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::ErrImageInspect => "ErrImageInspect",
            Self::ErrImageNeverPull => "ErrImageNeverPull",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::ErrImagePull => "ErrImagePull",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::CreateContainerError => "CreateContainerError",
            Self::RunContainerError => "RunContainerError",
            Self::PostStartHookError => "PostStartHookError",
        }
    }
}

/// Why a container is not running, as its status should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: WaitingReason,
    pub message: String,
}

impl Waiting {
    pub fn new(reason: WaitingReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The pod phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

fn status_of<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn exit_code(s: &ContainerStatus) -> Option<i32> {
    s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

fn last_exit_code(s: &ContainerStatus) -> Option<i32> {
    s.last_state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn is_waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}

/// The pod's phase from its spec and the statuses of its containers, following
/// the kubelet's `getPhase`. `terminal`: the pod worker has finished the pod
/// (no container will be started again).
pub fn pod_phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    terminal: bool,
) -> Phase {
    let Some(spec) = pod.spec.as_ref() else {
        return Phase::Pending;
    };
    let restart_policy = pod.restart_policy();
    let init_containers = spec.init_containers.as_deref().unwrap_or_default();

    let (mut pending_init, mut failed_init) = (0, 0);
    for c in init_containers.iter().filter(|c| !c.is_sidecar()) {
        match status_of(init_statuses, &c.name) {
            Some(s) if exit_code(s) == Some(0) => {}
            Some(s) if exit_code(s).is_some() => failed_init += 1,
            Some(s) if is_waiting(s) && last_exit_code(s).is_some_and(|code| code != 0) => {
                failed_init += 1
            }
            _ => pending_init += 1,
        }
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    // Sidecars count once they are up; before that they hold the pod in Pending.
    for c in init_containers.iter().filter(|c| c.is_sidecar()) {
        match status_of(init_statuses, &c.name) {
            None => unknown += 1,
            Some(s) if is_running(s) => running += 1,
            Some(s) if exit_code(s).is_some() || last_exit_code(s).is_some() => {}
            Some(_) => waiting += 1,
        }
    }
    for c in &spec.containers {
        match status_of(statuses, &c.name) {
            None => unknown += 1,
            Some(s) if is_running(s) => running += 1,
            Some(s) if exit_code(s).is_some() => {
                stopped += 1;
                if exit_code(s) == Some(0) {
                    succeeded += 1;
                }
            }
            // Waiting after having run once: it is restarting (or crash-looping).
            Some(s) if is_waiting(s) && last_exit_code(s).is_some() => stopped += 1,
            Some(s) if is_waiting(s) => waiting += 1,
            Some(_) => unknown += 1,
        }
    }

    if failed_init > 0 && restart_policy == "Never" {
        return Phase::Failed;
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 && unknown == 0 {
        return Phase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        // A terminal pod restarts nothing: its phase is its containers' outcome.
        if terminal {
            return if stopped == succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        return match restart_policy {
            "Always" => Phase::Running,
            _ if stopped == succeeded => Phase::Succeeded,
            "Never" => Phase::Failed,
            // OnFailure: the failed ones will be restarted.
            _ => Phase::Running,
        };
    }
    Phase::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn pod(restart: &str, inits: serde_json::Value, containers: &[&str]) -> Pod {
        let containers: Vec<_> = containers
            .iter()
            .map(|n| json!({"name": n, "image": "i"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": restart, "initContainers": inits, "containers": containers}
        }))
        .expect("pod")
    }

    pub(super) fn status(
        name: &str,
        state: serde_json::Value,
        last: serde_json::Value,
        ready: bool,
    ) -> ContainerStatus {
        serde_json::from_value(json!({
            "name": name, "image": "i", "imageID": "", "ready": ready, "restartCount": 0,
            "state": state, "lastState": last
        }))
        .expect("status")
    }

    fn st(name: &str, state: serde_json::Value, last: serde_json::Value) -> ContainerStatus {
        status(name, state, last, false)
    }

    fn running(name: &str) -> ContainerStatus {
        st(name, json!({"running": {}}), json!({}))
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        st(name, json!({"terminated": {"exitCode": code}}), json!({}))
    }

    fn waiting(name: &str, last_exit: Option<i32>) -> ContainerStatus {
        let last = last_exit.map_or(json!({}), |c| json!({"terminated": {"exitCode": c}}));
        st(
            name,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            last,
        )
    }

    #[test]
    fn pending_until_every_container_has_a_status() {
        let p = pod("Always", json!([]), &["a", "b"]);
        assert_eq!(pod_phase(&p, &[], &[running("a")], false), Phase::Pending);
        assert_eq!(
            pod_phase(&p, &[], &[running("a"), running("b")], false),
            Phase::Running
        );
        assert_eq!(
            pod_phase(&p, &[], &[running("a"), waiting("b", None)], false),
            Phase::Pending
        );
    }

    #[test]
    fn exited_containers_follow_the_restart_policy() {
        for (policy, codes, want) in [
            ("Always", [0, 1], Phase::Running),
            ("Always", [0, 0], Phase::Running),
            ("OnFailure", [0, 0], Phase::Succeeded),
            ("OnFailure", [0, 1], Phase::Running),
            ("Never", [0, 0], Phase::Succeeded),
            ("Never", [0, 1], Phase::Failed),
        ] {
            let p = pod(policy, json!([]), &["a", "b"]);
            let statuses = [exited("a", codes[0]), exited("b", codes[1])];
            assert_eq!(
                pod_phase(&p, &[], &statuses, false),
                want,
                "{policy} {codes:?}"
            );
        }
    }

    #[test]
    fn a_crash_looping_container_keeps_an_always_pod_running() {
        let p = pod("Always", json!([]), &["a"]);
        assert_eq!(
            pod_phase(&p, &[], &[waiting("a", Some(1))], false),
            Phase::Running
        );
    }

    #[test]
    fn terminal_pods_report_their_outcome() {
        let p = pod("Always", json!([]), &["a"]);
        assert_eq!(
            pod_phase(&p, &[], &[exited("a", 0)], true),
            Phase::Succeeded
        );
        assert_eq!(pod_phase(&p, &[], &[exited("a", 137)], true), Phase::Failed);
    }

    #[test]
    fn init_containers_hold_the_pod_pending_and_can_fail_it() {
        let p = pod("Never", json!([{"name": "init", "image": "i"}]), &["a"]);
        assert_eq!(
            pod_phase(&p, &[running("init")], &[], false),
            Phase::Pending
        );
        assert_eq!(
            pod_phase(&p, &[exited("init", 2)], &[], false),
            Phase::Failed
        );
        assert_eq!(
            pod_phase(&p, &[exited("init", 0)], &[running("a")], false),
            Phase::Running
        );

        let retried = pod("Always", json!([{"name": "init", "image": "i"}]), &["a"]);
        assert_eq!(
            pod_phase(&retried, &[waiting("init", Some(2))], &[], false),
            Phase::Pending
        );
    }

    #[test]
    fn a_sidecar_counts_as_running_once_started() {
        let p = pod(
            "Always",
            json!([{"name": "proxy", "image": "i", "restartPolicy": "Always"}]),
            &["a"],
        );
        assert_eq!(
            pod_phase(&p, &[], &[running("a")], false),
            Phase::Pending,
            "sidecar without status"
        );
        assert_eq!(
            pod_phase(&p, &[running("proxy")], &[running("a")], false),
            Phase::Running
        );
    }
}

/// One pod condition as the kubelet reports it (transition times are the
/// status manager's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: bool,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
}

impl Condition {
    fn holds(kind: &'static str) -> Self {
        Self {
            kind,
            status: true,
            reason: None,
            message: None,
        }
    }

    fn fails(kind: &'static str, reason: &'static str, message: Option<String>) -> Self {
        Self {
            kind,
            status: false,
            reason: Some(reason),
            message,
        }
    }
}

fn is_ready(s: &ContainerStatus) -> bool {
    s.ready
}

/// The conditions of a pod, in the kubelet's order: PodReadyToStartContainers,
/// Initialized, Ready, ContainersReady, PodScheduled. `sandbox_ready`: the
/// pod's sandbox runs and its network is set up.
pub fn pod_conditions(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: Phase,
    sandbox_ready: bool,
) -> Vec<Condition> {
    let (init_containers, containers) = (pod.init_containers(), pod.app_containers());

    let ready_to_start = if sandbox_ready {
        Condition::holds("PodReadyToStartContainers")
    } else {
        Condition {
            kind: "PodReadyToStartContainers",
            status: false,
            reason: None,
            message: None,
        }
    };

    // Init containers are done when each exited 0 (sidecars: once started).
    let incomplete: Vec<&str> = init_containers
        .iter()
        .filter(|c| match status_of(init_statuses, &c.name) {
            None => true,
            Some(s) if c.is_sidecar() => !is_running(s) && s.started != Some(true),
            Some(s) => exit_code(s) != Some(0),
        })
        .map(|c| c.name.as_str())
        .collect();
    let initialized = if incomplete.is_empty() || phase == Phase::Succeeded {
        Condition::holds("Initialized")
    } else {
        Condition::fails(
            "Initialized",
            "ContainersNotInitialized",
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };

    let unready: Vec<&str> = init_containers
        .iter()
        .filter(|c| c.is_sidecar())
        .filter(|c| !status_of(init_statuses, &c.name).is_some_and(is_ready))
        .chain(
            containers
                .iter()
                .filter(|c| !status_of(statuses, &c.name).is_some_and(is_ready)),
        )
        .map(|c| c.name.as_str())
        .collect();
    let containers_ready = |kind: &'static str| {
        if phase == Phase::Succeeded {
            Condition::fails(kind, "PodCompleted", None)
        } else if unready.is_empty() {
            Condition::holds(kind)
        } else {
            Condition::fails(
                kind,
                "ContainersNotReady",
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            )
        }
    };
    let ready = match readiness_gates(pod) {
        Some(message) if unready.is_empty() && phase != Phase::Succeeded => {
            Condition::fails("Ready", "ReadinessGatesNotReady", Some(message))
        }
        _ => containers_ready("Ready"),
    };
    vec![
        ready_to_start,
        initialized,
        ready,
        containers_ready("ContainersReady"),
        // The agent is the scheduler of its static pods.
        Condition::holds("PodScheduled"),
    ]
}

/// Why the pod's readiness gates hold it back, if they do: each gate's
/// condition, as others set it on the API server, must be True.
fn readiness_gates(pod: &Pod) -> Option<String> {
    let gates = pod.spec.as_ref()?.readiness_gates.as_deref()?;
    let set = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let unready: Vec<String> = gates
        .iter()
        .filter_map(|gate| {
            let kind = &gate.condition_type;
            match set.iter().find(|c| c.type_ == *kind) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {kind:?} does not exist."
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {kind:?} is not \"True\", but {}",
                    c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    (!unready.is_empty()).then(|| unready.join(", "))
}

/// What the status of one pod is computed from.
#[derive(Debug)]
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a RuntimePod,
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// No container of the pod will start again (terminated, or rejected).
    pub terminal: bool,
    pub host_ip: Option<IpAddr>,
    pub start_time: Option<&'a Time>,
    /// Readiness and startup results; none: every running container is ready.
    pub probes: Option<&'a ProbeResults>,
}

/// A runtime timestamp as an API time.
pub fn time(at: SystemTime) -> Time {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Time(
        k8s_openapi::jiff::Timestamp::new(since.as_secs() as i64, since.subsec_nanos() as i32)
            .unwrap_or_default(),
    )
}

fn terminated(c: &RtStatus) -> ContainerStateTerminated {
    let reason = match (c.reason.as_str(), c.exit_code) {
        ("OOMKilled", _) => "OOMKilled",
        (_, 0) => "Completed",
        _ => "Error",
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason.into()),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: c.started_at.map(time),
        finished_at: c.finished_at.map(time),
        container_id: Some(status_container_id(&c.id)),
        ..Default::default()
    }
}

/// A container's ID as the API's status gives it: `<runtime>://<id>`.
pub fn status_container_id(id: &wasmlet_core::ContainerId) -> String {
    format!("containerd://{id}")
}

fn waiting_state(reason: WaitingReason, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.as_str().into()),
            message,
        }),
        ..Default::default()
    }
}

/// The kubelet's container status for `spec`, from its newest two runtime
/// containers and why it waits, if it does.
fn container_status(
    spec: &Container,
    runtime: &RuntimePod,
    waiting: Option<&Waiting>,
    default_reason: WaitingReason,
    probes: Option<&ProbeResults>,
) -> ContainerStatus {
    let (latest, previous) = runtime.latest(&spec.name);
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        ..Default::default()
    };
    let Some(latest) = latest else {
        let (reason, message) = waiting.map_or((default_reason, None), |w| {
            (w.reason, Some(w.message.clone()))
        });
        status.state = Some(waiting_state(reason, message));
        return status;
    };
    status.container_id = Some(status_container_id(&latest.id));
    status.image_id = latest.image_ref.clone();
    status.restart_count = restart_count(latest);
    let (state, last) = match latest.state {
        RtState::Running => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: latest.started_at.map(time),
                }),
                ..Default::default()
            },
            previous
                .filter(|p| p.state == RtState::Exited)
                .map(terminated),
        ),
        RtState::Exited => match waiting {
            // It will be started again: waiting, with the run that ended as last state.
            Some(w) => (
                waiting_state(w.reason, Some(w.message.clone())),
                Some(terminated(latest)),
            ),
            None => (
                ContainerState {
                    terminated: Some(terminated(latest)),
                    ..Default::default()
                },
                previous
                    .filter(|p| p.state == RtState::Exited)
                    .map(terminated),
            ),
        },
        RtState::Created | RtState::Unknown => (
            waiting_state(
                waiting.map_or(WaitingReason::ContainerCreating, |w| w.reason),
                waiting.map(|w| w.message.clone()),
            ),
            None,
        ),
    };
    let running = state.running.is_some();
    status.state = Some(state);
    status.last_state = last.map(|t| ContainerState {
        terminated: Some(t),
        ..Default::default()
    });
    // Started once its startup probe passed; ready once started and its
    // readiness probe passed (a probe that is not there passes).
    let passed = |probe: bool, kind: ProbeType| {
        !probe || probes.is_some_and(|p| p.get(&latest.id, kind) == Some(true))
    };
    let started = running && passed(spec.startup_probe.is_some(), ProbeType::Startup);
    status.started = Some(started);
    status.ready = started && passed(spec.readiness_probe.is_some(), ProbeType::Readiness);
    status
}

/// The pod's API status, as the kubelet's `generateAPIPodStatus`.
pub fn api_status(input: StatusInput<'_>) -> PodStatus {
    let StatusInput {
        pod,
        runtime,
        waiting,
        terminal,
        host_ip,
        start_time,
        probes,
    } = input;
    let (inits, apps) = (pod.init_containers(), pod.app_containers());
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| {
            container_status(
                c,
                runtime,
                waiting.get(&c.name),
                WaitingReason::PodInitializing,
                probes,
            )
        })
        .collect();
    let initializing = !inits.is_empty()
        && apps.iter().all(|c| runtime.latest(&c.name).0.is_none())
        && init_statuses.iter().any(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        });
    let app_default = if initializing {
        WaitingReason::PodInitializing
    } else {
        WaitingReason::ContainerCreating
    };
    let statuses: Vec<ContainerStatus> = apps
        .iter()
        .map(|c| container_status(c, runtime, waiting.get(&c.name), app_default, probes))
        .collect();
    let sandbox = runtime.latest_sandbox();
    let sandbox_ready = sandbox.is_some_and(|s| s.state == SandboxState::Ready);
    let phase = pod_phase(pod, &init_statuses, &statuses, terminal);
    let conditions = pod_conditions(pod, &init_statuses, &statuses, phase, sandbox_ready)
        .into_iter()
        .map(|c| PodCondition {
            type_: c.kind.into(),
            status: if c.status { "True" } else { "False" }.into(),
            reason: c.reason.map(Into::into),
            message: c.message,
            ..Default::default()
        })
        .collect();
    let pod_ip = pod_ip(pod, runtime, host_ip).map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.as_str().into()),
        conditions: Some(conditions),
        host_ip: host_ip.map(|ip| ip.to_string()),
        host_ips: host_ip.map(|ip| vec![HostIP { ip: ip.to_string() }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: start_time.cloned(),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        qos_class: Some(qos_class(pod).into()),
        ..Default::default()
    }
}

/// Guaranteed when every container's cpu and memory limits equal its
/// requests, BestEffort when none sets any, else Burstable.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    let (mut any, mut guaranteed) = (false, true);
    for c in all {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        for name in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(name));
            let request = requests.and_then(|q| q.get(name)).or(limit);
            any |= request.is_some() || limit.is_some();
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The status of a pod admission rejected: Failed, with the reason.
pub fn rejected_status(reason: &str, message: &str, host_ip: Option<IpAddr>) -> PodStatus {
    PodStatus {
        phase: Some(Phase::Failed.as_str().into()),
        reason: Some(reason.into()),
        message: Some(format!("Pod was rejected: {message}")),
        host_ip: host_ip.map(|ip| ip.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod condition_tests {
    use super::*;
    use serde_json::json;

    fn pod(inits: serde_json::Value, containers: &[&str]) -> Pod {
        tests::pod("Always", inits, containers)
    }

    fn st(name: &str, state: serde_json::Value, ready: bool) -> ContainerStatus {
        tests::status(name, state, json!({}), ready)
    }

    fn find<'a>(conditions: &'a [Condition], kind: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.kind == kind)
            .expect("condition present")
    }

    #[test]
    fn a_running_ready_pod_has_every_condition() {
        let p = pod(json!([]), &["a"]);
        let c = pod_conditions(
            &p,
            &[],
            &[st("a", json!({"running": {}}), true)],
            Phase::Running,
            true,
        );
        let kinds: Vec<_> = c.iter().map(|c| (c.kind, c.status)).collect();
        assert_eq!(
            kinds,
            vec![
                ("PodReadyToStartContainers", true),
                ("Initialized", true),
                ("Ready", true),
                ("ContainersReady", true),
                ("PodScheduled", true)
            ]
        );
    }

    #[test]
    fn readiness_gates_hold_ready_back_until_their_conditions_are_true() {
        let mut p = pod(json!([]), &["a"]);
        let gates = json!([{"conditionType": "x/one"}, {"conditionType": "x/two"}]);
        if let Some(spec) = p.spec.as_mut() {
            spec.readiness_gates = serde_json::from_value(gates).ok();
        }
        p.status =
            serde_json::from_value(json!({"conditions": [{"type": "x/one", "status": "False"}]}))
                .ok();
        let statuses = [st("a", json!({"running": {}}), true)];
        let c = pod_conditions(&p, &[], &statuses, Phase::Running, true);
        let ready = find(&c, "Ready");
        assert!(!ready.status);
        assert_eq!(ready.reason, Some("ReadinessGatesNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some(
                "the status of pod readiness gate \"x/one\" is not \"True\", but False, \
                 corresponding condition of pod readiness gate \"x/two\" does not exist."
            )
        );
        assert!(
            find(&c, "ContainersReady").status,
            "the containers are ready"
        );
    }

    #[test]
    fn unready_containers_are_named() {
        let p = pod(json!([]), &["a", "b", "c"]);
        let statuses = [
            st("a", json!({"running": {}}), true),
            st("b", json!({"running": {}}), false),
        ];
        let c = pod_conditions(&p, &[], &statuses, Phase::Pending, true);
        let ready = find(&c, "Ready");
        assert!(!ready.status);
        assert_eq!(ready.reason, Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b c]")
        );
        assert_eq!(
            find(&c, "ContainersReady"),
            &Condition {
                kind: "ContainersReady",
                ..ready.clone()
            }
        );
    }

    #[test]
    fn init_containers_gate_initialized() {
        let p = pod(
            json!([{"name": "setup", "image": "i"}, {"name": "migrate", "image": "i"}]),
            &["a"],
        );
        let inits = [st("setup", json!({"terminated": {"exitCode": 0}}), false)];
        let c = pod_conditions(&p, &inits, &[], Phase::Pending, true);
        let init = find(&c, "Initialized");
        assert!(!init.status);
        assert_eq!(init.reason, Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [migrate]")
        );

        let inits = [
            st("setup", json!({"terminated": {"exitCode": 0}}), false),
            st("migrate", json!({"terminated": {"exitCode": 0}}), false),
        ];
        assert!(
            find(
                &pod_conditions(&p, &inits, &[], Phase::Pending, true),
                "Initialized"
            )
            .status
        );
    }

    #[test]
    fn completed_pods_are_not_ready_and_a_missing_sandbox_is_reported() {
        let p = pod(json!([]), &["a"]);
        let done = [st("a", json!({"terminated": {"exitCode": 0}}), false)];
        let c = pod_conditions(&p, &[], &done, Phase::Succeeded, false);
        assert_eq!(find(&c, "Ready").reason, Some("PodCompleted"));
        assert!(!find(&c, "PodReadyToStartContainers").status);
    }
}
