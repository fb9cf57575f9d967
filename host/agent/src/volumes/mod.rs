//! Pod volumes, as the kubelet's volume manager sets them up: [`empty_dir`]
//! (on disk, or tmpfs with `medium: Memory`), [`host_path`] with its type
//! checks, [`downward_api`], and the API objects' [`projection`]s
//! (`configMap`, `secret`, `projected`), the last written by the
//! [`atomic_writer`]. A volume lives in
//! `<root>/pods/<uid>/volumes/<plugin>/<name>`, outlives container and
//! sandbox restarts, and goes with the pod. [`mounts`] turns a container's
//! `volumeMounts` into the runtime's mounts.
//!
//! Everything here touches the filesystem: callers run it off the async
//! runtime's threads (`spawn_blocking`).

pub mod atomic_writer;
pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
pub mod mounts;
pub mod projection;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use wasmlet_core::PodUid;

use crate::api_objects::Fetched;
use crate::pod_ext::{PodExt, PodUidExt};

/// `<pod dir>/volumes/<plugin>/<name>`.
fn volume_dir(pod_dir: &Path, plugin: &str, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(plugin).join(name)
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The kubelet's FailedMount message.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
    SetUp { volume: String, reason: String },
    #[error("removing the volumes of pod {uid} ({path}): {source}")]
    TearDown {
        uid: PodUid,
        path: PathBuf,
        source: io::Error,
    },
}

/// Where each volume of one pod is on the host, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub paths: BTreeMap<String, VolumePath>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePath {
    pub path: PathBuf,
    /// Mounted read-only whatever the mount says (the kubelet's rule for
    /// downward API, projected, ConfigMap and Secret volumes).
    pub read_only: bool,
}

impl PodVolumes {
    fn insert(&mut self, name: &str, path: PathBuf, read_only: bool) {
        self.paths
            .insert(name.to_owned(), VolumePath { path, read_only });
    }
}

/// Whether `pod` has volumes of files made from the API, which follow the
/// objects they come from while the pod runs.
pub fn refreshable(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            v.downward_api.is_some()
                || v.config_map.is_some()
                || v.secret.is_some()
                || v.projected.is_some()
        })
}

/// The node's volume directories.
#[derive(Debug, Clone)]
pub struct Volumes {
    /// `<root>/pods`.
    pods: PathBuf,
}

impl Volumes {
    /// Volumes under `root` (the kubelet's `--root-dir`).
    pub fn new(root: &Path) -> Self {
        Self {
            pods: root.join("pods"),
        }
    }

    /// `<root>/pods/<uid>`: the pod's own directory. UIDs are checked to be
    /// path-safe when a pod is read.
    pub fn pod_dir(&self, uid: &PodUid) -> PathBuf {
        self.pods.join(uid.as_str())
    }

    /// Makes every volume of `pod` ready (idempotent: what exists is kept,
    /// files made from the API are brought up to date); `fetched` holds the
    /// API objects it names.
    pub fn set_up(
        &self,
        pod: &Pod,
        allocatable: &BTreeMap<String, Quantity>,
        fetched: &Fetched,
    ) -> Result<PodVolumes, VolumeError> {
        let mut mounted = PodVolumes::default();
        let pod_dir = self.pod_dir(&pod.pod_uid());
        let fs_group = pod.fs_group();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let failed = |reason: String| VolumeError::SetUp {
                volume: volume.name.clone(),
                reason,
            };
            // Files from the API: (plugin, in memory, the files).
            let files = if let Some(source) = &volume.empty_dir {
                let dir = empty_dir::path(&pod_dir, &volume.name);
                empty_dir::set_up(&dir, source, pod, allocatable).map_err(failed)?;
                mounted.insert(&volume.name, dir, false);
                continue;
            } else if let Some(source) = &volume.host_path {
                let dir = host_path::check(source).map_err(failed)?;
                mounted.insert(&volume.name, dir, false);
                continue;
            } else if let Some(source) = &volume.downward_api {
                let mut files = atomic_writer::Payload::new();
                let items = source.items.iter().flatten();
                downward_api::payload(&mut files, pod, items, source.default_mode)
                    .map(|()| (downward_api::PLUGIN_DIR, false, files))
            } else if let Some(source) = &volume.config_map {
                projection::config_map(source, fetched)
                    .map(|files| (projection::CONFIG_MAP_DIR, false, files))
            } else if let Some(source) = &volume.secret {
                projection::secret(source, fetched)
                    .map(|files| (projection::SECRET_DIR, true, files))
            } else if let Some(source) = &volume.projected {
                projection::projected(pod, source, fetched)
                    .map(|files| (projection::PROJECTED_DIR, true, files))
            } else {
                // Admission refuses the other kinds; this is a backstop.
                Err("this kind of volume is not supported".into())
            };
            let (plugin, memory, files) = files.map_err(failed)?;
            let dir = volume_dir(&pod_dir, plugin, &volume.name);
            let written = if memory {
                empty_dir::memory_backed(&dir, None)
            } else {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))
            };
            written
                .and_then(|()| atomic_writer::write(&dir, &files, fs_group))
                .map_err(failed)?;
            // Mounted read-only whatever the mount says.
            mounted.insert(&volume.name, dir, true);
        }
        Ok(mounted)
    }

    /// Removes the pod's directory with its volumes, unmounting the
    /// memory-backed ones first. Only for a pod whose containers are gone.
    pub fn tear_down(&self, uid: &PodUid) -> Result<(), VolumeError> {
        let pod_dir = self.pod_dir(uid);
        let failed = |path: &Path, source| VolumeError::TearDown {
            uid: uid.clone(),
            path: path.to_owned(),
            source,
        };
        match empty_dir::unmount_all(&pod_dir) {
            Ok(()) => {}
            Err((path, e)) => return Err(failed(&path, e)),
        }
        match std::fs::remove_dir_all(&pod_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed(&pod_dir, e)),
            _ => Ok(()),
        }
    }
}
