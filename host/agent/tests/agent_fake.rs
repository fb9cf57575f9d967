//! The whole agent (sync loop, workers, PLEG, status) over the in-memory fake
//! runtime: fast checks of the logic. tests/ shows the same against containerd.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmlet_agent::admission::{Admission, Admit};
use wasmlet_agent::handlers::{
    BoxFuture, Checked, ContainerHandlers, HandlerTarget, HookError, NoHandlers, Outcome,
};
use wasmlet_agent::metrics::AgentMetrics;
use wasmlet_agent::{Agent, AgentConfig, AgentView, SourceMessage, SourceUpdate};
use wasmlet_core::{
    ContainerFilter, ContainerRuntime, ContainerState, SandboxFilter, SandboxRuntime,
};
use wasmlet_runtime_fake::FakeRuntime;

const IMAGE: &str = "registry.local/busybox:1.35";

fn pod(name: &str, policy: &str, containers: &[&str]) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|c| serde_json::json!({"name": c, "image": IMAGE}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 2, "containers": containers}
    }))
    .expect("pod")
}

fn labelled(pod: &Pod, key: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(key).is_some_and(|v| v == "yes"))
}

/// Rejects pods labelled `reject: yes`, and those labelled `solo: yes`
/// while another active pod is (as a host port would); never decides on
/// those labelled `stall: yes` (a plugin that thinks for ever).
#[derive(Debug, Clone, Copy)]
struct LabelPolicy;

impl Admit for LabelPolicy {
    async fn admit(&self, pod: &Arc<Pod>, active: &[Arc<Pod>]) -> Admission {
        let label = |key: &str| labelled(pod, key);
        if label("solo") && active.iter().any(|p| labelled(p, "solo")) {
            return Admission {
                admit: false,
                reason: "Solo".into(),
                message: "another solo pod is active".into(),
            };
        }
        if label("stall") {
            std::future::pending::<()>().await;
        }
        if label("reject") {
            Admission {
                admit: false,
                reason: "Labelled".into(),
                message: "the pod asked to be rejected".into(),
            }
        } else {
            Admission::admitted()
        }
    }
}

struct Running {
    view: AgentView,
    config: mpsc::Sender<SourceMessage>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(runtime: &FakeRuntime) -> Running {
    start_with(runtime, Arc::new(NoHandlers))
}

fn start_with(runtime: &FakeRuntime, handlers: Arc<dyn ContainerHandlers>) -> Running {
    let mut cfg = AgentConfig::new("fake-node");
    cfg.sources = vec!["file".into()];
    cfg.relist_period = Duration::from_millis(20);
    cfg.timings.sync_tick = Duration::from_millis(20);
    cfg.timings.housekeeping = Duration::from_millis(50);
    let scratch = std::env::temp_dir().join(format!("wasmlet-agent-fake-{}", std::process::id()));
    cfg.log_root = scratch.join("pods");
    cfg.container_logs_dir = scratch.join("containers");
    cfg.root_dir = scratch.join("root");
    let agent = Agent::new(
        Arc::new(runtime.clone()),
        LabelPolicy,
        handlers,
        cfg,
        AgentMetrics::default(),
    );
    let view = agent.view();
    let (config, config_rx) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(agent.run(config_rx, stop.clone()));
    Running {
        view,
        config,
        stop,
        task,
    }
}

impl Running {
    async fn give(&self, pods: Vec<Pod>) {
        self.config
            .send(
                SourceUpdate {
                    source: "file".into(),
                    pods,
                    problems: Vec::new(),
                }
                .into(),
            )
            .await
            .expect("agent alive");
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("agent stops");
    }

    fn status(&self, name: &str) -> Option<k8s_openapi::api::core::v1::PodStatus> {
        self.view
            .statuses
            .get(&format!("uid-{name}").into())?
            .status
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&Self) -> bool) {
        for _ in 0..500 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "gave up waiting for: {what}; statuses: {:#?}",
            self.view.statuses.list()
        );
    }
}

fn phase(status: &Option<k8s_openapi::api::core::v1::PodStatus>) -> Option<&str> {
    status.as_ref()?.phase.as_deref()
}

fn waiting_reason(
    status: &Option<k8s_openapi::api::core::v1::PodStatus>,
    i: usize,
) -> Option<String> {
    let c = status.as_ref()?.container_statuses.as_ref()?.get(i)?;
    c.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

fn restarts(status: &Option<k8s_openapi::api::core::v1::PodStatus>) -> i32 {
    status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(-1, |c| c.restart_count)
}

async fn containers(runtime: &FakeRuntime) -> Vec<wasmlet_core::Container> {
    runtime
        .list_containers(&ContainerFilter::default())
        .await
        .expect("list")
}

#[tokio::test(start_paused = true)]
async fn a_pod_runs_is_ready_and_is_removed_without_leftovers() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    agent.give(vec![pod("web", "Always", &["a", "b"])]).await;
    agent
        .wait_for("web Running", |a| {
            phase(&a.status("web")) == Some("Running")
        })
        .await;
    let status = agent.status("web").expect("status");
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("True"));
    assert_eq!(containers(&runtime).await.len(), 2);

    agent.give(Vec::new()).await;
    agent
        .wait_for("web gone", |a| a.status("web").is_none())
        .await;
    assert!(containers(&runtime).await.is_empty());
    let sandboxes = runtime
        .list_sandboxes(&SandboxFilter::default())
        .await
        .expect("list");
    assert!(sandboxes.is_empty(), "{sandboxes:?}");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_whose_worker_panicked_gets_a_new_worker_and_runs() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    runtime.panic_next("CreateContainer");
    let agent = start(&runtime);
    agent.give(vec![pod("web", "Always", &["a"])]).await;
    agent
        .wait_for("web Running after the panic", |a| {
            phase(&a.status("web")) == Some("Running")
        })
        .await;
    let creates = runtime
        .calls()
        .iter()
        .filter(|c| **c == "CreateContainer")
        .count();
    assert_eq!(creates, 2, "the panicked create, then the new worker's");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crashing_container_restarts_then_backs_off() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    agent.give(vec![pod("crash", "Always", &["app"])]).await;
    agent
        .wait_for("Running", |a| phase(&a.status("crash")) == Some("Running"))
        .await;

    // The first crash restarts at once (restart count 1) ...
    let first = containers(&runtime).await.remove(0);
    runtime.exit_container(&first.id, 1, "").expect("exit");
    agent
        .wait_for("restart 1", |a| restarts(&a.status("crash")) == 1)
        .await;
    // The run that ended stays the last state while the new one runs: the
    // garbage collector keeps the newest exited container of each name.
    let last_exit = |a: &Running| {
        a.status("crash")
            .and_then(|s| s.container_statuses)
            .and_then(|s| s.first()?.last_state.clone()?.terminated)
            .map(|t| t.exit_code)
    };
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(last_exit(&agent), Some(1), "lastState after a few syncs");
    }
    assert_eq!(containers(&runtime).await.len(), 2);
    // ... the second waits out the back-off.
    let second = containers(&runtime)
        .await
        .into_iter()
        .find(|c| c.state == ContainerState::Running)
        .expect("restarted container");
    runtime.exit_container(&second.id, 1, "").expect("exit");
    agent
        .wait_for("CrashLoopBackOff", |a| {
            waiting_reason(&a.status("crash"), 0).as_deref() == Some("CrashLoopBackOff")
        })
        .await;
    let events = agent.view.events.list();
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("BackOff"))
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn never_and_on_failure_leave_finished_containers_alone() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    agent
        .give(vec![
            pod("once", "Never", &["app"]),
            pod("retry", "OnFailure", &["app"]),
        ])
        .await;
    agent
        .wait_for("both Running", |a| {
            phase(&a.status("once")) == Some("Running")
                && phase(&a.status("retry")) == Some("Running")
        })
        .await;
    for c in containers(&runtime).await {
        runtime.exit_container(&c.id, 0, "").expect("exit");
    }
    agent
        .wait_for("both Succeeded", |a| {
            phase(&a.status("once")) == Some("Succeeded")
                && phase(&a.status("retry")) == Some("Succeeded")
        })
        .await;
    assert_eq!(restarts(&agent.status("once")), 0);
    assert_eq!(restarts(&agent.status("retry")), 0);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_pod_fails_and_nothing_starts() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    let mut rejected = pod("nope", "Always", &["app"]);
    rejected.metadata.labels = Some([("reject".to_owned(), "yes".to_owned())].into());
    agent.give(vec![rejected]).await;
    agent
        .wait_for("Failed", |a| phase(&a.status("nope")) == Some("Failed"))
        .await;
    let status = agent.status("nope").expect("status");
    assert_eq!(status.reason.as_deref(), Some("Labelled"));
    assert_eq!(
        status.message.as_deref(),
        Some("Pod was rejected: the pod asked to be rejected")
    );
    assert!(runtime.calls().iter().all(|c| *c != "RunPodSandbox"));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn admission_that_never_decides_holds_up_no_other_work() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    agent.give(vec![pod("web", "Always", &["app"])]).await;
    agent
        .wait_for("web Running", |a| {
            phase(&a.status("web")) == Some("Running")
        })
        .await;
    let mut stuck = pod("stuck", "Always", &["app"]);
    stuck.metadata.labels = Some([("stall".to_owned(), "yes".to_owned())].into());
    agent
        .give(vec![pod("web", "Always", &["app"]), stuck.clone()])
        .await;
    // While `stuck` is being judged, the loop still removes `web`.
    agent.give(vec![stuck]).await;
    agent
        .wait_for("web stopped and removed", |a| a.status("web").is_none())
        .await;
    assert!(containers(&runtime).await.is_empty());
    assert!(
        agent.status("stuck").is_none(),
        "not admitted, not rejected"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_adopts_running_containers() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    agent.give(vec![pod("keep", "Always", &["app"])]).await;
    agent
        .wait_for("Running", |a| phase(&a.status("keep")) == Some("Running"))
        .await;
    let before = containers(&runtime).await;
    agent.stop().await;

    let agent = start(&runtime);
    agent.give(vec![pod("keep", "Always", &["app"])]).await;
    agent
        .wait_for("Running again", |a| {
            phase(&a.status("keep")) == Some("Running")
        })
        .await;
    // Give the new agent a few sync rounds to (wrongly) restart anything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = containers(&runtime).await;
    assert_eq!(
        before.iter().map(|c| &c.id).collect::<Vec<_>>(),
        after.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_given_back_while_it_stops_runs_again() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    let web = pod("back", "Always", &["app"]);
    agent.give(vec![web.clone()]).await;
    agent
        .wait_for("Running", |a| phase(&a.status("back")) == Some("Running"))
        .await;
    let first = containers(&runtime).await.remove(0).id;
    // The first stop fails, so the worker is still terminating (it retries
    // after a second) when the same pod, same UID, comes back.
    runtime.fail_next("StopContainer", wasmlet_core::ErrorKind::Unavailable);
    agent.give(Vec::new()).await;
    agent.give(vec![web]).await;
    for _ in 0..500 {
        let now = containers(&runtime).await;
        if now.len() == 1 && now[0].id != first && now[0].state == ContainerState::Running {
            agent.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the pod did not run again: {:?}",
        containers(&runtime).await
    );
}

/// Probe outcomes set by the test, per container name; hooks recorded.
#[derive(Default)]
struct Scripted {
    outcomes: std::sync::Mutex<std::collections::HashMap<String, Outcome>>,
    hooks: std::sync::Mutex<Vec<(String, bool, usize)>>,
    runtime: FakeRuntime,
    fail_post_start: std::sync::atomic::AtomicBool,
}

impl Scripted {
    fn set(&self, container: &str, outcome: Outcome) {
        if let Ok(mut o) = self.outcomes.lock() {
            o.insert(container.into(), outcome);
        }
    }
}

impl ContainerHandlers for Scripted {
    fn probe<'a>(
        &'a self,
        target: &'a HandlerTarget,
        _probe: &'a k8s_openapi::api::core::v1::Probe,
        _timeout: Duration,
    ) -> BoxFuture<'a, Checked> {
        let outcome = self
            .outcomes
            .lock()
            .ok()
            .and_then(|o| o.get(&target.container_name).copied())
            .unwrap_or(Outcome::Success);
        Box::pin(async move {
            Checked {
                outcome,
                message: "scripted".into(),
            }
        })
    }

    fn hook<'a>(
        &'a self,
        target: &'a HandlerTarget,
        _handler: &'a k8s_openapi::api::core::v1::LifecycleHandler,
        pre_stop: bool,
        _within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        // How many containers had been stopped when the hook ran.
        let stops = self
            .runtime
            .calls()
            .iter()
            .filter(|c| **c == "StopContainer")
            .count();
        if let Ok(mut hooks) = self.hooks.lock() {
            hooks.push((target.container_name.clone(), pre_stop, stops));
        }
        let fail = !pre_stop
            && self
                .fail_post_start
                .load(std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            if fail {
                Err(HookError::Failed("scripted failure".into()))
            } else {
                Ok(())
            }
        })
    }
}

fn probed_pod(name: &str, probe: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
            "name": "app", "image": IMAGE,
            probe: {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1},
            "lifecycle": {"postStart": {"exec": {"command": ["true"]}}, "preStop": {"exec": {"command": ["true"]}}}
        }]}
    }))
    .expect("pod")
}

fn ready(status: &Option<k8s_openapi::api::core::v1::PodStatus>) -> Option<bool> {
    Some(status.as_ref()?.container_statuses.as_ref()?.first()?.ready)
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let handlers = Arc::new(Scripted {
        runtime: runtime.clone(),
        ..Default::default()
    });
    let agent = start_with(&runtime, handlers.clone());
    let mut pod = probed_pod("live", "livenessProbe");
    if let Some(probe) = pod
        .spec
        .as_mut()
        .and_then(|s| s.containers[0].liveness_probe.as_mut())
    {
        probe.termination_grace_period_seconds = Some(5);
    }
    agent.give(vec![pod]).await;
    agent
        .wait_for("Running", |a| phase(&a.status("live")) == Some("Running"))
        .await;
    handlers.set("app", Outcome::Failure);
    agent
        .wait_for("restarted", |a| restarts(&a.status("live")) >= 1)
        .await;
    let events = agent.view.events.list();
    let said = |reason: &str, text: &str| {
        events.iter().any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.contains(text))
        })
    };
    assert!(said("Unhealthy", "Liveness probe failed: scripted"));
    assert!(said("Killing", "failed liveness probe, will be restarted"));
    // The probe's own terminationGracePeriodSeconds (5, less what preStop
    // took), not the pod's (2).
    let grace = runtime.stop_graces().first().copied().unwrap_or_default();
    assert!(
        grace > Duration::from_secs(4) && grace <= Duration::from_secs(5),
        "{grace:?}"
    );
    // The preStop hook ran before the container was stopped.
    let hooks = handlers.hooks.lock().map(|h| h.clone()).unwrap_or_default();
    assert!(hooks.contains(&("app".into(), true, 0)), "{hooks:?}");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn readiness_drives_ready_without_restarts() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let handlers = Arc::new(Scripted {
        runtime: runtime.clone(),
        ..Default::default()
    });
    handlers.set("app", Outcome::Failure);
    let agent = start_with(&runtime, handlers.clone());
    agent
        .give(vec![probed_pod("ready", "readinessProbe")])
        .await;
    agent
        .wait_for("Running", |a| phase(&a.status("ready")) == Some("Running"))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ready(&agent.status("ready")),
        Some(false),
        "readiness starts failed"
    );
    handlers.set("app", Outcome::Success);
    agent
        .wait_for("ready", |a| ready(&a.status("ready")) == Some(true))
        .await;
    handlers.set("app", Outcome::Failure);
    agent
        .wait_for("unready", |a| ready(&a.status("ready")) == Some(false))
        .await;
    assert_eq!(restarts(&agent.status("ready")), 0);
    // A passing check with something to say (e.g. a redirect not followed).
    let warned = agent.view.events.list().iter().any(|e| {
        e.reason.as_deref() == Some("ProbeWarning")
            && e.message.as_deref() == Some("Readiness probe warning: scripted")
    });
    assert!(warned, "{:?}", agent.view.events.list());
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_post_start_hook_kills_and_restarts_the_container() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let handlers = Arc::new(Scripted {
        runtime: runtime.clone(),
        fail_post_start: true.into(),
        ..Default::default()
    });
    let agent = start_with(&runtime, handlers.clone());
    agent
        .give(vec![probed_pod("hooked", "readinessProbe")])
        .await;
    agent
        .wait_for("restarted after the hook failed", |a| {
            restarts(&a.status("hooked")) >= 1
        })
        .await;
    assert!(
        agent
            .view
            .events
            .list()
            .iter()
            .any(|e| { e.reason.as_deref() == Some("FailedPostStartHook") })
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_sidecar_starts_first_comes_back_under_never_and_stops_last() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let handlers = Arc::new(Scripted {
        runtime: runtime.clone(),
        ..Default::default()
    });
    let agent = start_with(&runtime, handlers.clone());
    let pre_stop = serde_json::json!({"preStop": {"exec": {"command": ["true"]}}});
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "side", "namespace": "default", "uid": "uid-side"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
            "initContainers": [{"name": "proxy", "image": IMAGE, "restartPolicy": "Always", "lifecycle": pre_stop}],
            "containers": [{"name": "app", "image": IMAGE, "lifecycle": pre_stop}]}
    }))
    .expect("pod");
    agent.give(vec![pod]).await;
    agent
        .wait_for("Running", |a| phase(&a.status("side")) == Some("Running"))
        .await;
    let names: Vec<String> = containers(&runtime)
        .await
        .iter()
        .map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "the sidecar runs beside the app: {names:?}");

    // The sidecar dies: it comes back although the pod's policy is Never.
    let proxy = containers(&runtime)
        .await
        .into_iter()
        .find(|c| c.metadata.name == "proxy")
        .expect("the sidecar");
    runtime
        .exit_container(&proxy.id, 1, "Error")
        .expect("exits");
    let sidecar_restarts = |a: &Running| {
        a.status("side")
            .and_then(|s| s.init_container_statuses)
            .and_then(|s| s.first().map(|c| c.restart_count))
            .unwrap_or(0)
    };
    agent
        .wait_for("the sidecar restarted", |a| sidecar_restarts(a) >= 1)
        .await;
    assert_eq!(restarts(&agent.status("side")), 0, "the app ran on");

    // Going away: the app stops first, then the sidecar.
    agent.give(Vec::new()).await;
    agent.wait_for("gone", |a| a.status("side").is_none()).await;
    let hooks = handlers.hooks.lock().map(|h| h.clone()).unwrap_or_default();
    let stopped_before = |name: &str| {
        hooks
            .iter()
            .find(|(c, pre_stop, _)| c == name && *pre_stop)
            .map(|(_, _, stops)| *stops)
    };
    let (app, sidecar) = (stopped_before("app"), stopped_before("proxy"));
    assert!(
        matches!((app, sidecar), (Some(a), Some(s)) if s > a),
        "{hooks:?}"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_past_its_active_deadline_fails_and_stops() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    let mut limited = pod("limited", "Always", &["main"]);
    if let Some(spec) = limited.spec.as_mut() {
        spec.active_deadline_seconds = Some(3);
    }
    agent
        .give(vec![limited, pod("free", "Always", &["main"])])
        .await;
    agent
        .wait_for("limited Running", |a| {
            phase(&a.status("limited")) == Some("Running")
        })
        .await;
    agent
        .wait_for("limited Failed", |a| {
            phase(&a.status("limited")) == Some("Failed")
        })
        .await;
    let status = agent.status("limited").expect("status");
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        status.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    // Stopped, and not started again under restartPolicy Always.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let running: Vec<_> = containers(&runtime)
        .await
        .into_iter()
        .filter(|c| c.state == ContainerState::Running)
        .map(|c| c.metadata.name)
        .collect();
    assert_eq!(running, ["main"], "only the pod without a deadline runs");
    assert_eq!(phase(&agent.status("free")), Some("Running"));
    assert_eq!(phase(&agent.status("limited")), Some("Failed"));
    let events = agent.view.events.list();
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("DeadlineExceeded")),
        "{events:?}"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_finished_pod_no_longer_counts_against_admission() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start(&runtime);
    let solo = |name: &str| {
        let mut p = pod(name, "Never", &["app"]);
        p.metadata.labels = Some([("solo".to_owned(), "yes".to_owned())].into());
        p
    };
    agent.give(vec![solo("first")]).await;
    agent
        .wait_for("first Running", |a| {
            phase(&a.status("first")) == Some("Running")
        })
        .await;
    agent.give(vec![solo("first"), solo("second")]).await;
    agent
        .wait_for("second rejected while first runs", |a| {
            phase(&a.status("second")) == Some("Failed")
        })
        .await;
    for c in containers(&runtime).await {
        runtime.exit_container(&c.id, 0, "").expect("exit");
    }
    agent
        .wait_for("first Succeeded", |a| {
            phase(&a.status("first")) == Some("Succeeded")
        })
        .await;
    let mut third = solo("third");
    third.metadata.uid = Some("uid-third".into());
    agent.give(vec![solo("first"), third]).await;
    agent
        .wait_for("third admitted and Running", |a| {
            phase(&a.status("third")) == Some("Running")
        })
        .await;
    agent.stop().await;
}

/// A preStop hook that takes 3 s: a pod's stop that can be seen.
struct SlowPreStop;

impl ContainerHandlers for SlowPreStop {
    fn probe<'a>(
        &'a self,
        _target: &'a HandlerTarget,
        _probe: &'a k8s_openapi::api::core::v1::Probe,
        _timeout: Duration,
    ) -> BoxFuture<'a, Checked> {
        Box::pin(async {
            Checked {
                outcome: Outcome::Success,
                message: String::new(),
            }
        })
    }

    fn hook<'a>(
        &'a self,
        _target: &'a HandlerTarget,
        _handler: &'a k8s_openapi::api::core::v1::LifecycleHandler,
        _pre_stop: bool,
        _within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn an_edited_pod_starts_once_its_old_self_has_stopped() {
    let runtime = FakeRuntime::new().with_image(IMAGE);
    let agent = start_with(&runtime, Arc::new(SlowPreStop));
    let web = |uid: &str| {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": uid},
            "spec": {"terminationGracePeriodSeconds": 10, "containers": [{
                "name": "app", "image": IMAGE,
                "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}
            }]}
        }))
        .expect("pod");
        p.metadata.labels = Some([("edit".to_owned(), uid.to_owned())].into());
        p
    };
    agent.give(vec![web("uid-old")]).await;
    agent
        .wait_for("old Running", |a| {
            phase(
                &a.view
                    .statuses
                    .get(&"uid-old".into())
                    .and_then(|p| p.status),
            ) == Some("Running")
        })
        .await;
    // The manifest edited: a new UID under the same name.
    agent.give(vec![web("uid-new")]).await;
    agent
        .wait_for("new Running", |a| {
            phase(
                &a.view
                    .statuses
                    .get(&"uid-new".into())
                    .and_then(|p| p.status),
            ) == Some("Running")
        })
        .await;
    let calls = runtime.calls();
    let last_stop = calls.iter().rposition(|c| *c == "StopPodSandbox");
    let second_run = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == "RunPodSandbox")
        .nth(1)
        .map(|(i, _)| i);
    assert!(
        matches!((last_stop, second_run), (Some(stop), Some(run)) if stop < run),
        "the old sandbox stops before the new one runs: {calls:?}"
    );
    agent.stop().await;
}
