//! A pod as the runtime sees it, and the CRI configs the agent makes for it:
//! the labels and annotations follow the kubelet's, so tools that read
//! `io.kubernetes.*` (crictl, log collectors) understand wasmlet's pods.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest, Sha256};
use wasmlet_rules::downward::{self, RuntimeFacts};
use wasmlet_rules::expansion::Expanded;
use wasmlet_rules::quantity;

use super::security_context::has_privileged_container;
use super::termination_message;
use crate::api_objects::{Fetched, ObjectKind};
use crate::logs;
use crate::network;
use crate::pod_ext::{PodExt, PodUidExt};
use crate::sysctl;
use wasmlet_core::{
    ContainerConfig, ContainerFilter, ContainerMetadata, ContainerRuntime, ContainerSecurity,
    ContainerState, ContainerStatus, DnsConfig, EnvVar, ErrorKind, Labels, LinuxResources, Mount,
    NamespaceMode, Namespaces, PodUid, PortMapping, Protocol, RuntimeError, SandboxConfig,
    SandboxFilter, SandboxMetadata, SandboxRuntime, SandboxState, SandboxStatus,
};

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
/// Which agent owns a runtime object. Not the kubelet's: it lets several
/// agents (e.g. tests) share one containerd without touching each other's pods.
pub const AGENT: &str = "io.wasmlet.agent";

/// Everything the runtime has of one pod, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimePod {
    pub uid: PodUid,
    pub name: String,
    pub namespace: String,
    pub sandboxes: Vec<SandboxStatus>,
    pub containers: Vec<ContainerStatus>,
}

impl RuntimePod {
    pub fn latest_sandbox(&self) -> Option<&SandboxStatus> {
        self.sandboxes.first()
    }

    /// The newest container of this name, and the one before it.
    pub fn latest(&self, name: &str) -> (Option<&ContainerStatus>, Option<&ContainerStatus>) {
        let mut of_name = self.containers.iter().filter(|c| c.metadata.name == name);
        (of_name.next(), of_name.next())
    }

    pub fn running(&self) -> impl Iterator<Item = &ContainerStatus> {
        self.containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
    }

    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty() && self.containers.is_empty()
    }

    /// Whether anything still runs (a ready sandbox or a running container).
    pub fn is_running(&self) -> bool {
        self.running().next().is_some()
            || self
                .sandboxes
                .iter()
                .any(|s| s.state == SandboxState::Ready)
    }

    fn sort(&mut self) {
        self.sandboxes.sort_by(|a, b| {
            (b.metadata.attempt, b.created_at).cmp(&(a.metadata.attempt, a.created_at))
        });
        self.containers
            .sort_by_key(|c| std::cmp::Reverse(c.created_at));
    }
}

/// A container's restart count, as recorded on it.
pub fn restart_count(status: &ContainerStatus) -> i32 {
    status
        .annotations
        .get(RESTART_COUNT)
        .and_then(|n| n.parse().ok())
        .unwrap_or(status.metadata.attempt as i32)
}

/// Reads one pod from the runtime: its sandboxes and containers, with status.
/// Objects that vanish while it looks are left out.
pub async fn inspect<R: SandboxRuntime + ContainerRuntime>(
    runtime: &R,
    agent: &str,
    uid: &PodUid,
) -> Result<RuntimePod, RuntimeError> {
    let labels = Labels::from([
        (AGENT.to_owned(), agent.to_owned()),
        (POD_UID.to_owned(), uid.to_string()),
    ]);
    let sandboxes = runtime
        .list_sandboxes(&SandboxFilter {
            labels: labels.clone(),
            ..Default::default()
        })
        .await?;
    let containers = runtime
        .list_containers(&ContainerFilter {
            labels,
            ..Default::default()
        })
        .await?;
    let mut pod = RuntimePod {
        uid: uid.clone(),
        ..Default::default()
    };
    for sandbox in sandboxes {
        pod.name.clone_from(&sandbox.metadata.name);
        pod.namespace.clone_from(&sandbox.metadata.namespace);
        match runtime.sandbox_status(&sandbox.id).await {
            Ok(status) => pod.sandboxes.push(status),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    for container in containers {
        match runtime.container_status(&container.id).await {
            Ok(status) => pod.containers.push(status),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    if pod
        .containers
        .iter()
        .any(|c| c.state == ContainerState::Exited)
    {
        // Files on the host: read off the runtime's threads.
        let containers = std::mem::take(&mut pod.containers);
        let read = tokio::task::spawn_blocking(move || {
            let mut containers = containers;
            containers.iter_mut().for_each(add_termination_message);
            containers
        });
        pod.containers = read.await.map_err(|panicked| {
            RuntimeError::new("ContainerStatus", ErrorKind::Internal, panicked.to_string())
        })?;
    }
    pod.sort();
    Ok(pod)
}

fn add_termination_message(status: &mut ContainerStatus) {
    let path = status.annotations.get(TERMINATION_MESSAGE_PATH).cloned();
    let policy = status.annotations.get(TERMINATION_MESSAGE_POLICY).cloned();
    termination_message::add_to(status, path.as_deref(), policy.as_deref());
}

/// A content hash of what a container asks for: a change restarts it.
pub fn container_hash(container: &Container) -> String {
    // The JSON of the k8s type is canonical enough: fields in declaration order.
    let json = serde_json::to_vec(container).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// The pod's IP as the kubelet reports it: the node's for a host-network
/// pod, else its newest sandbox's.
pub fn pod_ip(pod: &Pod, runtime: &RuntimePod, host_ip: Option<IpAddr>) -> Option<IpAddr> {
    if pod.host_network() {
        host_ip
    } else {
        runtime.latest_sandbox().and_then(|s| s.ip)
    }
}

/// `pod`'s log directory under `log_root` ([`logs::pod_log_dir`]).
pub fn pod_log_dir(log_root: &Path, pod: &Pod) -> PathBuf {
    logs::pod_log_dir(
        log_root,
        pod.namespace_or_default(),
        pod.name_str(),
        pod.uid_str(),
    )
}

fn pod_labels(pod: &Pod, agent: &str) -> Labels {
    Labels::from([
        (AGENT.to_owned(), agent.to_owned()),
        (POD_NAME.to_owned(), pod.name_str().to_owned()),
        (
            POD_NAMESPACE.to_owned(),
            pod.namespace_or_default().to_owned(),
        ),
        (POD_UID.to_owned(), pod.uid_str().to_owned()),
    ])
}

/// The sandbox for `pod`'s `attempt`, with its resolver (`dns`) and its
/// hostname in `cluster_domain`. An error is the kubelet's "Failed to
/// generate sandbox config".
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    agent: &str,
    log_root: &Path,
    dns: Option<DnsConfig>,
    cluster_domain: &str,
) -> Result<SandboxConfig, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.extend(pod_labels(pod, agent));
    let mut annotations = meta.annotations.clone().unwrap_or_default();
    annotations.insert(
        GRACE_PERIOD.to_owned(),
        pod.grace_period_seconds().to_string(),
    );
    let node = |on: Option<bool>, otherwise| {
        if on.unwrap_or(false) {
            NamespaceMode::Node
        } else {
            otherwise
        }
    };
    // A host-network pod has the node's hostname.
    let hostname = if pod.host_network() {
        String::new()
    } else {
        let (hostname, domain) = network::hostname_and_domain(pod, cluster_domain)?;
        network::kernel_hostname(pod, &hostname, domain.as_deref())?
    };
    let port_mappings = spec
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(PortMapping {
                protocol: protocol(p.protocol.as_deref()),
                container_port: u16::try_from(p.container_port).ok()?,
                host_port: u16::try_from(p.host_port?).ok()?,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    Ok(SandboxConfig {
        metadata: SandboxMetadata {
            name: pod.name_str().to_owned(),
            namespace: pod.namespace_or_default().to_owned(),
            uid: pod.pod_uid(),
            attempt,
        },
        hostname,
        log_directory: pod_log_dir(log_root, pod),
        dns,
        port_mappings,
        labels,
        annotations,
        namespaces: Namespaces {
            network: node(spec.and_then(|s| s.host_network), NamespaceMode::Pod),
            pid: node(
                spec.and_then(|s| s.host_pid),
                if spec.and_then(|s| s.share_process_namespace) == Some(true) {
                    NamespaceMode::Pod
                } else {
                    NamespaceMode::Container
                },
            ),
            ipc: node(spec.and_then(|s| s.host_ipc), NamespaceMode::Pod),
        },
        sysctls: sysctl::for_sandbox(pod),
        privileged: has_privileged_container(pod),
        ..Default::default()
    })
}

fn protocol(name: Option<&str>) -> Protocol {
    match name {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// A container's environment as the kubelet makes it: `envFrom` first (a
/// ConfigMap's or Secret's keys, prefixed), then `env`, with `fieldRef` and
/// `resourceFieldRef` read through the downward API and
/// `configMapKeyRef`/`secretKeyRef` from `objects`, and `$(VAR)` references
/// expanded (env in declaration order, then command and args against the
/// whole environment). Also what was left out, and why (keys that are no
/// variable names). An error is a container config error.
pub fn environment(
    pod: &Pod,
    container: &Container,
    facts: RuntimeFacts<'_>,
    objects: &Fetched,
) -> Result<(Expanded, Vec<String>), String> {
    let mut skipped = Vec::new();
    // The Services' variables first; envFrom's and env's win over them.
    let mut from = objects.service_env()?.to_vec();
    let namespace = pod.namespace_or_default();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional) = if let Some(c) = &source.config_map_ref {
            (ObjectKind::ConfigMap, c.name.as_str(), c.optional)
        } else if let Some(s) = &source.secret_ref {
            (ObjectKind::Secret, s.name.as_str(), s.optional)
        } else {
            continue;
        };
        let Some(data) = objects.object(kind, name)? else {
            if optional.unwrap_or(false) {
                continue;
            }
            return Err(format!("{} {name:?} not found", kind.lowercase()));
        };
        let mut invalid = Vec::new();
        for (key, value) in data {
            let variable = format!("{prefix}{key}");
            if is_env_var_name(&variable) {
                from.push((variable, String::from_utf8_lossy(value).into_owned()));
            } else {
                invalid.push(key.as_str());
            }
        }
        if !invalid.is_empty() {
            skipped.push(format!(
                "Keys [{}] from the EnvFrom {} {namespace}/{name} were skipped since they are invalid environment variable names.",
                invalid.join(", "),
                kind.lowercase()
            ));
        }
    }
    let key_ref = |kind: ObjectKind, name: &str, key: &str, optional: Option<bool>| {
        let optional = optional.unwrap_or(false);
        let Some(data) = objects.object(kind, name)? else {
            return if optional {
                Ok(None)
            } else {
                Err(format!("{} {name:?} not found", kind.lowercase()))
            };
        };
        match data.get(key) {
            Some(value) => Ok(Some(String::from_utf8_lossy(value).into_owned())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {key} in {} {namespace}/{name}",
                match kind {
                    ObjectKind::ConfigMap => "ConfigMap",
                    ObjectKind::Secret => "Secret",
                }
            )),
        }
    };
    let expanded = wasmlet_rules::expansion::container(container, from, |source| {
        if let Some(field) = &source.field_ref {
            downward::field_value(pod, field, facts).map(Some)
        } else if let Some(resource) = &source.resource_field_ref {
            downward::resource_value(pod, Some(container), resource, facts).map(Some)
        } else if let Some(r) = &source.config_map_key_ref {
            key_ref(ObjectKind::ConfigMap, &r.name, &r.key, r.optional)
        } else if let Some(r) = &source.secret_key_ref {
            key_ref(ObjectKind::Secret, &r.name, &r.key, r.optional)
        } else {
            Err("an env valueFrom names no source".into())
        }
    })?;
    Ok((unique(expanded), skipped))
}

/// One variable per name, the last definition winning, at the place of the
/// first (a process sees only one of two, and not always the last).
fn unique(mut expanded: Expanded) -> Expanded {
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut env: Vec<(String, String)> = Vec::with_capacity(expanded.env.len());
    for (name, value) in expanded.env {
        match at.get(&name) {
            Some(&i) => env[i].1 = value,
            None => {
                at.insert(name.clone(), env.len());
                env.push((name, value));
            }
        }
    }
    expanded.env = env;
    expanded
}

/// A name the API accepts for an environment variable: printable ASCII
/// without `=` (the relaxed validation of Kubernetes 1.34).
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
}

/// The container config for `container` of `pod`, its `restart_count`-th
/// run, with its [`environment`] and the security
/// [`super::security_context`] worked out for it.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
    agent: &str,
    expanded: Expanded,
    security: ContainerSecurity,
    mounts: Vec<Mount>,
) -> ContainerConfig {
    let mut labels = pod_labels(pod, agent);
    labels.insert(CONTAINER_NAME.to_owned(), container.name.clone());
    let mut annotations = Labels::from([
        (CONTAINER_HASH.to_owned(), container_hash(container)),
        (RESTART_COUNT.to_owned(), restart_count.to_string()),
        (
            GRACE_PERIOD.to_owned(),
            pod.grace_period_seconds().to_string(),
        ),
    ]);
    // Read back when it has exited, for its termination message.
    if let Some(path) = termination_message::container_path(container) {
        annotations.insert(TERMINATION_MESSAGE_PATH.to_owned(), path.to_owned());
    }
    if let Some(policy) = &container.termination_message_policy {
        annotations.insert(TERMINATION_MESSAGE_POLICY.to_owned(), policy.clone());
    }
    let env = expanded
        .env
        .into_iter()
        .map(|(name, value)| EnvVar { name, value })
        .collect();
    ContainerConfig {
        metadata: ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        },
        image: container.image.clone().unwrap_or_default(),
        command: expanded.command,
        args: expanded.args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        env,
        mounts,
        labels,
        annotations,
        log_path: PathBuf::from(format!("{}/{restart_count}.log", container.name)),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        resources: Some(linux_resources(container)),
        security,
    }
}

/// CPU and memory as the kubelet maps them: shares from the request, a CFS
/// quota from the limit (100 ms period), the memory limit in bytes.
fn linux_resources(container: &Container) -> LinuxResources {
    const PERIOD_US: i64 = 100_000;
    let resources = container.resources.as_ref();
    let get = |limits: bool, name: &str| {
        let map = resources.and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        });
        map.and_then(|m| m.get(name))
            .and_then(|q| quantity::milli(&q.0).ok())
    };
    let cpu_request = get(false, "cpu").or_else(|| get(true, "cpu"));
    // Quantities saturate at i64::MAX, so the products are checked too;
    // shares are capped at the kernel's maximum, as the kubelet's.
    const MAX_SHARES: i64 = 262_144;
    let cpu_shares = cpu_request.map_or(2, |m| {
        (i128::from(m) * 1024 / 1000).clamp(2, i128::from(MAX_SHARES)) as i64
    });
    let cpu_quota = get(true, "cpu").map_or(0, |m| {
        i64::try_from(i128::from(m) * i128::from(PERIOD_US) / 1000)
            .unwrap_or(i64::MAX)
            .max(1000)
    });
    LinuxResources {
        cpu_period: if cpu_quota > 0 { PERIOD_US } else { 0 },
        cpu_quota,
        cpu_shares,
        memory_limit_bytes: get(true, "memory").map_or(0, |m| m / 1000),
        ..Default::default()
    }
}

/// When a container stopped, for back-off.
pub fn finished_at(status: &ContainerStatus) -> SystemTime {
    status
        .finished_at
        .or(status.started_at)
        .unwrap_or(status.created_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("prod".into());
        pod.metadata.uid = Some("u1".into());
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox:1.35".into()),
                ports: Some(vec![ContainerPort {
                    container_port: 80,
                    host_port: Some(8080),
                    ..Default::default()
                }]),
                resources: Some(ResourceRequirements {
                    requests: Some([("cpu".into(), Quantity("250m".into()))].into()),
                    limits: Some(
                        [
                            ("cpu".into(), Quantity("500m".into())),
                            ("memory".into(), Quantity("64Mi".into())),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        pod
    }

    #[test]
    fn configs_carry_the_kubelet_labels_and_resources() {
        let pod = pod();
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into()],
            ..Default::default()
        };
        let sandbox = sandbox_config(
            &pod,
            2,
            "node-a",
            Path::new("/var/log/pods"),
            Some(dns.clone()),
            "cluster.local",
        )
        .expect("valid");
        assert_eq!(sandbox.metadata.attempt, 2);
        assert_eq!(sandbox.hostname, "web");
        assert_eq!(sandbox.dns, Some(dns));
        assert_eq!(sandbox.labels[POD_UID], "u1");
        assert_eq!(sandbox.labels[AGENT], "node-a");
        assert_eq!(
            sandbox.log_directory,
            Path::new("/var/log/pods/prod_web_u1")
        );
        assert_eq!(sandbox.port_mappings[0].host_port, 8080);
        let spec_container = &pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let config = container_config(
            &pod,
            spec_container,
            3,
            "node-a",
            Expanded::default(),
            Default::default(),
            Vec::new(),
        );
        assert_eq!(config.labels[CONTAINER_NAME], "app");
        assert_eq!(config.annotations[RESTART_COUNT], "3");
        assert_eq!(config.log_path, Path::new("app/3.log"));
        let resources = config.resources.unwrap_or_default();
        assert_eq!(resources.cpu_shares, 256);
        assert_eq!(resources.cpu_quota, 50_000);
        assert_eq!(resources.memory_limit_bytes, 64 << 20);
    }

    #[test]
    fn the_hash_follows_the_spec() {
        let mut c = Container {
            name: "a".into(),
            image: Some("x:1".into()),
            ..Default::default()
        };
        let before = container_hash(&c);
        assert_eq!(before, container_hash(&c.clone()));
        c.image = Some("x:2".into());
        assert_ne!(before, container_hash(&c));
    }

    #[test]
    fn env_from_and_key_refs_read_config_maps_and_secrets() {
        let pod = pod();
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "app",
            "envFrom": [
                {"prefix": "CFG_", "configMapRef": {"name": "settings"}},
                {"secretRef": {"name": "absent", "optional": true}},
            ],
            "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "NONE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x", "optional": true}}},
                {"name": "URL", "value": "db://$(CFG_host)"},
            ],
        }))
        .expect("container");
        let mut objects = Fetched::default();
        let settings = [
            ("host".to_owned(), b"db1".to_vec()),
            ("bad=name".to_owned(), b"x".to_vec()),
        ];
        objects.insert_object(ObjectKind::ConfigMap, "settings", Some(settings.into()));
        objects.insert_object(ObjectKind::Secret, "absent", None);
        let creds = [("password".to_owned(), b"s3cret".to_vec())];
        objects.insert_object(ObjectKind::Secret, "creds", Some(creds.into()));
        let (env, skipped) =
            environment(&pod, &container, RuntimeFacts::default(), &objects).expect("env");
        let pairs: Vec<(&str, &str)> = env
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("CFG_host", "db1"),
                ("PASSWORD", "s3cret"),
                ("URL", "db://db1")
            ]
        );
        assert_eq!(
            skipped,
            [
                "Keys [bad=name] from the EnvFrom configmap prod/settings were skipped since they are invalid environment variable names."
            ]
        );

        // A key that is not there, not optional: the container's config error.
        let mut strict = container.clone();
        if let Some(env) = strict.env.as_mut() {
            env[1] = serde_json::from_value(serde_json::json!(
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}}
            ))
            .expect("var");
        }
        assert_eq!(
            environment(&pod, &strict, RuntimeFacts::default(), &objects).map(|_| ()),
            Err("couldn't find key x in ConfigMap prod/settings".to_owned())
        );

        // One that could not be read fails the container's config (not the
        // pod's volumes), saying why.
        objects.insert_failure(
            ObjectKind::Secret,
            "creds",
            "secret prod/creds could not be read: down",
        );
        assert_eq!(
            environment(&pod, &container, RuntimeFacts::default(), &objects).map(|_| ()),
            Err("secret prod/creds could not be read: down".to_owned())
        );
    }
}
