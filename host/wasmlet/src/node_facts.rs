//! This machine as a Kubernetes Node, for plugin calls made outside the agent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `hostname`, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The node's address when `nodeIP` is not set, as the kubelet finds it:
/// the host name's first non-loopback address, else the address the node
/// reaches the world from (its default route's; no packet is sent).
pub async fn detect_node_ip(hostname: &str) -> Option<IpAddr> {
    let by_name = tokio::net::lookup_host((hostname, 0)).await.ok();
    let by_name = by_name
        .into_iter()
        .flatten()
        .map(|a| a.ip())
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if by_name.is_some() {
        return by_name;
    }
    // Connecting a UDP socket only picks the route.
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok()?;
    socket.connect("192.0.2.1:9").await.ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

fn memory_total_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The size of the filesystem holding `path` (or its nearest existing
/// ancestor: the root directory may not be made yet), in bytes.
fn filesystem_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = rustix::fs::statvfs(existing).ok()?;
    Some(stat.f_blocks.saturating_mul(stat.f_frsize))
}

/// The node with its real CPU count and memory, the well-known labels, no
/// taints; with `root_dir`, its `ephemeral-storage` is the size of the
/// filesystem holding it, as the kubelet's (nothing is held back for
/// eviction: there is no eviction manager).
pub fn local_node(name: &str, root_dir: Option<&Path>) -> Node {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpus.to_string())),
        (
            "memory".to_owned(),
            Quantity(format!("{}Ki", memory_total_kib())),
        ),
        ("pods".to_owned(), Quantity("110".into())),
    ]);
    if let Some(bytes) = root_dir.and_then(filesystem_bytes) {
        resources.insert("ephemeral-storage".to_owned(), Quantity(bytes.to_string()));
    }
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                (
                    "kubernetes.io/os".to_owned(),
                    std::env::consts::OS.to_owned(),
                ),
                ("kubernetes.io/arch".to_owned(), arch().to_owned()),
            ])),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            ..Default::default()
        }),
    }
}

/// Kubernetes' name for the CPU architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
