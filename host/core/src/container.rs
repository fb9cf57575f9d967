//! Containers within a sandbox.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::{ContainerId, Labels, Namespaces, SandboxId};

/// `(name, attempt)` is unique within a sandbox for its whole life; the attempt is
/// the container's restart count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerMetadata {
    pub name: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountPropagation {
    #[default]
    Private,
    HostToContainer,
    Bidirectional,
}

/// A host path mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
    pub propagation: MountPropagation,
}

/// cgroup settings. Zero / empty means "not set", as in the CRI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinuxResources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_bytes: i64,
    pub oom_score_adj: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// cgroup v2 files, e.g. `memory.high`.
    pub unified: Labels,
    pub memory_swap_limit_bytes: i64,
}

/// A seccomp or AppArmor profile, as the runtime applies it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecurityProfile {
    /// The runtime's default profile.
    #[default]
    RuntimeDefault,
    Unconfined,
    /// A profile on the node, by its absolute path (seccomp) or name (AppArmor).
    Localhost(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSecurity {
    pub privileged: bool,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_username: String,
    pub readonly_rootfs: bool,
    pub supplemental_groups: Vec<i64>,
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
    pub no_new_privs: bool,
    pub namespaces: Namespaces,
    /// `None`: the runtime's choice.
    pub seccomp: Option<SecurityProfile>,
    /// `None`: the runtime's choice (its default profile where AppArmor is on).
    pub apparmor: Option<SecurityProfile>,
    /// Empty: the runtime's own defaults.
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

/// Everything needed to create a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    pub metadata: ContainerMetadata,
    /// Image reference (or image id) to run.
    pub image: String,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    pub working_dir: String,
    pub env: Vec<EnvVar>,
    pub mounts: Vec<Mount>,
    pub labels: Labels,
    pub annotations: Labels,
    /// Relative to the sandbox's `log_directory`.
    pub log_path: PathBuf,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub resources: Option<LinuxResources>,
    pub security: ContainerSecurity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// A container as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub sandbox_id: SandboxId,
    pub metadata: ContainerMetadata,
    pub image: String,
    /// The digest-qualified reference the runtime resolved the image to.
    pub image_ref: String,
    pub state: ContainerState,
    pub created_at: SystemTime,
    pub labels: Labels,
    pub annotations: Labels,
}

/// A container in detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: ContainerId,
    pub metadata: ContainerMetadata,
    pub state: ContainerState,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Meaningful once `finished_at` is set.
    pub exit_code: i32,
    pub image: String,
    pub image_ref: String,
    /// CamelCase cause of the state, e.g. `OOMKilled`, `Completed`, `Error`.
    pub reason: String,
    pub message: String,
    pub labels: Labels,
    pub annotations: Labels,
    /// Absolute path of the container's log on the host.
    pub log_path: PathBuf,
    pub resources: Option<LinuxResources>,
    /// What is mounted into it, as it was created.
    pub mounts: Vec<Mount>,
}

/// Which containers to list; every field that is set must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerFilter {
    pub id: Option<ContainerId>,
    pub state: Option<ContainerState>,
    pub sandbox_id: Option<SandboxId>,
    pub labels: Labels,
}

/// What a command run with [`crate::ContainerRuntime::exec_sync`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// How long an exec may run. The CRI counts whole seconds, so the runtime
/// rounds up to at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecTimeout {
    Unlimited,
    After(Duration),
}

/// Resource usage of one container. `None`: the runtime did not report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStats {
    pub id: ContainerId,
    pub metadata: ContainerMetadata,
    pub labels: Labels,
    pub cpu_usage_core_nanos: Option<u64>,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_usage_bytes: Option<u64>,
    pub writable_layer_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerStatsFilter {
    pub id: Option<ContainerId>,
    pub sandbox_id: Option<SandboxId>,
    pub labels: Labels,
}
