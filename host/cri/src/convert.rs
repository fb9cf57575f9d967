//! Domain types ↔ CRI wire types. Pure functions, no I/O.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmlet_core as core;

use crate::proto as pb;

fn map(labels: &core::Labels) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn labels(map: HashMap<String, String>) -> core::Labels {
    map.into_iter().collect()
}

/// CRI timestamps are nanoseconds since the epoch; 0 means "not set".
fn time(nanos: i64) -> Option<SystemTime> {
    u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
}

fn time_or_epoch(nanos: i64) -> SystemTime {
    time(nanos).unwrap_or(UNIX_EPOCH)
}

/// The CRI's "no filter" for an optional id is the empty string.
fn id_or_empty(id: Option<&impl ToString>) -> String {
    id.map(ToString::to_string).unwrap_or_default()
}

fn image_spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    }
}

fn namespace_mode(mode: core::NamespaceMode) -> i32 {
    (match mode {
        core::NamespaceMode::Pod => pb::NamespaceMode::Pod,
        core::NamespaceMode::Container => pb::NamespaceMode::Container,
        core::NamespaceMode::Node => pb::NamespaceMode::Node,
    }) as i32
}

fn from_namespace_mode(mode: i32) -> core::NamespaceMode {
    match pb::NamespaceMode::try_from(mode) {
        Ok(pb::NamespaceMode::Container) => core::NamespaceMode::Container,
        Ok(pb::NamespaceMode::Node) => core::NamespaceMode::Node,
        // TARGET shares another container's namespace: private to the pod either way.
        Ok(pb::NamespaceMode::Pod | pb::NamespaceMode::Target) | Err(_) => core::NamespaceMode::Pod,
    }
}

fn namespace_option(ns: &core::Namespaces) -> pb::NamespaceOption {
    pb::NamespaceOption {
        network: namespace_mode(ns.network),
        pid: namespace_mode(ns.pid),
        ipc: namespace_mode(ns.ipc),
        target_id: String::new(),
    }
}

fn from_namespace_option(ns: &pb::NamespaceOption) -> core::Namespaces {
    core::Namespaces {
        network: from_namespace_mode(ns.network),
        pid: from_namespace_mode(ns.pid),
        ipc: from_namespace_mode(ns.ipc),
    }
}

fn int64(value: Option<i64>) -> Option<pb::Int64Value> {
    value.map(|value| pb::Int64Value { value })
}

// ---------------------------------------------------------------- sandboxes

fn sandbox_metadata(m: &core::SandboxMetadata) -> pb::PodSandboxMetadata {
    pb::PodSandboxMetadata {
        name: m.name.clone(),
        uid: m.uid.to_string(),
        namespace: m.namespace.clone(),
        attempt: m.attempt,
    }
}

fn from_sandbox_metadata(m: Option<pb::PodSandboxMetadata>) -> core::SandboxMetadata {
    let m = m.unwrap_or_default();
    core::SandboxMetadata {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid.into(),
        attempt: m.attempt,
    }
}

fn protocol(p: core::Protocol) -> i32 {
    (match p {
        core::Protocol::Tcp => pb::Protocol::Tcp,
        core::Protocol::Udp => pb::Protocol::Udp,
        core::Protocol::Sctp => pb::Protocol::Sctp,
    }) as i32
}

pub(crate) fn sandbox_config(c: &core::SandboxConfig) -> pb::PodSandboxConfig {
    pb::PodSandboxConfig {
        metadata: Some(sandbox_metadata(&c.metadata)),
        hostname: c.hostname.clone(),
        log_directory: c.log_directory.to_string_lossy().into_owned(),
        dns_config: c.dns.as_ref().map(|d| pb::DnsConfig {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        port_mappings: c
            .port_mappings
            .iter()
            .map(|p| pb::PortMapping {
                protocol: protocol(p.protocol),
                container_port: p.container_port.into(),
                host_port: p.host_port.into(),
                host_ip: p.host_ip.clone(),
            })
            .collect(),
        labels: map(&c.labels),
        annotations: map(&c.annotations),
        linux: Some(pb::LinuxPodSandboxConfig {
            cgroup_parent: c.cgroup_parent.clone(),
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_option(&c.namespaces)),
                privileged: c.privileged,
                ..Default::default()
            }),
            sysctls: map(&c.sysctls),
            ..Default::default()
        }),
    }
}

fn sandbox_state(state: i32) -> core::SandboxState {
    match pb::PodSandboxState::try_from(state) {
        Ok(pb::PodSandboxState::SandboxReady) => core::SandboxState::Ready,
        _ => core::SandboxState::NotReady,
    }
}

pub(crate) fn sandbox(s: pb::PodSandbox) -> core::Sandbox {
    core::Sandbox {
        id: s.id.into(),
        metadata: from_sandbox_metadata(s.metadata),
        state: sandbox_state(s.state),
        created_at: time_or_epoch(s.created_at),
        labels: labels(s.labels),
        annotations: labels(s.annotations),
        runtime_handler: s.runtime_handler,
    }
}

pub(crate) fn sandbox_status(s: pb::PodSandboxStatus) -> core::SandboxStatus {
    let network = s.network.unwrap_or_default();
    let namespaces = s
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .map(|o| from_namespace_option(&o))
        .unwrap_or_default();
    core::SandboxStatus {
        id: s.id.into(),
        metadata: from_sandbox_metadata(s.metadata),
        state: sandbox_state(s.state),
        created_at: time_or_epoch(s.created_at),
        ip: network.ip.parse().ok(),
        additional_ips: network
            .additional_ips
            .iter()
            .filter_map(|ip| ip.ip.parse().ok())
            .collect(),
        namespaces,
        labels: labels(s.labels),
        annotations: labels(s.annotations),
        runtime_handler: s.runtime_handler,
    }
}

pub(crate) fn sandbox_filter(f: &core::SandboxFilter) -> pb::PodSandboxFilter {
    pb::PodSandboxFilter {
        id: id_or_empty(f.id.as_ref()),
        state: f.state.map(|state| pb::PodSandboxStateValue {
            state: match state {
                core::SandboxState::Ready => pb::PodSandboxState::SandboxReady,
                core::SandboxState::NotReady => pb::PodSandboxState::SandboxNotready,
            } as i32,
        }),
        label_selector: map(&f.labels),
    }
}

// ---------------------------------------------------------------- containers

pub(crate) fn resources(r: &core::LinuxResources) -> pb::LinuxContainerResources {
    pb::LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: Vec::new(),
        unified: map(&r.unified),
        memory_swap_limit_in_bytes: r.memory_swap_limit_bytes,
    }
}

fn from_resources(r: pb::LinuxContainerResources) -> core::LinuxResources {
    core::LinuxResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus,
        cpuset_mems: r.cpuset_mems,
        unified: labels(r.unified),
        memory_swap_limit_bytes: r.memory_swap_limit_in_bytes,
    }
}

fn from_mount(m: pb::Mount) -> core::Mount {
    core::Mount {
        propagation: match pb::MountPropagation::try_from(m.propagation) {
            Ok(pb::MountPropagation::PropagationHostToContainer) => {
                core::MountPropagation::HostToContainer
            }
            Ok(pb::MountPropagation::PropagationBidirectional) => {
                core::MountPropagation::Bidirectional
            }
            _ => core::MountPropagation::Private,
        },
        container_path: m.container_path,
        host_path: m.host_path,
        readonly: m.readonly,
    }
}

fn mount(m: &core::Mount) -> pb::Mount {
    pb::Mount {
        container_path: m.container_path.clone(),
        host_path: m.host_path.clone(),
        readonly: m.readonly,
        selinux_relabel: false,
        propagation: (match m.propagation {
            core::MountPropagation::Private => pb::MountPropagation::PropagationPrivate,
            core::MountPropagation::HostToContainer => {
                pb::MountPropagation::PropagationHostToContainer
            }
            core::MountPropagation::Bidirectional => pb::MountPropagation::PropagationBidirectional,
        }) as i32,
    }
}

fn container_security(s: &core::ContainerSecurity) -> pb::LinuxContainerSecurityContext {
    let capabilities =
        (!s.add_capabilities.is_empty() || !s.drop_capabilities.is_empty()).then(|| {
            pb::Capability {
                add_capabilities: s.add_capabilities.clone(),
                drop_capabilities: s.drop_capabilities.clone(),
                add_ambient_capabilities: Vec::new(),
            }
        });
    pb::LinuxContainerSecurityContext {
        capabilities,
        privileged: s.privileged,
        namespace_options: Some(namespace_option(&s.namespaces)),
        run_as_user: int64(s.run_as_user),
        run_as_group: int64(s.run_as_group),
        run_as_username: s.run_as_username.clone(),
        readonly_rootfs: s.readonly_rootfs,
        supplemental_groups: s.supplemental_groups.clone(),
        no_new_privs: s.no_new_privs,
        masked_paths: s.masked_paths.clone(),
        readonly_paths: s.readonly_paths.clone(),
        seccomp: s.seccomp.as_ref().map(security_profile),
        apparmor: s.apparmor.as_ref().map(security_profile),
        ..Default::default()
    }
}

fn security_profile(p: &core::SecurityProfile) -> pb::SecurityProfile {
    use pb::security_profile::ProfileType;
    let (kind, localhost_ref) = match p {
        core::SecurityProfile::RuntimeDefault => (ProfileType::RuntimeDefault, String::new()),
        core::SecurityProfile::Unconfined => (ProfileType::Unconfined, String::new()),
        core::SecurityProfile::Localhost(path) => (ProfileType::Localhost, path.clone()),
    };
    pb::SecurityProfile {
        profile_type: kind as i32,
        localhost_ref,
    }
}

pub(crate) fn container_config(c: &core::ContainerConfig) -> pb::ContainerConfig {
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: c.metadata.name.clone(),
            attempt: c.metadata.attempt,
        }),
        image: Some(image_spec(&c.image)),
        command: c.command.clone(),
        args: c.args.clone(),
        working_dir: c.working_dir.clone(),
        envs: c
            .env
            .iter()
            .map(|e| pb::KeyValue {
                key: e.name.clone(),
                value: e.value.clone(),
            })
            .collect(),
        mounts: c.mounts.iter().map(mount).collect(),
        devices: Vec::new(),
        labels: map(&c.labels),
        annotations: map(&c.annotations),
        log_path: c.log_path.to_string_lossy().into_owned(),
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        tty: c.tty,
        linux: Some(pb::LinuxContainerConfig {
            resources: c.resources.as_ref().map(resources),
            security_context: Some(container_security(&c.security)),
        }),
    }
}

fn from_container_metadata(m: Option<pb::ContainerMetadata>) -> core::ContainerMetadata {
    let m = m.unwrap_or_default();
    core::ContainerMetadata {
        name: m.name,
        attempt: m.attempt,
    }
}

fn container_state(state: i32) -> core::ContainerState {
    match pb::ContainerState::try_from(state) {
        Ok(pb::ContainerState::ContainerCreated) => core::ContainerState::Created,
        Ok(pb::ContainerState::ContainerRunning) => core::ContainerState::Running,
        Ok(pb::ContainerState::ContainerExited) => core::ContainerState::Exited,
        Ok(pb::ContainerState::ContainerUnknown) | Err(_) => core::ContainerState::Unknown,
    }
}

fn container_state_value(state: core::ContainerState) -> pb::ContainerStateValue {
    pb::ContainerStateValue {
        state: match state {
            core::ContainerState::Created => pb::ContainerState::ContainerCreated,
            core::ContainerState::Running => pb::ContainerState::ContainerRunning,
            core::ContainerState::Exited => pb::ContainerState::ContainerExited,
            core::ContainerState::Unknown => pb::ContainerState::ContainerUnknown,
        } as i32,
    }
}

pub(crate) fn container(c: pb::Container) -> core::Container {
    core::Container {
        id: c.id.into(),
        sandbox_id: c.pod_sandbox_id.into(),
        metadata: from_container_metadata(c.metadata),
        image: c.image.map(|i| i.image).unwrap_or_default(),
        image_ref: c.image_ref,
        state: container_state(c.state),
        created_at: time_or_epoch(c.created_at),
        labels: labels(c.labels),
        annotations: labels(c.annotations),
    }
}

pub(crate) fn container_status(s: pb::ContainerStatus) -> core::ContainerStatus {
    core::ContainerStatus {
        id: s.id.into(),
        metadata: from_container_metadata(s.metadata),
        state: container_state(s.state),
        created_at: time_or_epoch(s.created_at),
        started_at: time(s.started_at),
        finished_at: time(s.finished_at),
        exit_code: s.exit_code,
        image: s.image.map(|i| i.image).unwrap_or_default(),
        image_ref: s.image_ref,
        reason: s.reason,
        message: s.message,
        labels: labels(s.labels),
        annotations: labels(s.annotations),
        log_path: PathBuf::from(s.log_path),
        resources: s.resources.and_then(|r| r.linux).map(from_resources),
        mounts: s.mounts.into_iter().map(from_mount).collect(),
    }
}

pub(crate) fn container_filter(f: &core::ContainerFilter) -> pb::ContainerFilter {
    pb::ContainerFilter {
        id: id_or_empty(f.id.as_ref()),
        state: f.state.map(container_state_value),
        pod_sandbox_id: id_or_empty(f.sandbox_id.as_ref()),
        label_selector: map(&f.labels),
    }
}

pub(crate) fn container_stats_filter(f: &core::ContainerStatsFilter) -> pb::ContainerStatsFilter {
    pb::ContainerStatsFilter {
        id: id_or_empty(f.id.as_ref()),
        pod_sandbox_id: id_or_empty(f.sandbox_id.as_ref()),
        label_selector: map(&f.labels),
    }
}

pub(crate) fn container_stats(s: pb::ContainerStats) -> core::ContainerStats {
    let attributes = s.attributes.unwrap_or_default();
    let memory = s.memory.unwrap_or_default();
    core::ContainerStats {
        id: attributes.id.into(),
        metadata: from_container_metadata(attributes.metadata),
        labels: labels(attributes.labels),
        cpu_usage_core_nanos: s
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|v| v.value),
        memory_working_set_bytes: memory.working_set_bytes.map(|v| v.value),
        memory_usage_bytes: memory.usage_bytes.map(|v| v.value),
        writable_layer_bytes: s.writable_layer.and_then(|w| w.used_bytes).map(|v| v.value),
    }
}

// ---------------------------------------------------------------- images

pub(crate) fn image_ref(image: &str) -> pb::ImageSpec {
    image_spec(image)
}

pub(crate) fn auth(a: &core::RegistryAuth) -> pb::AuthConfig {
    pb::AuthConfig {
        username: a.username.clone(),
        password: a.password.clone(),
        auth: a.auth.clone(),
        server_address: a.server_address.clone(),
        identity_token: a.identity_token.clone(),
        registry_token: a.registry_token.clone(),
    }
}

pub(crate) fn image(i: pb::Image) -> core::Image {
    core::Image {
        id: i.id,
        repo_tags: i.repo_tags,
        repo_digests: i.repo_digests,
        size_bytes: i.size,
        uid: i.uid.map(|u| u.value),
        username: i.username,
        pinned: i.pinned,
    }
}

pub(crate) fn filesystem_usage(f: pb::FilesystemUsage) -> core::FilesystemUsage {
    core::FilesystemUsage {
        mountpoint: f.fs_id.map(|f| f.mountpoint).unwrap_or_default(),
        used_bytes: f.used_bytes.map(|v| v.value),
        inodes_used: f.inodes_used.map(|v| v.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timestamps_are_unset() {
        assert_eq!(time(0), None);
        assert_eq!(time(-5), None);
        assert_eq!(
            time(1_500_000_000),
            Some(UNIX_EPOCH + Duration::from_millis(1500))
        );
    }

    #[test]
    fn security_profiles_and_paths_reach_the_wire() {
        let security = core::ContainerSecurity {
            seccomp: Some(core::SecurityProfile::Unconfined),
            apparmor: Some(core::SecurityProfile::Localhost("strict".into())),
            masked_paths: vec!["/proc/kcore".into()],
            ..Default::default()
        };
        let wire = container_security(&security);
        let seccomp = wire.seccomp.expect("seccomp");
        assert_eq!(
            seccomp.profile_type,
            pb::security_profile::ProfileType::Unconfined as i32
        );
        let apparmor = wire.apparmor.expect("apparmor");
        assert_eq!(
            (apparmor.profile_type, apparmor.localhost_ref.as_str()),
            (
                pb::security_profile::ProfileType::Localhost as i32,
                "strict"
            )
        );
        assert_eq!(wire.masked_paths, ["/proc/kcore"]);
        // Unset stays unset: the runtime's own default applies.
        assert_eq!(container_security(&Default::default()).apparmor, None);
    }

    #[test]
    fn host_network_pod_asks_for_the_node_namespace() {
        let config = core::SandboxConfig {
            namespaces: core::Namespaces {
                network: core::NamespaceMode::Node,
                ..Default::default()
            },
            ..Default::default()
        };
        let wire = sandbox_config(&config);
        let ns = wire
            .linux
            .and_then(|l| l.security_context)
            .and_then(|s| s.namespace_options)
            .expect("namespace options are always sent");
        assert_eq!(ns.network, pb::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, pb::NamespaceMode::Container as i32);
        assert_eq!(ns.ipc, pb::NamespaceMode::Pod as i32);
    }

    #[test]
    fn sandbox_status_reads_ips_and_skips_garbage() {
        let status = sandbox_status(pb::PodSandboxStatus {
            id: "s1".into(),
            network: Some(pb::PodSandboxNetworkStatus {
                ip: "10.217.0.5".into(),
                additional_ips: vec![
                    pb::PodIp {
                        ip: "fd00::5".into(),
                    },
                    pb::PodIp {
                        ip: "not-an-ip".into(),
                    },
                ],
            }),
            ..Default::default()
        });
        assert_eq!(status.ip, Some("10.217.0.5".parse().expect("literal")));
        assert_eq!(
            status.additional_ips,
            vec!["fd00::5".parse::<std::net::IpAddr>().expect("literal")]
        );
        assert_eq!(status.state, core::SandboxState::Ready);
    }

    #[test]
    fn unknown_enum_values_degrade_safely() {
        assert_eq!(container_state(42), core::ContainerState::Unknown);
        assert_eq!(sandbox_state(42), core::SandboxState::NotReady);
    }
}
