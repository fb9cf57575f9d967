//! The environment the kubelet gives every container from the cluster's
//! Services: the API server's own (`kubernetes` in `default`), and with
//! `enableServiceLinks` (the default) those of the pod's namespace, as
//! `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT NAME>]` and the
//! Docker link variables (`<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>...`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};

/// Where the API server's own Service lives.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICE: &str = "kubernetes";

/// A Service with a cluster IP (not headless).
fn has_ip(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The Services whose variables `pod` gets, by name: the API server's, and
/// its namespace's when `spec.enableServiceLinks` is not false (one of
/// those named `kubernetes` wins over the API server's).
pub fn for_pod<'a>(pod: &Pod, services: &'a [Service]) -> Vec<&'a Service> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services.iter().filter(|s| has_ip(s)) {
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let in_namespace = service.metadata.namespace.as_deref() == Some(namespace);
        let master = service.metadata.namespace.as_deref() == Some(MASTER_NAMESPACE)
            && name == MASTER_SERVICE;
        if in_namespace && links {
            chosen.insert(name, service);
        } else if master {
            chosen.entry(name).or_insert(service);
        }
    }
    chosen.into_values().collect()
}

/// `my-svc` → `MY_SVC`.
fn variable(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// The variables of `services`, in order.
pub fn variables(services: &[&Service]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for service in services {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let prefix = variable(service.metadata.name.as_deref().unwrap_or_default());
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else {
            continue;
        };
        env.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in ports {
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                env.push((
                    format!("{prefix}_SERVICE_PORT_{}", variable(name)),
                    port.port.to_string(),
                ));
            }
        }
        let host = |port: i32| match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{ip}:{port}"),
        };
        for (i, port) in ports.iter().enumerate() {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let (lower, upper) = (protocol.to_lowercase(), protocol.to_uppercase());
            let url = format!("{lower}://{}", host(port.port));
            if i == 0 {
                env.push((format!("{prefix}_PORT"), url.clone()));
            }
            let at = format!("{prefix}_PORT_{}_{upper}", port.port);
            env.push((format!("{at}_PROTO"), lower));
            env.push((format!("{at}_PORT"), port.port.to_string()));
            env.push((format!("{at}_ADDR"), ip.clone()));
            env.push((at, url));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        }
    }

    fn service(namespace: &str, name: &str, ip: &str, ports: &[(Option<&str>, i32)]) -> Service {
        let ports = ports
            .iter()
            .map(|(name, port)| ServicePort {
                name: name.map(str::to_owned),
                port: *port,
                ..ServicePort::default()
            })
            .collect();
        Service {
            metadata: meta(namespace, name),
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn pod(namespace: &str, links: Option<bool>) -> Pod {
        Pod {
            metadata: meta(namespace, "p"),
            spec: Some(PodSpec {
                enable_service_links: links,
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_pod_sees_the_api_server_and_its_namespaces_services() {
        let all = [
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[(Some("https"), 443)],
            ),
            service(
                "shop",
                "redis-main",
                "10.96.0.9",
                &[(None, 6379), (Some("metrics"), 9121)],
            ),
            service("shop", "headless", "None", &[(None, 80)]),
            service("other", "db", "10.96.0.7", &[(None, 5432)]),
        ];
        let names = |p: &Pod| -> Vec<String> {
            for_pod(p, &all)
                .iter()
                .map(|s| s.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(names(&pod("shop", None)), ["kubernetes", "redis-main"]);
        assert_eq!(names(&pod("shop", Some(false))), ["kubernetes"]);

        let env = variables(&for_pod(&pod("shop", None), &all));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("REDIS_MAIN_SERVICE_PORT"), Some("6379"));
        assert_eq!(get("REDIS_MAIN_SERVICE_PORT_METRICS"), Some("9121"));
        assert_eq!(
            get("REDIS_MAIN_PORT_9121_TCP"),
            Some("tcp://10.96.0.9:9121")
        );
        assert_eq!(get("REDIS_MAIN_PORT_6379_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("REDIS_MAIN_PORT_6379_TCP_ADDR"), Some("10.96.0.9"));
        assert_eq!(get("HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get("DB_SERVICE_HOST"), None, "another namespace's");
    }
}
