//! How the kubelet's `AtomicWriter` writes a volume of files made from the
//! API (downward API, ConfigMap, Secret, projected), so a reader never sees
//! half an update: the files live in a `..<stamp>` directory, `..data`
//! points at it, and each item's top-level name is a symlink through
//! `..data`; an update is one rename.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub const DATA: &str = "..data";
/// The kubelet's default file mode for these volumes.
const DEFAULT_MODE: u32 = 0o644;

/// Relative path → (content, mode).
pub type Payload = BTreeMap<PathBuf, (Vec<u8>, u32)>;

/// An item's path, checked: relative, no `..`, not starting with `..`.
pub fn item_path(path: &str) -> Result<PathBuf, String> {
    let checked = PathBuf::from(path);
    let plain = checked
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain || path.starts_with("..") || path.is_empty() {
        return Err(format!(
            "item path {path:?} must be relative, without '..' and not start with '..'"
        ));
    }
    Ok(checked)
}

/// An item's mode, else the volume's `defaultMode`, else 0644.
pub fn file_mode(mode: Option<i32>, default_mode: Option<i32>) -> u32 {
    mode.or(default_mode).map_or(DEFAULT_MODE, |m| {
        u32::try_from(m).unwrap_or(DEFAULT_MODE) & 0o777
    })
}

fn current(dir: &Path, files: &Payload) -> bool {
    let data = dir.join(DATA);
    let listed = |d: &Path| -> usize { walk(d).map_or(usize::MAX, |found| found.len()) };
    listed(&data) == files.len()
        && files.iter().all(|(path, (value, mode))| {
            let at = data.join(path);
            fs::read(&at).is_ok_and(|v| v == *value)
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
pub fn write(dir: &Path, files: &Payload) -> Result<(), String> {
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
