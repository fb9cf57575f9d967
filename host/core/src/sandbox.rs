//! Pod sandboxes: the pod-level environment (network, IPC and PID namespaces)
//! that a pod's containers join.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::{Labels, PodUid, SandboxId};

/// What identifies a sandbox to the runtime: the pod plus an attempt counter that
/// grows each time the sandbox has to be recreated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxMetadata {
    pub name: String,
    pub namespace: String,
    pub uid: PodUid,
    pub attempt: u32,
}

/// Whose namespace a pod or container uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    /// Shared by the pod's containers.
    #[default]
    Pod,
    /// Private to one container.
    Container,
    /// The node's own (hostNetwork / hostPID / hostIPC).
    Node,
}

/// Namespace choices for a sandbox (or a container within it).
///
/// The default matches a v1 pod: pod network and IPC, a PID namespace per container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub network: NamespaceMode,
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            network: NamespaceMode::Pod,
            pid: NamespaceMode::Container,
            ipc: NamespaceMode::Pod,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// A container port published on the node (`hostPort`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub container_port: u16,
    pub host_port: u16,
    /// Empty: every host address.
    pub host_ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Everything needed to run a sandbox. The same value is passed again with each
/// container created in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxConfig {
    pub metadata: SandboxMetadata,
    /// Empty only with the node's network namespace.
    pub hostname: String,
    /// Host directory holding the logs of the sandbox's containers.
    pub log_directory: PathBuf,
    pub dns: Option<DnsConfig>,
    pub port_mappings: Vec<PortMapping>,
    pub labels: Labels,
    pub annotations: Labels,
    pub namespaces: Namespaces,
    pub cgroup_parent: String,
    pub sysctls: Labels,
    /// Must be set if any container of the pod is privileged.
    pub privileged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    NotReady,
}

/// A sandbox as listed: cheap to fetch for every sandbox on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: SandboxId,
    pub metadata: SandboxMetadata,
    pub state: SandboxState,
    pub created_at: SystemTime,
    pub labels: Labels,
    pub annotations: Labels,
    pub runtime_handler: String,
}

/// A sandbox in detail, with its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    pub id: SandboxId,
    pub metadata: SandboxMetadata,
    pub state: SandboxState,
    pub created_at: SystemTime,
    /// The pod IP; `None` with the node's network or once the network is torn down.
    pub ip: Option<IpAddr>,
    pub additional_ips: Vec<IpAddr>,
    pub namespaces: Namespaces,
    pub labels: Labels,
    pub annotations: Labels,
    pub runtime_handler: String,
}

/// Which sandboxes to list; every field that is set must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxFilter {
    pub id: Option<SandboxId>,
    pub state: Option<SandboxState>,
    /// Equality on each label.
    pub labels: Labels,
}
