//! This machine as a Kubernetes Node, for plugin calls made outside the agent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wasmlet_agent::node_status::Pressure;

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

/// A `/proc/meminfo` field, in KiB.
fn meminfo_kib(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
            Quantity(format!("{}Ki", meminfo_kib("MemTotal").unwrap_or(0))),
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

/// The node's allocatable: its capacity less every `reserved` amount of
/// each resource (the kubelet's kubeReserved and systemReserved), never
/// below zero. Amounts that are no quantity were refused with the config.
pub fn hold_back(node: &mut Node, reserved: &[&BTreeMap<String, String>]) {
    let Some(status) = node.status.as_mut() else {
        return;
    };
    let Some(capacity) = status.capacity.as_ref() else {
        return;
    };
    let allocatable = capacity
        .iter()
        .map(|(resource, total)| {
            let total = wasmlet_rules::quantity::milli(&total.0).unwrap_or(0);
            let held: i64 = reserved
                .iter()
                .filter_map(|r| r.get(resource))
                .filter_map(|q| wasmlet_rules::quantity::milli(q).ok())
                .sum();
            let left = (total - held).max(0);
            let text = if left % 1000 == 0 {
                (left / 1000).to_string()
            } else {
                format!("{left}m")
            };
            (resource.clone(), Quantity(text))
        })
        .collect();
    status.allocatable = Some(allocatable);
}

/// Kubernetes' name for the CPU architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

/// `PRETTY_NAME` of /etc/os-release, as the kubelet reports the OS image.
fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// The Node's `nodeInfo`; `runtime` as `containerd://1.6.20`.
pub fn system_info(runtime: &str) -> NodeSystemInfo {
    NodeSystemInfo {
        machine_id: first_line("/etc/machine-id"),
        system_uuid: first_line("/sys/class/dmi/id/product_uuid"),
        boot_id: first_line("/proc/sys/kernel/random/boot_id"),
        kernel_version: first_line("/proc/sys/kernel/osrelease"),
        os_image: os_image(),
        container_runtime_version: runtime.to_owned(),
        kubelet_version: format!("v1.34.0-wasmlet.{}", env!("CARGO_PKG_VERSION")),
        operating_system: std::env::consts::OS.into(),
        architecture: arch().into(),
        ..NodeSystemInfo::default()
    }
}

/// Whether the node is under pressure by the kubelet's default hard
/// eviction thresholds: `memory.available<100Mi` (the kernel's
/// MemAvailable), `nodefs.available<10%` and `nodefs.inodesFree<5%` on the
/// root directory's filesystem. The kubelet has no default PID threshold.
pub fn pressure(root_dir: &Path) -> Pressure {
    let available_kib = meminfo_kib("MemAvailable");
    let disk = root_dir
        .ancestors()
        .find(|p| p.exists())
        .and_then(|p| rustix::fs::statvfs(p).ok())
        .is_some_and(|s| {
            let low =
                |free: u64, total: u64, percent: u64| total > 0 && free * 100 < total * percent;
            low(s.f_bavail, s.f_blocks, 10) || low(s.f_favail, s.f_files, 5)
        });
    Pressure {
        memory: available_kib.is_some_and(|kib| kib < 100 * 1024),
        disk,
        pid: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_resources_are_taken_from_the_capacity_never_below_zero() {
        let mut node = local_node("n1", None);
        if let Some(status) = node.status.as_mut() {
            status.capacity = Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("2".into())),
                ("memory".to_owned(), Quantity("4Gi".into())),
                ("pods".to_owned(), Quantity("110".into())),
            ]));
        }
        let kube = BTreeMap::from([
            ("cpu".to_owned(), "100m".to_owned()),
            ("memory".to_owned(), "1Gi".to_owned()),
        ]);
        let system = BTreeMap::from([
            ("cpu".to_owned(), "5".to_owned()),
            ("memory".to_owned(), "512Mi".to_owned()),
        ]);
        hold_back(&mut node, &[&kube, &system]);
        let allocatable = node.status.and_then(|s| s.allocatable).unwrap_or_default();
        let get = |r: &str| allocatable.get(r).map(|q| q.0.clone()).unwrap_or_default();
        assert_eq!(get("cpu"), "0", "more reserved than there is");
        assert_eq!(
            get("memory"),
            (3u64 << 30).saturating_sub(512 << 20).to_string()
        );
        assert_eq!(get("pods"), "110");

        let mut node = local_node("n1", None);
        if let Some(status) = node.status.as_mut() {
            status.capacity = Some(BTreeMap::from([("cpu".to_owned(), Quantity("2".into()))]));
        }
        hold_back(
            &mut node,
            &[&BTreeMap::from([("cpu".to_owned(), "250m".to_owned())])],
        );
        let cpu = node.status.and_then(|s| s.allocatable).unwrap_or_default();
        assert_eq!(cpu.get("cpu").map(|q| q.0.as_str()), Some("1750m"));
    }
}
