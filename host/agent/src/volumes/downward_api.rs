//! `downwardAPI` volumes (and `projected` volumes of downward API items):
//! files holding what the pod may read of itself, written as the kubelet's
//! `AtomicWriter` writes them, so a reader never sees half an update: the
//! files live in a `..<stamp>` directory, `..data` points at it, and each
//! item's top-level name is a symlink through `..data`. Mounted read-only.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod};
use wasmlet_rules::downward::{self, RuntimeFacts};

const PLUGIN_DIR: &str = "kubernetes.io~downward-api";
const PROJECTED_DIR: &str = "kubernetes.io~projected";
const DATA: &str = "..data";
/// The kubelet's default file mode for these volumes.
const DEFAULT_MODE: u32 = 0o644;

/// Where the volume lives: `<pod dir>/volumes/<plugin>/<name>`.
pub fn path(pod_dir: &Path, name: &str, projected: bool) -> PathBuf {
    let plugin = if projected { PROJECTED_DIR } else { PLUGIN_DIR };
    pod_dir.join("volumes").join(plugin).join(name)
}

/// The files of `items`: relative path → (content, mode).
pub fn payload<'a>(
    pod: &Pod,
    items: impl IntoIterator<Item = &'a DownwardAPIVolumeFile>,
    default_mode: Option<i32>,
) -> Result<BTreeMap<PathBuf, (String, u32)>, String> {
    let mut files = BTreeMap::new();
    for item in items {
        let path = PathBuf::from(&item.path);
        let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || item.path.starts_with("..") {
            return Err(format!(
                "item path {:?} must be relative, without '..' and not start with '..'",
                item.path
            ));
        }
        let value = if let Some(field) = &item.field_ref {
            downward::field_value(pod, field, RuntimeFacts::default())?
        } else if let Some(resource) = &item.resource_field_ref {
            downward::resource_value(pod, None, resource, RuntimeFacts::default())?
        } else {
            return Err(format!(
                "item {:?} has neither fieldRef nor resourceFieldRef",
                item.path
            ));
        };
        let mode = item
            .mode
            .or(default_mode)
            .map_or(DEFAULT_MODE, |m| (m as u32) & 0o777);
        files.insert(path, (value, mode));
    }
    Ok(files)
}

fn current(dir: &Path, files: &BTreeMap<PathBuf, (String, u32)>) -> bool {
    let data = dir.join(DATA);
    let listed = |d: &Path| -> usize { walk(d).map_or(usize::MAX, |found| found.len()) };
    listed(&data) == files.len()
        && files.iter().all(|(path, (value, mode))| {
            let at = data.join(path);
            fs::read_to_string(&at).is_ok_and(|v| v == *value)
                && fs::metadata(&at).is_ok_and(|m| m.permissions().mode() & 0o777 == *mode)
        })
}

/// Every regular file below `dir`.
fn walk(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            found.extend(walk(&entry.path())?);
        } else {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Writes `files` into the volume at `dir` unless it already holds them.
pub fn write(dir: &Path, files: &BTreeMap<PathBuf, (String, u32)>) -> Result<(), String> {
    let failed = |p: &Path, e: io::Error| format!("{}: {e}", p.display());
    fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    if current(dir, files) {
        return Ok(());
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!("..{stamp}");
    let fresh = dir.join(&name);
    for (path, (value, mode)) in files {
        let at = fresh.join(path);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(|e| failed(parent, e))?;
        }
        fs::write(&at, value).map_err(|e| failed(&at, e))?;
        fs::set_permissions(&at, Permissions::from_mode(*mode)).map_err(|e| failed(&at, e))?;
    }
    // The switch: one rename of a symlink.
    let previous = fs::read_link(dir.join(DATA)).ok();
    let next = dir.join("..data_tmp");
    let _ = fs::remove_file(&next);
    symlink(&name, &next).map_err(|e| failed(&next, e))?;
    fs::rename(&next, dir.join(DATA)).map_err(|e| failed(dir, e))?;
    let top: Vec<_> = files
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_owned())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(name), &link).map_err(|e| failed(&link, e))?;
        }
    }
    // What the old payload had and the new one has not.
    for entry in fs::read_dir(dir).map_err(|e| failed(dir, e))?.flatten() {
        let file = entry.file_name();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link && !file.to_string_lossy().starts_with("..") && !top.contains(&file) {
            let _ = fs::remove_file(entry.path());
        }
    }
    if let Some(old) = previous.filter(|old| *old != Path::new(&name)) {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectFieldSelector;

    use super::*;

    fn item(path: &str, field: &str) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn files_are_switched_whole() -> io::Result<()> {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.labels =
            Some([("tier".into(), "front".into()), ("app".into(), "x".into())].into());
        let dir = std::env::temp_dir().join(format!("wasmlet-downward-{}", std::process::id()));
        let items = [
            item("name", "metadata.name"),
            item("meta/labels", "metadata.labels"),
        ];
        let files = payload(&pod, &items, None).map_err(io::Error::other)?;
        write(&dir, &files).map_err(io::Error::other)?;
        assert_eq!(fs::read_to_string(dir.join("name"))?, "web");
        assert_eq!(
            fs::read_to_string(dir.join("meta/labels"))?,
            "app=\"x\"\ntier=\"front\""
        );
        assert!(
            fs::symlink_metadata(dir.join("name"))?
                .file_type()
                .is_symlink()
        );
        let first = fs::read_link(dir.join(DATA))?;
        write(&dir, &files).map_err(io::Error::other)?;
        assert_eq!(
            fs::read_link(dir.join(DATA))?,
            first,
            "unchanged: not rewritten"
        );

        pod.metadata.name = Some("web-2".into());
        let files = payload(&pod, &items[..1], Some(0o600)).map_err(io::Error::other)?;
        write(&dir, &files).map_err(io::Error::other)?;
        assert_eq!(fs::read_to_string(dir.join("name"))?, "web-2");
        assert_eq!(
            fs::metadata(dir.join("name"))?.permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.join("meta").exists(), "a dropped item goes");
        assert!(!dir.join(first).exists(), "the old payload goes");

        assert!(payload(&pod, &[item("../x", "metadata.name")], None).is_err());
        assert!(payload(&pod, &[item("..x", "metadata.name")], None).is_err());
        fs::remove_dir_all(&dir)
    }
}
