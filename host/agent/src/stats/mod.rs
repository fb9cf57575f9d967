//! The kubelet's stats provider: the Summary API (`/stats/summary`, the
//! shape of `stats/v1alpha1`) from the runtime's container stats (CRI
//! ListContainerStats, ImageFsInfo), the pod cache and the node's kernel
//! figures. CPU rates (`usageNanoCores`) come from the previous reading of
//! the same container, as the kubelet's CRI stats provider computes them; the
//! first reading has none.

pub mod node;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;
use tokio::time::Instant;
use wasmlet_core::{ContainerRuntime, ContainerState, ContainerStatsFilter, ImageRuntime};

use crate::api_status::time;
use crate::cache::PodCache;
use crate::kuberuntime::runtime_pod::AGENT;
use node::FilesystemSize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: Time,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    /// The filesystem of the agent's root directory.
    pub fs: FsStats,
    pub runtime: RuntimeStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    pub image_fs: FsStats,
    pub container_fs: FsStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Option<Time>,
    pub containers: Vec<ContainerStats>,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: FsStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Option<Time>,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub rootfs: FsStats,
    pub logs: FsStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

impl FsStats {
    fn of(at: Time, size: Option<FilesystemSize>, used: Option<u64>) -> Self {
        Self {
            time: at,
            available_bytes: size.map(|s| s.available),
            capacity_bytes: size.map(|s| s.capacity),
            used_bytes: used,
            inodes_free: size.map(|s| s.inodes_free),
            inodes: size.map(|s| s.inodes),
            inodes_used: size.map(|s| s.inodes.saturating_sub(s.inodes_free)),
        }
    }
}

/// What the provider reads from the kernel, off the async runtime.
#[derive(Debug, Default)]
struct Kernel {
    cpu_nanos: Option<u64>,
    memory: Option<node::NodeMemory>,
    root_fs: Option<FilesystemSize>,
    image_fs: Option<FilesystemSize>,
    /// Bytes of log files, by container log directory.
    logs: HashMap<PathBuf, u64>,
}

fn kernel(root_dir: &Path, image_mount: Option<&Path>, log_dirs: &[PathBuf]) -> Kernel {
    let logs = log_dirs
        .iter()
        .map(|dir| {
            let bytes = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum();
            (dir.clone(), bytes)
        })
        .collect();
    Kernel {
        cpu_nanos: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| node::cpu_busy_nanos(&s)),
        memory: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| node::memory(&s)),
        root_fs: node::filesystem(root_dir).ok(),
        image_fs: image_mount.and_then(|m| node::filesystem(m).ok()),
        logs,
    }
}

/// A cumulative CPU reading, for the next one's rate.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    nanos: u64,
    at: Instant,
}

/// The rate between two readings, in nanocores.
fn nano_cores(before: Option<CpuReading>, now: CpuReading) -> Option<u64> {
    let before = before?;
    let elapsed = now.at.checked_duration_since(before.at)?.as_nanos();
    if elapsed == 0 || now.nanos < before.nanos {
        return None;
    }
    u64::try_from(u128::from(now.nanos - before.nanos) * 1_000_000_000 / elapsed).ok()
}

/// Reads stats for the Summary API.
#[derive(Debug)]
pub struct StatsProvider<R> {
    runtime: Arc<R>,
    cache: Arc<PodCache>,
    node_name: String,
    root_dir: PathBuf,
    started: SystemTime,
    /// The last CPU reading of each container (by ID) and of the node ("").
    readings: Mutex<HashMap<String, CpuReading>>,
}

impl<R: ContainerRuntime + ImageRuntime> StatsProvider<R> {
    pub fn new(
        runtime: Arc<R>,
        cache: Arc<PodCache>,
        node_name: String,
        root_dir: PathBuf,
    ) -> Self {
        Self {
            runtime,
            cache,
            node_name,
            root_dir,
            started: SystemTime::now(),
            readings: Mutex::default(),
        }
    }

    /// The rate since the last reading of `key`, which `now` replaces.
    fn rate(&self, key: &str, nanos: Option<u64>, at: Instant) -> Option<u64> {
        let now = CpuReading { nanos: nanos?, at };
        let mut readings = self.readings.lock().unwrap_or_else(PoisonError::into_inner);
        nano_cores(readings.insert(key.to_owned(), now), now)
    }

    pub async fn summary(&self) -> Result<Summary, wasmlet_core::RuntimeError> {
        let filter = ContainerStatsFilter {
            labels: [(AGENT.to_owned(), self.node_name.clone())].into(),
            ..Default::default()
        };
        let stats = self.runtime.list_container_stats(&filter).await?;
        let image_fs = self.runtime.image_fs_info().await?;
        let pods = self.cache.all();
        let log_dirs: Vec<PathBuf> = pods
            .iter()
            .flat_map(|p| p.containers.iter())
            .filter_map(|c| c.log_path.parent().map(Path::to_path_buf))
            .collect();
        let image_mount = image_fs.first().map(|f| PathBuf::from(&f.mountpoint));
        let root_dir = self.root_dir.clone();
        let kernel = tokio::task::spawn_blocking(move || {
            kernel(&root_dir, image_mount.as_deref(), &log_dirs)
        })
        .await
        .unwrap_or_default();
        let (now, at) = (time(SystemTime::now()), Instant::now());

        let memory = kernel.memory;
        let node = NodeStats {
            node_name: self.node_name.clone(),
            start_time: time(self.started),
            cpu: CpuStats {
                time: now.clone(),
                usage_nano_cores: self.rate("", kernel.cpu_nanos, at),
                usage_core_nano_seconds: kernel.cpu_nanos,
            },
            memory: MemoryStats {
                time: now.clone(),
                available_bytes: memory.map(|m| m.total.saturating_sub(m.working_set)),
                usage_bytes: memory.map(|m| m.usage),
                working_set_bytes: memory.map(|m| m.working_set),
            },
            fs: FsStats::of(now.clone(), kernel.root_fs, None),
            runtime: RuntimeStats {
                image_fs: FsStats::of(
                    now.clone(),
                    kernel.image_fs,
                    image_fs
                        .iter()
                        .filter_map(|f| f.used_bytes)
                        .reduce(u64::saturating_add),
                ),
                container_fs: FsStats::of(
                    now.clone(),
                    kernel.image_fs,
                    stats
                        .iter()
                        .filter_map(|s| s.writable_layer_bytes)
                        .reduce(u64::saturating_add),
                ),
            },
        };

        let by_id: HashMap<&str, &wasmlet_core::ContainerStats> =
            stats.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut pod_stats = Vec::new();
        for pod in &pods {
            let mut containers = Vec::new();
            for c in pod
                .containers
                .iter()
                .filter(|c| c.state == ContainerState::Running)
            {
                let Some(s) = by_id.get(c.id.as_str()) else {
                    continue;
                };
                let logs_used = c
                    .log_path
                    .parent()
                    .and_then(|d| kernel.logs.get(d).copied());
                containers.push(ContainerStats {
                    name: c.metadata.name.clone(),
                    start_time: c.started_at.map(time),
                    cpu: CpuStats {
                        time: now.clone(),
                        usage_nano_cores: self.rate(c.id.as_str(), s.cpu_usage_core_nanos, at),
                        usage_core_nano_seconds: s.cpu_usage_core_nanos,
                    },
                    memory: MemoryStats {
                        time: now.clone(),
                        available_bytes: None,
                        usage_bytes: s.memory_usage_bytes,
                        working_set_bytes: s.memory_working_set_bytes,
                    },
                    rootfs: FsStats::of(now.clone(), kernel.image_fs, s.writable_layer_bytes),
                    logs: FsStats::of(now.clone(), kernel.root_fs, logs_used),
                });
            }
            if containers.is_empty() {
                continue;
            }
            let sum = |f: fn(&ContainerStats) -> Option<u64>| {
                containers.iter().map(f).sum::<Option<u64>>()
            };
            let ephemeral = sum(|c| c.rootfs.used_bytes)
                .zip(sum(|c| c.logs.used_bytes))
                .map(|(a, b)| a + b);
            pod_stats.push(PodStats {
                pod_ref: PodReference {
                    name: pod.name.clone(),
                    namespace: pod.namespace.clone(),
                    uid: pod.uid.to_string(),
                },
                start_time: pod.latest_sandbox().map(|s| time(s.created_at)),
                cpu: CpuStats {
                    time: now.clone(),
                    usage_nano_cores: sum(|c| c.cpu.usage_nano_cores),
                    usage_core_nano_seconds: sum(|c| c.cpu.usage_core_nano_seconds),
                },
                memory: MemoryStats {
                    time: now.clone(),
                    available_bytes: None,
                    usage_bytes: sum(|c| c.memory.usage_bytes),
                    working_set_bytes: sum(|c| c.memory.working_set_bytes),
                },
                ephemeral_storage: FsStats::of(now.clone(), kernel.root_fs, ephemeral),
                containers,
            });
        }
        // Containers gone since the last reading leave no stale rates behind.
        let live: std::collections::HashSet<&str> = by_id.keys().copied().collect();
        self.readings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| id.is_empty() || live.contains(id.as_str()));
        Ok(Summary {
            node,
            pods: pod_stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_rate_needs_two_readings_in_order() {
        let at = Instant::now();
        let first = CpuReading { nanos: 1_000, at };
        assert_eq!(nano_cores(None, first), None);
        let later = CpuReading {
            nanos: 500_001_000,
            at: at + Duration::from_secs(2),
        };
        // Half a second of CPU over two seconds: a quarter core.
        assert_eq!(nano_cores(Some(first), later), Some(250_000_000));
        assert_eq!(nano_cores(Some(later), first), None, "time ran backwards");
    }
}
