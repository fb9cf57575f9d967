//! Kubernetes objects as plugins see them: the typed WIT view plus the whole
//! object as JSON.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::bindings::types;

fn pairs(map: Option<&BTreeMap<String, String>>) -> Vec<types::KeyValue> {
    map.into_iter()
        .flatten()
        .map(|(key, value)| types::KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

fn quantities(map: Option<&BTreeMap<String, Quantity>>) -> Result<Vec<types::Quantity>, String> {
    map.into_iter()
        .flatten()
        .map(|(name, q)| {
            Ok(types::Quantity {
                name: name.clone(),
                text: q.0.clone(),
                milli: wasmlet_rules::quantity::milli(&q.0).map_err(|e| format!("{name}: {e}"))?,
            })
        })
        .collect()
}

fn port_number(n: i32, field: &str) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("{field}: {n} is not a port"))
}

pub use wasmlet_rules::default_pull_policy;

/// A container's ports as plugins see them; `at` names the container in errors.
pub fn container_ports(
    ports: &[k8s::ContainerPort],
    at: &str,
) -> Result<Vec<types::ContainerPort>, String> {
    ports
        .iter()
        .map(|p| {
            Ok(types::ContainerPort {
                name: p.name.clone(),
                container_port: port_number(
                    p.container_port,
                    &format!("{at}.ports.containerPort"),
                )?,
                host_port: p
                    .host_port
                    .map(|h| port_number(h, &format!("{at}.ports.hostPort")))
                    .transpose()?,
                host_ip: p.host_ip.clone(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
        })
        .collect()
}

fn container(
    c: &k8s::Container,
    kind: types::ContainerKind,
    at: &str,
) -> Result<types::Container, String> {
    let image = c.image.clone().unwrap_or_default();
    let ports = container_ports(c.ports.as_deref().unwrap_or_default(), at)?;
    let resources = c.resources.as_ref();
    let security_context = c.security_context.as_ref().map(|s| {
        let caps = s.capabilities.as_ref();
        types::SecurityContext {
            privileged: s.privileged,
            run_as_user: s.run_as_user,
            run_as_group: s.run_as_group,
            run_as_non_root: s.run_as_non_root,
            read_only_root_filesystem: s.read_only_root_filesystem,
            allow_privilege_escalation: s.allow_privilege_escalation,
            capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
            capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        }
    });
    Ok(types::Container {
        name: c.name.clone(),
        kind,
        image_pull_policy: c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).into()),
        image,
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        ports,
        resources: types::ResourceRequirements {
            requests: quantities(resources.and_then(|r| r.requests.as_ref()))
                .map_err(|e| format!("{at}.resources.requests.{e}"))?,
            limits: quantities(resources.and_then(|r| r.limits.as_ref()))
                .map_err(|e| format!("{at}.resources.limits.{e}"))?,
        },
        security_context,
    })
}

/// Where a pod came from (`file`, `http`, `api`): its
/// `kubernetes.io/config.source` annotation, else `default`.
pub fn config_source<'a>(pod: &'a k8s::Pod, default: &'a str) -> &'a str {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/config.source"))
        .map_or(default, String::as_str)
}

/// The plugin view of `pod`, which came from `source` (`file`, `http`, `api`).
/// Errors name the field that could not be represented.
pub fn pod_view(pod: &k8s::Pod, source: &str) -> Result<types::Pod, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let mut containers = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            types::ContainerKind::Sidecar
        } else {
            types::ContainerKind::Init
        };
        containers.push(container(c, kind, &format!("spec.initContainers[{i}]"))?);
    }
    for (i, c) in spec.containers.iter().enumerate() {
        containers.push(container(
            c,
            types::ContainerKind::App,
            &format!("spec.containers[{i}]"),
        )?);
    }
    let tolerations = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| types::Toleration {
            key: t.key.clone(),
            operator: t.operator.clone().unwrap_or_else(|| "Equal".into()),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect();
    Ok(types::Pod {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        uid: meta.uid.clone().unwrap_or_default(),
        labels: pairs(meta.labels.as_ref()),
        annotations: pairs(meta.annotations.as_ref()),
        source: source.into(),
        node_name: spec.node_name.clone().unwrap_or_default(),
        node_selector: pairs(spec.node_selector.as_ref()),
        host_network: spec.host_network.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        containers,
        tolerations,
        priority: spec.priority,
        priority_class_name: spec.priority_class_name.clone(),
        restart_policy: spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into()),
        json: serde_json::to_string(pod).map_err(|e| format!("pod as JSON: {e}"))?,
    })
}

/// The plugin view of `node`.
pub fn node_view(node: &k8s::Node) -> Result<types::NodeInfo, String> {
    let status = node.status.as_ref();
    Ok(types::NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: pairs(node.metadata.labels.as_ref()),
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(|t| types::Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone(),
            })
            .collect(),
        capacity: quantities(status.and_then(|s| s.capacity.as_ref()))
            .map_err(|e| format!("status.capacity.{e}"))?,
        allocatable: quantities(status.and_then(|s| s.allocatable.as_ref()))
            .map_err(|e| format!("status.allocatable.{e}"))?,
    })
}

fn port_of(port: &IntOrString, field: &str) -> Result<types::Port, String> {
    match port {
        IntOrString::Int(n) => port_number(*n, field).map(types::Port::Number),
        IntOrString::String(name) => Ok(types::Port::Name(name.clone())),
    }
}

fn http_get(action: &k8s::HTTPGetAction, at: &str) -> Result<types::Handler, String> {
    Ok(types::Handler::HttpGet(types::HttpGetAction {
        scheme: action.scheme.clone().unwrap_or_else(|| "HTTP".into()),
        host: action.host.clone().filter(|h| !h.is_empty()),
        path: action.path.clone().unwrap_or_else(|| "/".into()),
        port: port_of(&action.port, &format!("{at}.httpGet.port"))?,
        headers: action
            .http_headers
            .iter()
            .flatten()
            .map(|h| types::KeyValue {
                key: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
    }))
}

fn tcp_socket(action: &k8s::TCPSocketAction, at: &str) -> Result<types::Handler, String> {
    Ok(types::Handler::TcpSocket(types::TcpSocketAction {
        host: action.host.clone().filter(|h| !h.is_empty()),
        port: port_of(&action.port, &format!("{at}.tcpSocket.port"))?,
    }))
}

/// A probe's handler as plugins see it, and its kind (`exec`, `http-get`,
/// `tcp-socket`, `grpc`): the agent runs it with the plugin `probe-<kind>`.
pub fn probe_handler(probe: &k8s::Probe) -> Result<(&'static str, types::Handler), String> {
    if let Some(exec) = &probe.exec {
        return Ok((
            "exec",
            types::Handler::Exec(exec.command.clone().unwrap_or_default()),
        ));
    }
    if let Some(action) = &probe.http_get {
        return http_get(action, "probe").map(|h| ("http-get", h));
    }
    if let Some(action) = &probe.tcp_socket {
        return tcp_socket(action, "probe").map(|h| ("tcp-socket", h));
    }
    if let Some(grpc) = &probe.grpc {
        return Ok((
            "grpc",
            types::Handler::Grpc(types::GrpcAction {
                port: port_number(grpc.port, "probe.grpc.port")?,
                service: grpc.service.clone().filter(|s| !s.is_empty()),
            }),
        ));
    }
    Err("probe: no handler (exec, httpGet, tcpSocket or grpc)".into())
}

/// A lifecycle hook's handler as plugins see it, and its kind (`exec`,
/// `http-get`, `sleep`; `tcp-socket` is deprecated but kept): the agent runs
/// it with the plugin `hook-<kind>`.
pub fn lifecycle_handler(
    handler: &k8s::LifecycleHandler,
) -> Result<(&'static str, types::Handler), String> {
    if let Some(exec) = &handler.exec {
        return Ok((
            "exec",
            types::Handler::Exec(exec.command.clone().unwrap_or_default()),
        ));
    }
    if let Some(action) = &handler.http_get {
        return http_get(action, "lifecycle").map(|h| ("http-get", h));
    }
    if let Some(sleep) = &handler.sleep {
        let seconds = u32::try_from(sleep.seconds).map_err(|_| {
            format!(
                "lifecycle.sleep.seconds: {} is not a duration",
                sleep.seconds
            )
        })?;
        return Ok(("sleep", types::Handler::Sleep(seconds)));
    }
    if let Some(action) = &handler.tcp_socket {
        return tcp_socket(action, "lifecycle").map(|h| ("tcp-socket", h));
    }
    Err("lifecycle handler: no handler (exec, httpGet or sleep)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> k8s::Pod {
        serde_json::from_value(json).expect("valid pod")
    }

    #[test]
    fn pod_view_orders_containers_and_defaults_like_kubernetes() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "initContainers": [
                    {"name": "setup", "image": "busybox:1.35"},
                    {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
                ],
                "containers": [{
                    "name": "app", "image": "nginx:latest",
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
                    "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}}
                }],
                "tolerations": [{"key": "gpu", "operator": "Exists"}]
            }
        }));
        let view = pod_view(&p, "file").expect("view");
        assert_eq!(view.namespace, "default");
        assert_eq!(view.restart_policy, "Always");
        assert_eq!(view.source, "file");
        let kinds: Vec<_> = view
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("setup", types::ContainerKind::Init),
                ("proxy", types::ContainerKind::Sidecar),
                ("app", types::ContainerKind::App)
            ]
        );
        let pull: Vec<_> = view
            .containers
            .iter()
            .map(|c| c.image_pull_policy.as_str())
            .collect();
        assert_eq!(pull, vec!["IfNotPresent", "Always", "Always"]);
        let app = &view.containers[2];
        assert_eq!(app.ports[0].host_port, Some(8080));
        assert_eq!(app.ports[0].protocol, "TCP");
        let cpu = &app.resources.requests[0];
        assert_eq!((cpu.name.as_str(), cpu.milli), ("cpu", 250));
        let sc = app.security_context.as_ref().expect("security context");
        assert_eq!(sc.privileged, Some(true));
        assert_eq!(sc.capabilities_add, vec!["NET_ADMIN"]);
        assert_eq!(view.tolerations[0].operator, "Exists");
        let back: serde_json::Value = serde_json::from_str(&view.json).expect("json");
        assert_eq!(back["spec"]["containers"][0]["name"], "app");
    }

    #[test]
    fn bad_quantity_names_the_field() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "lots"}}}]}
        }));
        let err = pod_view(&p, "file").expect_err("bad quantity");
        assert!(
            err.starts_with("spec.containers[0].resources.limits.memory"),
            "{err}"
        );
    }
}
