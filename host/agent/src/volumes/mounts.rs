//! A container's `volumeMounts` as the runtime's mounts (the kubelet's
//! `makeMounts`): each names one of the pod's volumes, optionally a
//! `subPath` (or `subPathExpr`, expanded from the container's env) inside
//! it, created if missing and kept from escaping the volume.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, VolumeMount};
use wasmlet_core::{Mount, MountPropagation};
use wasmlet_rules::expansion::expand;

use super::PodVolumes;

fn propagation(mount: &VolumeMount, privileged: bool) -> Result<MountPropagation, String> {
    match mount.mount_propagation.as_deref() {
        None | Some("None") => Ok(MountPropagation::Private),
        Some("HostToContainer") => Ok(MountPropagation::HostToContainer),
        Some("Bidirectional") if privileged => Ok(MountPropagation::Bidirectional),
        Some("Bidirectional") => {
            Err("Bidirectional mount propagation is available only to privileged containers".into())
        }
        Some(other) => Err(format!("unknown mountPropagation {other:?}")),
    }
}

/// The sub-path of `mount`, if any, checked to stay inside its volume.
fn sub_path(mount: &VolumeMount, env: &[(String, String)]) -> Result<Option<PathBuf>, String> {
    let sub = match (&mount.sub_path, &mount.sub_path_expr) {
        (Some(path), _) if !path.is_empty() => path.clone(),
        (_, Some(expr)) if !expr.is_empty() => expand(expr, |name| {
            env.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }),
        _ => return Ok(None),
    };
    let path = PathBuf::from(&sub);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "subPath {sub:?} of volume {:?} must be a relative path without '..'",
            mount.name
        ));
    }
    Ok(Some(path))
}

/// Creates `sub` inside `volume` if needed, each new directory with the
/// volume's own mode (as the kubelet's `SafeMakeDir`: a world-writable
/// emptyDir gives world-writable sub-paths); the result must resolve
/// inside the volume (a symlink a container left there must not lead out).
fn make_sub_path(volume: &Path, sub: &Path) -> Result<PathBuf, String> {
    let target = volume.join(sub);
    if fs::symlink_metadata(&target).is_err() {
        let failed = |p: &Path, e: std::io::Error| format!("creating subPath {}: {e}", p.display());
        let mode = fs::metadata(volume)
            .map_err(|e| failed(volume, e))?
            .permissions()
            .mode()
            & 0o7777;
        let mut at = volume.to_path_buf();
        for part in sub.components() {
            at.push(part);
            if fs::symlink_metadata(&at).is_err() {
                fs::create_dir(&at).map_err(|e| failed(&at, e))?;
                // Not through the umask.
                fs::set_permissions(&at, fs::Permissions::from_mode(mode))
                    .map_err(|e| failed(&at, e))?;
            }
        }
    }
    let resolve = |p: &Path| fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()));
    let (root, resolved) = (resolve(volume)?, resolve(&target)?);
    if !resolved.starts_with(&root) {
        return Err(format!(
            "subPath {} leads outside its volume",
            sub.display()
        ));
    }
    Ok(resolved)
}

/// The runtime mounts of `container`, given the pod's set-up `volumes` and
/// the container's expanded `env`. Errors are container config errors.
pub fn container_mounts(
    container: &Container,
    volumes: &PodVolumes,
    env: &[(String, String)],
    privileged: bool,
) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.paths.get(&mount.name) else {
            return Err(format!(
                "cannot find volume {:?} to mount into container {:?}",
                mount.name, container.name
            ));
        };
        let host_path = match sub_path(mount, env)? {
            Some(sub) => make_sub_path(&volume.path, &sub)?,
            None => volume.path.clone(),
        };
        mounts.push(Mount {
            container_path: mount.mount_path.clone(),
            host_path: host_path.to_string_lossy().into_owned(),
            readonly: volume.read_only || mount.read_only.unwrap_or(false),
            propagation: propagation(mount, privileged)?,
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::super::VolumePath;
    use super::*;

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_name_volumes_and_stay_inside_them() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("wasmlet-mounts-{}", std::process::id()));
        let volume = root.join("data");
        fs::create_dir_all(&volume)?;
        let volumes = PodVolumes {
            paths: [(
                "data".to_owned(),
                VolumePath {
                    path: volume.clone(),
                    read_only: false,
                },
            )]
            .into(),
        };
        let env = [("POD".to_owned(), "web-1".to_owned())];
        let mut by_expr = mount("data", "/logs");
        by_expr.sub_path_expr = Some("logs/$(POD)".into());
        by_expr.read_only = Some(true);
        let container = Container {
            name: "app".into(),
            volume_mounts: Some(vec![mount("data", "/data"), by_expr]),
            ..Default::default()
        };
        let mounts =
            container_mounts(&container, &volumes, &env, false).map_err(std::io::Error::other)?;
        assert_eq!(mounts[0].host_path, volume.to_string_lossy());
        assert!(volume.join("logs/web-1").is_dir(), "the subPath is made");
        assert!(mounts[1].host_path.ends_with("data/logs/web-1"));
        assert!(mounts[1].readonly);

        let escape = |sub: &str| {
            let mut m = mount("data", "/x");
            m.sub_path = Some(sub.into());
            let c = Container {
                volume_mounts: Some(vec![m]),
                ..Default::default()
            };
            container_mounts(&c, &volumes, &env, false)
        };
        assert!(escape("../etc").is_err());
        assert!(escape("/etc").is_err());
        std::os::unix::fs::symlink("/etc", volume.join("out"))?;
        assert!(escape("out").is_err(), "a symlink out of the volume");

        let mut shared = mount("data", "/shared");
        shared.mount_propagation = Some("Bidirectional".into());
        let c = Container {
            volume_mounts: Some(vec![shared, mount("ghost", "/g")]),
            ..Default::default()
        };
        assert!(container_mounts(&c, &volumes, &env, false).is_err());
        let e = container_mounts(&c, &volumes, &env, true).expect_err("no such volume");
        assert!(e.contains("cannot find volume \"ghost\""), "{e}");
        fs::remove_dir_all(&root)
    }
}
