//! Host port conflicts with the active pods. A host-network pod uses its
//! container ports on the node; an empty or `0.0.0.0` host IP overlaps
//! every address.

use wasmlet_plugin_sdk::admission::{self, Decision, Error, Guest, NodeInfo, Pod};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: u16,
}

impl HostPort {
    fn overlaps(&self, other: &HostPort) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (any(&self.ip) || any(&other.ip) || self.ip == other.ip)
    }
}

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    pod.containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            let port = p
                .host_port
                .filter(|p| *p != 0)
                .or(pod.host_network.then_some(p.container_port))?;
            Some(HostPort {
                ip: p.host_ip.clone().unwrap_or_default(),
                protocol: if p.protocol.is_empty() {
                    "TCP".into()
                } else {
                    p.protocol.clone()
                },
                port,
            })
        })
        .collect()
}

/// The first of `pod`'s host ports an active pod already uses, and that pod.
pub fn conflict<'a>(pod: &Pod, active: &'a [Pod]) -> Option<(HostPort, &'a Pod)> {
    let wanted = host_ports(pod);
    active
        .iter()
        .filter(|o| pod.uid.is_empty() || o.uid != pod.uid)
        .find_map(|other| {
            let used = host_ports(other);
            wanted
                .iter()
                .find(|w| used.iter().any(|u| u.overlaps(w)))
                .map(|w| (w.clone(), other))
        })
}

struct HostPorts;

impl Guest for HostPorts {
    fn validate_settings() -> Result<(), Error> {
        Ok(())
    }

    fn admit(pod: Pod, _node: NodeInfo, active: Vec<Pod>) -> Result<Decision, Error> {
        Ok(match conflict(&pod, &active) {
            None => admission::admit(),
            Some((port, other)) => admission::reject(
                "NodePorts",
                format!(
                    "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports: {}/{} is used by pod {}/{}",
                    port.port, port.protocol, other.namespace, other.name
                ),
            ),
        })
    }
}

wasmlet_plugin_sdk::admission::export_admission!(HostPorts);
