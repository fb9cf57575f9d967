//! Pod volumes, as the kubelet's volume manager sets them up for the kinds a
//! node provides by itself: [`empty_dir`] (on disk, or tmpfs with `medium:
//! Memory`), [`host_path`] with its type checks, and [`downward_api`]
//! (also as the only source of a `projected` volume). An `emptyDir` lives in
//! `<root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>`, outlives
//! container and sandbox restarts, and goes with the pod. [`mounts`] turns a
//! container's `volumeMounts` into the runtime's mounts.
//!
//! Everything here touches the filesystem: callers run it off the async
//! runtime's threads (`spawn_blocking`).

pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
pub mod mounts;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use wasmlet_core::PodUid;

use crate::pod_ext::PodUidExt;

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

    /// Makes every volume of `pod` ready (idempotent: what exists is kept).
    pub fn set_up(
        &self,
        pod: &Pod,
        allocatable: &BTreeMap<String, Quantity>,
    ) -> Result<PodVolumes, VolumeError> {
        let mut mounted = PodVolumes::default();
        let pod_dir = self.pod_dir(&pod.pod_uid());
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let failed = |reason: String| VolumeError::SetUp {
                volume: volume.name.clone(),
                reason,
            };
            let (path, read_only) = if let Some(source) = &volume.empty_dir {
                let dir = empty_dir::path(&pod_dir, &volume.name);
                empty_dir::set_up(&dir, source, pod, allocatable).map_err(failed)?;
                (dir, false)
            } else if let Some(source) = &volume.host_path {
                (host_path::check(source).map_err(failed)?, false)
            } else if let Some(source) = &volume.downward_api {
                let dir = downward_api::path(&pod_dir, &volume.name, false);
                let items = source.items.iter().flatten();
                let files = downward_api::payload(pod, items, source.default_mode);
                files
                    .and_then(|files| downward_api::write(&dir, &files))
                    .map_err(failed)?;
                (dir, true)
            } else if let Some(source) = &volume.projected {
                let dir = downward_api::path(&pod_dir, &volume.name, true);
                let sources = source.sources.iter().flatten();
                // Admission lets only downward API sources through.
                let items = sources
                    .filter_map(|s| s.downward_api.as_ref())
                    .flat_map(|d| d.items.iter().flatten());
                let files = downward_api::payload(pod, items, source.default_mode);
                files
                    .and_then(|files| downward_api::write(&dir, &files))
                    .map_err(failed)?;
                (dir, true)
            } else {
                // Admission refuses the other kinds; this is a backstop.
                return Err(failed("this kind of volume is not supported".into()));
            };
            mounted
                .paths
                .insert(volume.name.clone(), VolumePath { path, read_only });
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
        match empty_dir::tear_down_all(&pod_dir) {
            Ok(()) => {}
            Err((path, e)) => return Err(failed(&path, e)),
        }
        match std::fs::remove_dir_all(&pod_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed(&pod_dir, e)),
            _ => Ok(()),
        }
    }
}
