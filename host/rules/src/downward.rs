//! The downward API: what a pod may read of itself through `fieldRef` and
//! `resourceFieldRef` (the kubelet's `podFieldSelectorRuntimeValue`,
//! `fieldpath` and `ExtractContainerResourceValue`), one definition for env
//! variables and, later, downwardAPI volumes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// What only the node knows of a running pod.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeFacts<'a> {
    /// The pod's IPs, the primary first (the node's for a host-network pod).
    pub pod_ips: &'a [IpAddr],
    /// The node's IPs, the primary first.
    pub host_ips: &'a [IpAddr],
    /// The node's allocatable resources: a limit the container does not set
    /// reads as the node's allocatable.
    pub allocatable: &'a BTreeMap<String, Quantity>,
}

impl Default for RuntimeFacts<'_> {
    fn default() -> Self {
        static NONE: BTreeMap<String, Quantity> = BTreeMap::new();
        Self {
            pod_ips: &[],
            host_ips: &[],
            allocatable: &NONE,
        }
    }
}

fn joined(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of a `fieldRef`. Errors are the kubelet's kind of message.
pub fn field_value(
    pod: &Pod,
    selector: &ObjectFieldSelector,
    facts: RuntimeFacts<'_>,
) -> Result<String, String> {
    let version = selector.api_version.as_deref().unwrap_or("v1");
    if version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = selector.field_path.as_str();
    let owned = |v: Option<&String>| v.cloned().unwrap_or_default();
    let value = match path {
        "metadata.name" => owned(meta.name.as_ref()),
        "metadata.namespace" => owned(meta.namespace.as_ref()),
        "metadata.uid" => owned(meta.uid.as_ref()),
        "spec.nodeName" => owned(spec.and_then(|s| s.node_name.as_ref())),
        "spec.serviceAccountName" => owned(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.podIP" => facts
            .pod_ips
            .first()
            .map(IpAddr::to_string)
            .unwrap_or_default(),
        "status.podIPs" => joined(facts.pod_ips),
        "status.hostIP" | "status.hostIPs" if facts.host_ips.is_empty() => {
            return Err("cannot get the host IP: the node's IP is not known".into());
        }
        "status.hostIP" => facts.host_ips[0].to_string(),
        "status.hostIPs" => joined(facts.host_ips),
        _ => {
            let keyed = |prefix: &str| {
                path.strip_prefix(prefix)?
                    .strip_prefix("['")?
                    .strip_suffix("']")
            };
            if path == "metadata.labels" {
                format_map(meta.labels.as_ref())
            } else if path == "metadata.annotations" {
                format_map(meta.annotations.as_ref())
            } else if let Some(key) = keyed("metadata.labels") {
                owned(meta.labels.as_ref().and_then(|l| l.get(key)))
            } else if let Some(key) = keyed("metadata.annotations") {
                owned(meta.annotations.as_ref().and_then(|a| a.get(key)))
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    };
    Ok(value)
}

/// A whole label or annotation map as the kubelet writes it: `key="value"`
/// lines in key order, each value quoted as Go's `%q` quotes it.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let quote = |value: &str| {
        let mut out = String::from('"');
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() && (c as u32) < 0x80 => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ceil_div(a: i128, b: i128) -> i128 {
    // Both are non-negative; `b` is checked non-zero by the caller.
    (a + b - 1) / b
}

/// The value of a `resourceFieldRef` for the pod's container it names, else
/// `container` (an env variable's own; a volume item has none): CPU in
/// divisor units (default 1 core), rounded up; memory, ephemeral storage
/// and huge pages in divisor bytes (default 1).
pub fn resource_value(
    pod: &Pod,
    container: Option<&Container>,
    selector: &ResourceFieldSelector,
    facts: RuntimeFacts<'_>,
) -> Result<String, String> {
    let container = match (selector.container_name.as_deref(), container) {
        (None | Some(""), Some(own)) => own,
        (None | Some(""), None) => return Err("resourceFieldRef needs a containerName".into()),
        (Some(name), _) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| format!("container {name:?} not found"))?,
    };
    let (kind, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {}", selector.resource))?;
    let supported =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !supported || !matches!(kind, "limits" | "requests") {
        return Err(format!(
            "unsupported container resource: {}",
            selector.resource
        ));
    }
    let resources = container.resources.as_ref();
    let set = if kind == "limits" {
        resources.and_then(|r| r.limits.as_ref())
    } else {
        resources.and_then(|r| r.requests.as_ref())
    };
    let mut amount = set.and_then(|m| m.get(name));
    // An unset limit reads as the node's allocatable (the kubelet's
    // defaultPodLimitsForDownwardAPI), for CPU, memory and storage.
    if amount.is_none() && kind == "limits" && !name.starts_with("hugepages-") {
        amount = facts.allocatable.get(name);
    }
    let milli = |q: &Quantity| quantity::milli(&q.0).map(i128::from);
    let amount = amount.map(milli).transpose()?.unwrap_or(0).max(0);
    let divisor = selector
        .divisor
        .as_ref()
        .map(milli)
        .transpose()?
        .filter(|d| *d > 0);
    let value = if name == "cpu" {
        ceil_div(amount, divisor.unwrap_or(1000))
    } else {
        // Whole units (bytes), each rounded up as Kubernetes' `Value`.
        let whole = |m: i128| ceil_div(m, 1000);
        ceil_div(whole(amount), divisor.map_or(1, whole).max(1))
    };
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    use super::*;

    fn pod() -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                containers: vec![
                    Container {
                        name: "app".into(),
                        resources: Some(ResourceRequirements {
                            requests: Some([("cpu".into(), Quantity("250m".into()))].into()),
                            limits: Some([("memory".into(), Quantity("64Mi".into()))].into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Container {
                        name: "other".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some("web".into());
        pod.metadata.labels = Some([("tier".into(), "front".into())].into());
        pod
    }

    fn field(path: &str, facts: RuntimeFacts<'_>) -> Result<String, String> {
        let selector = ObjectFieldSelector {
            field_path: path.into(),
            ..Default::default()
        };
        field_value(&pod(), &selector, facts)
    }

    #[test]
    fn fields_read_the_pod_and_the_node() {
        let pod_ips: [IpAddr; 2] = [
            "10.88.0.5".parse().expect("ip"),
            "fd00::5".parse().expect("ip"),
        ];
        let host_ips = [IpAddr::from([192, 168, 1, 2])];
        let allocatable = BTreeMap::new();
        let facts = RuntimeFacts {
            pod_ips: &pod_ips,
            host_ips: &host_ips,
            allocatable: &allocatable,
        };
        assert_eq!(field("metadata.name", facts).as_deref(), Ok("web"));
        assert_eq!(field("spec.nodeName", facts).as_deref(), Ok("node-a"));
        assert_eq!(field("status.podIP", facts).as_deref(), Ok("10.88.0.5"));
        assert_eq!(
            field("status.podIPs", facts).as_deref(),
            Ok("10.88.0.5,fd00::5")
        );
        assert_eq!(field("status.hostIP", facts).as_deref(), Ok("192.168.1.2"));
        assert_eq!(
            field("metadata.labels['tier']", facts).as_deref(),
            Ok("front")
        );
        assert_eq!(field("metadata.labels['none']", facts).as_deref(), Ok(""));
        assert_eq!(
            field("metadata.labels", facts).as_deref(),
            Ok("tier=\"front\"")
        );
        let mut quoted = pod();
        quoted.metadata.annotations = Some(
            [
                ("b".to_owned(), "say \"hi\"\n".to_owned()),
                ("a".to_owned(), "\u{1b}".to_owned()),
            ]
            .into(),
        );
        let all = ObjectFieldSelector {
            field_path: "metadata.annotations".into(),
            ..Default::default()
        };
        assert_eq!(
            field_value(&quoted, &all, facts).as_deref(),
            Ok("a=\"\\x1b\"\nb=\"say \\\"hi\\\"\\n\"")
        );
        assert!(field("spec.hostname", facts).is_err());
        let unknown_node = RuntimeFacts {
            host_ips: &[],
            ..facts
        };
        assert!(field("status.hostIP", unknown_node).is_err());
        let v2 = ObjectFieldSelector {
            api_version: Some("v2".into()),
            field_path: "metadata.name".into(),
        };
        assert!(field_value(&pod(), &v2, facts).is_err());
    }

    #[test]
    fn resources_are_rounded_up_in_divisor_units() {
        let allocatable = BTreeMap::from([
            ("cpu".to_owned(), Quantity("2".into())),
            ("memory".to_owned(), Quantity("8Gi".into())),
        ]);
        let facts = RuntimeFacts {
            allocatable: &allocatable,
            ..Default::default()
        };
        let p = pod();
        let app = p
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let value = |resource: &str, divisor: Option<&str>, container: Option<&str>| {
            let selector = ResourceFieldSelector {
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
                container_name: container.map(Into::into),
            };
            resource_value(&p, Some(&app), &selector, facts)
        };
        assert_eq!(
            value("requests.cpu", None, None).as_deref(),
            Ok("1"),
            "250m rounds up to 1"
        );
        assert_eq!(
            value("requests.cpu", Some("1m"), None).as_deref(),
            Ok("250")
        );
        assert_eq!(
            value("limits.memory", None, None).as_deref(),
            Ok("67108864")
        );
        assert_eq!(
            value("limits.memory", Some("1Mi"), None).as_deref(),
            Ok("64")
        );
        // Unset limits are the node's allocatable; unset requests are 0.
        assert_eq!(value("limits.cpu", None, None).as_deref(), Ok("2"));
        assert_eq!(
            value("limits.memory", Some("1Gi"), Some("other")).as_deref(),
            Ok("8")
        );
        assert_eq!(value("requests.memory", None, None).as_deref(), Ok("0"));
        assert!(value("limits.gpu", None, None).is_err());
        assert!(value("requests.cpu", None, Some("ghost")).is_err());
    }
}
