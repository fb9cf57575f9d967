//! `emptyDir`: a directory the pod's containers share, world-writable as
//! the kubelet makes it, on the node's disk or, with `medium: Memory`, a
//! tmpfs sized by `sizeLimit`, the pod's memory limit and the node's
//! allocatable memory, whichever is least.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use wasmlet_rules::quantity;

use crate::pod_ext::PodExt;

const PLUGIN_DIR: &str = "kubernetes.io~empty-dir";

/// `<pod dir>/volumes/kubernetes.io~empty-dir/<name>`.
pub fn path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(PLUGIN_DIR).join(name)
}

fn bytes(q: &Quantity) -> Option<u64> {
    let milli = quantity::milli(&q.0).ok()?;
    u64::try_from(milli).ok().map(|m| m.div_ceil(1000))
}

/// The tmpfs size of a memory-backed volume: the least of its `sizeLimit`,
/// the pod's memory limit (when every container has one) and the node's
/// allocatable memory (the kubelet's `SizeMemoryBackedVolumes`).
pub fn memory_size(
    source: &EmptyDirVolumeSource,
    pod: &Pod,
    allocatable: &BTreeMap<String, Quantity>,
) -> Option<u64> {
    let limit = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")
            .and_then(bytes)
    };
    let apps: Option<Vec<u64>> = pod.app_containers().iter().map(limit).collect();
    let pod_limit = apps.map(|a| a.iter().sum::<u64>());
    [
        source.size_limit.as_ref().and_then(bytes),
        pod_limit.filter(|l| *l > 0),
        allocatable.get("memory").and_then(bytes),
    ]
    .into_iter()
    .flatten()
    .min()
}

fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let parent = dir.parent().unwrap_or(dir);
    Ok(fs::metadata(dir)?.dev() != fs::metadata(parent)?.dev())
}

/// Creates the volume if it is not there. A new one is mode 0777 (and,
/// with the pod's `fsGroup`, owned by that group with the setgid bit, as
/// the kubelet's volume ownership); one that exists is left as the
/// containers made it.
pub fn set_up(
    dir: &Path,
    source: &EmptyDirVolumeSource,
    pod: &Pod,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<(), String> {
    let fresh = !dir.exists();
    let memory = source.medium.as_deref() == Some("Memory");
    if memory {
        memory_backed(dir, memory_size(source, pod, allocatable))?;
    } else {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if !fresh {
            return Ok(());
        }
    }
    let fs_group = pod.fs_group();
    let mode = if fs_group.is_some() { 0o2777 } else { 0o777 };
    if let Some(gid) = fs_group {
        std::os::unix::fs::chown(dir, None, Some(gid))
            .map_err(|e| format!("setting the group of {}: {e}", dir.display()))?;
    }
    // After chown, which clears the setgid bit on some filesystems.
    fs::set_permissions(dir, Permissions::from_mode(mode))
        .map_err(|e| format!("setting the mode of {}: {e}", dir.display()))
}

/// Makes `dir` a tmpfs (of `size` bytes, if given) unless it is one: the
/// memory a memory-backed `emptyDir`, a Secret or a projected volume lives in.
pub fn memory_backed(dir: &Path, size: Option<u64>) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if is_mount_point(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        return Ok(());
    }
    let options = match size {
        Some(size) => format!("mode=0777,size={size}"),
        None => "mode=0777".to_owned(),
    };
    let options = std::ffi::CString::new(options).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NODEV | rustix::mount::MountFlags::NOSUID,
        Some(options.as_c_str()),
    )
    .map_err(|e| format!("mounting tmpfs on {}: {e}", dir.display()))
}

/// Unmounts every memory-backed volume of the pod at `pod_dir`, of every
/// plugin.
pub fn unmount_all(pod_dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    let listed = |dir: &Path| -> Result<Vec<PathBuf>, (PathBuf, io::Error)> {
        match fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.map(|e| e.path()).map_err(|e| (dir.to_owned(), e)))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err((dir.to_owned(), e)),
        }
    };
    for plugin in listed(&pod_dir.join("volumes"))? {
        for dir in listed(&plugin)? {
            if is_mount_point(&dir).map_err(|e| (dir.clone(), e))? {
                rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH)
                    .map_err(|e| (dir.clone(), io::Error::from(e)))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};

    use super::*;

    fn memory_limited(limits: &[Option<&str>]) -> Pod {
        let containers = limits
            .iter()
            .map(|l| Container {
                resources: l.map(|l| ResourceRequirements {
                    limits: Some([("memory".into(), Quantity(l.into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_memory_volume_is_as_big_as_the_least_limit() {
        let node = BTreeMap::from([("memory".to_owned(), Quantity("1Gi".into()))]);
        let sized = EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("64Mi".into())),
        };
        let unsized_ = EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: None,
        };
        let both = memory_limited(&[Some("16Mi"), Some("16Mi")]);
        assert_eq!(memory_size(&sized, &both, &node), Some(32 << 20));
        let one_unlimited = memory_limited(&[Some("16Mi"), None]);
        assert_eq!(memory_size(&sized, &one_unlimited, &node), Some(64 << 20));
        assert_eq!(memory_size(&unsized_, &one_unlimited, &node), Some(1 << 30));
        assert_eq!(
            memory_size(&unsized_, &one_unlimited, &BTreeMap::new()),
            None
        );
    }

    #[test]
    fn a_disk_volume_is_made_once_and_world_writable() -> io::Result<()> {
        let root = std::env::temp_dir().join(format!("wasmlet-emptydir-{}", std::process::id()));
        let dir = path(&root, "cache");
        let pod = memory_limited(&[None]);
        let source = EmptyDirVolumeSource::default();
        set_up(&dir, &source, &pod, &BTreeMap::new()).map_err(io::Error::other)?;
        assert_eq!(fs::metadata(&dir)?.mode() & 0o7777, 0o777);
        // What a container changed stays.
        fs::set_permissions(&dir, Permissions::from_mode(0o700))?;
        fs::write(dir.join("kept"), "x")?;
        set_up(&dir, &source, &pod, &BTreeMap::new()).map_err(io::Error::other)?;
        assert_eq!(fs::metadata(&dir)?.mode() & 0o7777, 0o700);
        assert!(dir.join("kept").exists());
        unmount_all(&root).map_err(|(_, e)| e)?;
        fs::remove_dir_all(&root)
    }
}
