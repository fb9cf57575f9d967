//! An in-memory runtime that keeps the CRI's rules, for fast tests of the sync logic.
//!
//! It enforces what a real runtime enforces (names unique per sandbox and attempt,
//! containers only in ready sandboxes, images must be present, start only once)
//! and lets a test play the world: containers exit ([`FakeRuntime::exit_container`]),
//! calls fail ([`FakeRuntime::fail_next`]), execs answer as scripted
//! ([`FakeRuntime::on_exec`]). Every call is recorded ([`FakeRuntime::calls`]).

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use wasmlet_core::{
    Container, ContainerConfig, ContainerFilter, ContainerId, ContainerRuntime, ContainerState,
    ContainerStats, ContainerStatsFilter, ContainerStatus, ErrorKind, ExecOutput, ExecTimeout,
    FilesystemUsage, Image, ImageRuntime, Labels, LinuxResources, NamespaceMode, RegistryAuth,
    Result, RuntimeCondition, RuntimeError, RuntimeInfo, RuntimeStatus, RuntimeVersion, Sandbox,
    SandboxConfig, SandboxFilter, SandboxId, SandboxRuntime, SandboxState, SandboxStatus,
};

type ExecHandler = dyn Fn(&ContainerId, &[String]) -> ExecOutput + Send + Sync;

/// The exit code a container killed by `StopContainer` reports (SIGKILL).
pub const KILLED_EXIT_CODE: i32 = 137;

#[derive(Debug, Clone)]
struct FakeSandbox {
    config: SandboxConfig,
    state: SandboxState,
    created_at: SystemTime,
    ip: Option<IpAddr>,
}

#[derive(Debug, Clone)]
struct FakeContainer {
    sandbox: SandboxId,
    config: ContainerConfig,
    log_path: PathBuf,
    state: ContainerState,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    exit_code: i32,
    reason: String,
}

#[derive(Default)]
struct World {
    next_id: u64,
    sandboxes: BTreeMap<SandboxId, FakeSandbox>,
    containers: BTreeMap<ContainerId, FakeContainer>,
    /// Images present on the node.
    images: HashSet<String>,
    /// Images a pull can find.
    registry: HashSet<String>,
    failures: HashMap<&'static str, Vec<ErrorKind>>,
    /// Calls whose next use panics (a bug in the caller's task, simulated).
    panics: HashSet<&'static str>,
    calls: Vec<&'static str>,
    /// The grace period of every StopContainer, in order.
    stop_graces: Vec<Duration>,
    exec: Option<Arc<ExecHandler>>,
}

/// The fake runtime. Clones share one world.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    world: Arc<Mutex<World>>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.world();
        f.debug_struct("FakeRuntime")
            .field("sandboxes", &w.sandboxes.len())
            .field("containers", &w.containers.len())
            .finish_non_exhaustive()
    }
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A test that panicked while holding the lock has failed already; keep serving.
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `image` present on the node, as if pulled earlier.
    pub fn with_image(self, image: &str) -> Self {
        self.world().images.insert(image.to_owned());
        self
    }

    /// Makes `image` pullable.
    pub fn with_registry_image(self, image: &str) -> Self {
        self.world().registry.insert(image.to_owned());
        self
    }

    /// The next call named `call` (the CRI name, e.g. `"StartContainer"`) fails with `kind`.
    /// Queued failures are used up in order.
    pub fn fail_next(&self, call: &'static str, kind: ErrorKind) {
        self.world().failures.entry(call).or_default().push(kind);
    }

    /// Answers every exec with `handler` (default: exit 0, no output).
    /// The next `call` panics in the caller's task, as a bug would.
    pub fn panic_next(&self, call: &'static str) {
        self.world().panics.insert(call);
    }

    pub fn on_exec(
        &self,
        handler: impl Fn(&ContainerId, &[String]) -> ExecOutput + Send + Sync + 'static,
    ) {
        self.world().exec = Some(Arc::new(handler));
    }

    /// The container's process ends with `exit_code` (and e.g. `reason = "OOMKilled"`).
    pub fn exit_container(&self, id: &ContainerId, exit_code: i32, reason: &str) -> Result<()> {
        let mut w = self.world();
        let c = w
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("exit_container", "container", id))?;
        c.state = ContainerState::Exited;
        c.finished_at = Some(SystemTime::now());
        c.exit_code = exit_code;
        c.reason = reason.to_owned();
        Ok(())
    }

    /// The sandbox dies underneath the agent (e.g. its pause process was killed).
    pub fn kill_sandbox(&self, id: &SandboxId) -> Result<()> {
        let mut w = self.world();
        let sandbox = w
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| not_found("kill_sandbox", "sandbox", id))?;
        sandbox.state = SandboxState::NotReady;
        Ok(())
    }

    /// Names of the runtime calls made so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.world().calls.clone()
    }

    /// The grace periods StopContainer was given so far, in order.
    pub fn stop_graces(&self) -> Vec<Duration> {
        self.world().stop_graces.clone()
    }

    /// Records the call and answers with an injected failure if one is queued.
    fn enter(&self, call: &'static str) -> Result<MutexGuard<'_, World>> {
        let mut w = self.world();
        w.calls.push(call);
        if w.panics.remove(call) {
            drop(w);
            panic!("injected panic in {call}");
        }
        if let Some(queue) = w.failures.get_mut(call)
            && !queue.is_empty()
        {
            let kind = queue.remove(0);
            return Err(RuntimeError::new(call, kind, "injected failure"));
        }
        Ok(w)
    }
}

fn not_found(call: &'static str, what: &str, id: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::new(call, ErrorKind::NotFound, format!("{what} {id} not found"))
}

fn matches(labels: &Labels, selector: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl World {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:064x}", self.next_id)
    }

    fn stop_container(&mut self, id: &ContainerId) {
        if let Some(c) = self.containers.get_mut(id)
            && c.state != ContainerState::Exited
        {
            c.state = ContainerState::Exited;
            c.finished_at = Some(SystemTime::now());
            c.exit_code = KILLED_EXIT_CODE;
            c.reason = "Error".into();
        }
    }

    fn container_ids_in(&self, sandbox: &SandboxId) -> Vec<ContainerId> {
        self.containers
            .iter()
            .filter(|(_, c)| &c.sandbox == sandbox)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl RuntimeInfo for FakeRuntime {
    async fn version(&self) -> Result<RuntimeVersion> {
        drop(self.enter("Version")?);
        Ok(RuntimeVersion {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn status(&self) -> Result<RuntimeStatus> {
        drop(self.enter("Status")?);
        let ready = |kind: &str| RuntimeCondition {
            kind: kind.into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        Ok(RuntimeStatus {
            conditions: vec![ready("RuntimeReady"), ready("NetworkReady")],
        })
    }
}

impl SandboxRuntime for FakeRuntime {
    async fn run_sandbox(&self, config: &SandboxConfig, _handler: &str) -> Result<SandboxId> {
        const CALL: &str = "RunPodSandbox";
        let mut w = self.enter(CALL)?;
        if w.sandboxes
            .values()
            .any(|s| s.config.metadata == config.metadata)
        {
            return Err(RuntimeError::new(
                CALL,
                ErrorKind::AlreadyExists,
                format!("sandbox name {:?} is reserved", config.metadata),
            ));
        }
        let id = SandboxId::new(w.new_id());
        let ip = (config.namespaces.network == NamespaceMode::Pod).then(|| {
            let n = w.next_id;
            IpAddr::V4(Ipv4Addr::new(10, 217, (n >> 8) as u8, n as u8))
        });
        w.sandboxes.insert(
            id.clone(),
            FakeSandbox {
                config: config.clone(),
                state: SandboxState::Ready,
                created_at: SystemTime::now(),
                ip,
            },
        );
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &SandboxId) -> Result<()> {
        let mut w = self.enter("StopPodSandbox")?;
        for c in w.container_ids_in(id) {
            w.stop_container(&c);
        }
        if let Some(s) = w.sandboxes.get_mut(id) {
            s.state = SandboxState::NotReady;
            s.ip = None;
        }
        Ok(())
    }

    async fn remove_sandbox(&self, id: &SandboxId) -> Result<()> {
        let mut w = self.enter("RemovePodSandbox")?;
        for c in w.container_ids_in(id) {
            w.containers.remove(&c);
        }
        w.sandboxes.remove(id);
        Ok(())
    }

    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus> {
        const CALL: &str = "PodSandboxStatus";
        let w = self.enter(CALL)?;
        let s = w
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found(CALL, "sandbox", id))?;
        Ok(SandboxStatus {
            id: id.clone(),
            metadata: s.config.metadata.clone(),
            state: s.state,
            created_at: s.created_at,
            ip: s.ip,
            additional_ips: Vec::new(),
            namespaces: s.config.namespaces,
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            runtime_handler: String::new(),
        })
    }

    async fn list_sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Sandbox>> {
        let w = self.enter("ListPodSandbox")?;
        Ok(w.sandboxes
            .iter()
            .filter(|(id, s)| {
                filter.id.as_ref().is_none_or(|f| f == *id)
                    && filter.state.is_none_or(|f| f == s.state)
                    && matches(&s.config.labels, &filter.labels)
            })
            .map(|(id, s)| Sandbox {
                id: id.clone(),
                metadata: s.config.metadata.clone(),
                state: s.state,
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: String::new(),
            })
            .collect())
    }
}

impl ContainerRuntime for FakeRuntime {
    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
        _sandbox_config: &SandboxConfig,
    ) -> Result<ContainerId> {
        const CALL: &str = "CreateContainer";
        let mut w = self.enter(CALL)?;
        let s = w
            .sandboxes
            .get(sandbox)
            .ok_or_else(|| not_found(CALL, "sandbox", sandbox))?;
        if s.state != SandboxState::Ready {
            return Err(RuntimeError::new(
                CALL,
                ErrorKind::FailedPrecondition,
                format!("sandbox {sandbox} is not ready"),
            ));
        }
        let log_path = s.config.log_directory.join(&config.log_path);
        if !w.images.contains(&config.image) {
            return Err(not_found(CALL, "image", &config.image));
        }
        let taken = w
            .containers
            .values()
            .any(|c| &c.sandbox == sandbox && c.config.metadata == config.metadata);
        if taken {
            return Err(RuntimeError::new(
                CALL,
                ErrorKind::AlreadyExists,
                format!("container name {:?} is reserved", config.metadata),
            ));
        }
        let id = ContainerId::new(w.new_id());
        w.containers.insert(
            id.clone(),
            FakeContainer {
                sandbox: sandbox.clone(),
                config: config.clone(),
                log_path,
                state: ContainerState::Created,
                created_at: SystemTime::now(),
                started_at: None,
                finished_at: None,
                exit_code: 0,
                reason: String::new(),
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        const CALL: &str = "StartContainer";
        let mut w = self.enter(CALL)?;
        let c = w
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found(CALL, "container", id))?;
        if c.state != ContainerState::Created {
            return Err(RuntimeError::new(
                CALL,
                ErrorKind::FailedPrecondition,
                format!("container {id} is {:?}, not created", c.state),
            ));
        }
        c.state = ContainerState::Running;
        c.started_at = Some(SystemTime::now());
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let mut w = self.enter("StopContainer")?;
        w.stop_graces.push(grace);
        w.stop_container(id);
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        self.enter("RemoveContainer")?.containers.remove(id);
        Ok(())
    }

    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        let w = self.enter("ListContainers")?;
        Ok(w.containers
            .iter()
            .filter(|(id, c)| {
                filter.id.as_ref().is_none_or(|f| f == *id)
                    && filter.state.is_none_or(|f| f == c.state)
                    && filter.sandbox_id.as_ref().is_none_or(|f| f == &c.sandbox)
                    && matches(&c.config.labels, &filter.labels)
            })
            .map(|(id, c)| Container {
                id: id.clone(),
                sandbox_id: c.sandbox.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: image_ref(&c.config.image),
                state: c.state,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            })
            .collect())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        const CALL: &str = "ContainerStatus";
        let w = self.enter(CALL)?;
        let c = w
            .containers
            .get(id)
            .ok_or_else(|| not_found(CALL, "container", id))?;
        Ok(ContainerStatus {
            id: id.clone(),
            metadata: c.config.metadata.clone(),
            state: c.state,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: image_ref(&c.config.image),
            reason: c.reason.clone(),
            message: String::new(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.log_path.clone(),
            resources: c.config.resources.clone(),
            mounts: c.config.mounts.clone(),
        })
    }

    async fn update_container_resources(
        &self,
        id: &ContainerId,
        resources: &LinuxResources,
    ) -> Result<()> {
        const CALL: &str = "UpdateContainerResources";
        let mut w = self.enter(CALL)?;
        let c = w
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found(CALL, "container", id))?;
        c.config.resources = Some(resources.clone());
        Ok(())
    }

    async fn reopen_container_log(&self, id: &ContainerId) -> Result<()> {
        const CALL: &str = "ReopenContainerLog";
        let w = self.enter(CALL)?;
        match w.containers.get(id) {
            None => Err(not_found(CALL, "container", id)),
            Some(c) if c.state != ContainerState::Running => Err(RuntimeError::new(
                CALL,
                ErrorKind::FailedPrecondition,
                format!("container {id} is not running"),
            )),
            Some(_) => Ok(()),
        }
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: &[String],
        _timeout: ExecTimeout,
    ) -> Result<ExecOutput> {
        const CALL: &str = "ExecSync";
        let handler = {
            let w = self.enter(CALL)?;
            let c = w
                .containers
                .get(id)
                .ok_or_else(|| not_found(CALL, "container", id))?;
            if c.state != ContainerState::Running {
                return Err(RuntimeError::new(
                    CALL,
                    ErrorKind::FailedPrecondition,
                    format!("container {id} is not running"),
                ));
            }
            w.exec.clone()
        };
        // Run the handler without the lock: it may call back into the fake.
        Ok(handler.map(|h| h(id, cmd)).unwrap_or_default())
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        const CALL: &str = "ContainerStats";
        let w = self.enter(CALL)?;
        let c = w
            .containers
            .get(id)
            .ok_or_else(|| not_found(CALL, "container", id))?;
        Ok(stats(id, c))
    }

    async fn list_container_stats(
        &self,
        filter: &ContainerStatsFilter,
    ) -> Result<Vec<ContainerStats>> {
        let w = self.enter("ListContainerStats")?;
        Ok(w.containers
            .iter()
            .filter(|(id, c)| {
                c.state == ContainerState::Running
                    && filter.id.as_ref().is_none_or(|f| f == *id)
                    && filter.sandbox_id.as_ref().is_none_or(|f| f == &c.sandbox)
                    && matches(&c.config.labels, &filter.labels)
            })
            .map(|(id, c)| stats(id, c))
            .collect())
    }
}

fn image_ref(image: &str) -> String {
    format!("fake://{image}")
}

fn stats(id: &ContainerId, c: &FakeContainer) -> ContainerStats {
    ContainerStats {
        id: id.clone(),
        metadata: c.config.metadata.clone(),
        labels: c.config.labels.clone(),
        cpu_usage_core_nanos: Some(0),
        memory_working_set_bytes: Some(0),
        memory_usage_bytes: Some(0),
        writable_layer_bytes: Some(0),
    }
}

impl ImageRuntime for FakeRuntime {
    async fn pull_image(&self, image: &str, _auth: Option<&RegistryAuth>) -> Result<String> {
        const CALL: &str = "PullImage";
        let mut w = self.enter(CALL)?;
        if !w.registry.contains(image) && !w.images.contains(image) {
            return Err(not_found(CALL, "image", image));
        }
        w.images.insert(image.to_owned());
        Ok(image_ref(image))
    }

    async fn image_status(&self, image: &str) -> Result<Option<Image>> {
        let w = self.enter("ImageStatus")?;
        Ok(w.images.contains(image).then(|| Image {
            id: image_ref(image),
            repo_tags: vec![image.to_owned()],
            ..Default::default()
        }))
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        let w = self.enter("ListImages")?;
        let mut images: Vec<_> = w
            .images
            .iter()
            .map(|image| Image {
                id: image_ref(image),
                repo_tags: vec![image.clone()],
                ..Default::default()
            })
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(images)
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.enter("RemoveImage")?.images.remove(image);
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>> {
        drop(self.enter("ImageFsInfo")?);
        Ok(vec![FilesystemUsage {
            mountpoint: "/fake/images".into(),
            used_bytes: Some(0),
            inodes_used: Some(0),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlet_core::{ContainerMetadata, SandboxMetadata};

    const IMAGE: &str = "busybox:test";

    fn sandbox_config(name: &str) -> SandboxConfig {
        SandboxConfig {
            metadata: SandboxMetadata {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}").into(),
                attempt: 0,
            },
            log_directory: "/logs".into(),
            ..Default::default()
        }
    }

    fn container_config(name: &str) -> ContainerConfig {
        ContainerConfig {
            metadata: ContainerMetadata {
                name: name.into(),
                attempt: 0,
            },
            image: IMAGE.into(),
            log_path: format!("{name}/0.log").into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn container_lifecycle_follows_the_cri_state_machine() {
        let rt = FakeRuntime::new().with_image(IMAGE);
        let sc = sandbox_config("web");
        let sandbox = rt.run_sandbox(&sc, "").await.expect("run");
        let id = rt
            .create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect("create");
        assert_eq!(
            rt.container_status(&id).await.expect("status").state,
            ContainerState::Created
        );

        rt.start_container(&id).await.expect("start");
        let status = rt.container_status(&id).await.expect("status");
        assert_eq!(status.state, ContainerState::Running);
        assert_eq!(status.log_path, PathBuf::from("/logs/app/0.log"));
        let again = rt
            .start_container(&id)
            .await
            .expect_err("a container starts once");
        assert_eq!(again.kind, ErrorKind::FailedPrecondition);

        rt.exit_container(&id, 1, "Error").expect("exit");
        let status = rt.container_status(&id).await.expect("status");
        assert_eq!(
            (status.state, status.exit_code),
            (ContainerState::Exited, 1)
        );
        assert!(status.finished_at.is_some());
    }

    #[tokio::test]
    async fn names_are_reserved_per_sandbox_and_attempt() {
        let rt = FakeRuntime::new().with_image(IMAGE);
        let sc = sandbox_config("web");
        let sandbox = rt.run_sandbox(&sc, "").await.expect("run");
        let dup = rt
            .run_sandbox(&sc, "")
            .await
            .expect_err("same metadata twice");
        assert_eq!(dup.kind, ErrorKind::AlreadyExists);

        rt.create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect("create");
        let dup = rt
            .create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect_err("same name and attempt");
        assert_eq!(dup.kind, ErrorKind::AlreadyExists);
        let mut retry = container_config("app");
        retry.metadata.attempt = 1;
        rt.create_container(&sandbox, &retry, &sc)
            .await
            .expect("next attempt is free");
    }

    #[tokio::test]
    async fn missing_image_and_dead_sandbox_refuse_create() {
        let rt = FakeRuntime::new();
        let sc = sandbox_config("web");
        let sandbox = rt.run_sandbox(&sc, "").await.expect("run");
        let err = rt
            .create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect_err("image absent");
        assert_eq!(err.kind, ErrorKind::NotFound);

        let rt = rt.with_registry_image(IMAGE);
        rt.pull_image(IMAGE, None).await.expect("pullable");
        rt.kill_sandbox(&sandbox).expect("kill");
        let err = rt
            .create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect_err("sandbox not ready");
        assert_eq!(err.kind, ErrorKind::FailedPrecondition);
    }

    #[tokio::test]
    async fn teardown_is_idempotent_and_kills_containers() {
        let rt = FakeRuntime::new().with_image(IMAGE);
        let sc = sandbox_config("web");
        let sandbox = rt.run_sandbox(&sc, "").await.expect("run");
        let id = rt
            .create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect("create");
        rt.start_container(&id).await.expect("start");

        rt.stop_sandbox(&sandbox).await.expect("stop");
        rt.stop_sandbox(&sandbox).await.expect("stop twice");
        let status = rt.container_status(&id).await.expect("status");
        assert_eq!(
            (status.state, status.exit_code),
            (ContainerState::Exited, KILLED_EXIT_CODE)
        );
        assert_eq!(rt.sandbox_status(&sandbox).await.expect("status").ip, None);

        rt.remove_sandbox(&sandbox).await.expect("remove");
        rt.remove_sandbox(&sandbox).await.expect("remove twice");
        let err = rt
            .container_status(&id)
            .await
            .expect_err("removed with its sandbox");
        assert!(err.is_not_found());
    }

    #[tokio::test]
    async fn lists_filter_by_label_and_state() {
        let rt = FakeRuntime::new().with_image(IMAGE);
        let mut a = sandbox_config("a");
        a.labels.insert("app".into(), "a".into());
        let b = sandbox_config("b");
        let sa = rt.run_sandbox(&a, "").await.expect("run a");
        rt.run_sandbox(&b, "").await.expect("run b");
        let filter = SandboxFilter {
            labels: a.labels.clone(),
            ..Default::default()
        };
        let listed = rt.list_sandboxes(&filter).await.expect("list");
        assert_eq!(listed.iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&sa]);

        let id = rt
            .create_container(&sa, &container_config("app"), &a)
            .await
            .expect("create");
        let running = ContainerFilter {
            state: Some(ContainerState::Running),
            ..Default::default()
        };
        assert!(rt.list_containers(&running).await.expect("list").is_empty());
        rt.start_container(&id).await.expect("start");
        assert_eq!(rt.list_containers(&running).await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn injected_failures_are_used_up_in_order_and_calls_are_recorded() {
        let rt = FakeRuntime::new();
        rt.fail_next("Version", ErrorKind::Unavailable);
        rt.fail_next("Version", ErrorKind::DeadlineExceeded);
        assert_eq!(
            rt.version().await.expect_err("1st").kind,
            ErrorKind::Unavailable
        );
        assert_eq!(
            rt.version().await.expect_err("2nd").kind,
            ErrorKind::DeadlineExceeded
        );
        rt.version().await.expect("queue used up");
        assert_eq!(rt.calls(), vec!["Version"; 3]);
    }

    #[tokio::test]
    async fn exec_answers_as_scripted_only_in_running_containers() {
        let rt = FakeRuntime::new().with_image(IMAGE);
        let sc = sandbox_config("web");
        let sandbox = rt.run_sandbox(&sc, "").await.expect("run");
        let id = rt
            .create_container(&sandbox, &container_config("app"), &sc)
            .await
            .expect("create");
        let cmd = vec!["cat".to_owned(), "/ready".to_owned()];
        let err = rt
            .exec_sync(&id, &cmd, ExecTimeout::Unlimited)
            .await
            .expect_err("not running");
        assert_eq!(err.kind, ErrorKind::FailedPrecondition);

        rt.start_container(&id).await.expect("start");
        rt.on_exec(|_, cmd| ExecOutput {
            stdout: cmd.join(" ").into_bytes(),
            stderr: Vec::new(),
            exit_code: 7,
        });
        let out = rt
            .exec_sync(&id, &cmd, ExecTimeout::Unlimited)
            .await
            .expect("exec");
        assert_eq!(
            (out.stdout.as_slice(), out.exit_code),
            (b"cat /ready".as_slice(), 7)
        );
    }
}
