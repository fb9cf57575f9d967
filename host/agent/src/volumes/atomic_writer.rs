//! How the kubelet's `AtomicWriter` writes a volume of files made from the
//! API (downward API, ConfigMap, Secret, projected), so a reader never sees
//! half an update: the files live in a `..<stamp>` directory, `..data`
//! points at it, and each item's top-level name is a symlink through
//! `..data`; an update is one rename. With the pod's `fsGroup` everything in
//! the volume belongs to that group, as the kubelet's volume ownership
//! leaves a read-only volume: files group-readable, directories setgid.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
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

/// What a read-only volume's files and directories get with an `fsGroup`
/// (the kubelet's roMask, and execute on directories).
const GROUP_READ: u32 = 0o440;
const GROUP_DIR: u32 = 0o2000 | 0o550;

/// A file's mode as written: with a group, group-readable too.
fn effective(mode: u32, group: Option<u32>) -> u32 {
    if group.is_some() {
        mode | GROUP_READ
    } else {
        mode
    }
}

fn current(dir: &Path, files: &Payload, group: Option<u32>) -> bool {
    let data = dir.join(DATA);
    let listed = |d: &Path| -> usize { walk(d).map_or(usize::MAX, |found| found.len()) };
    listed(&data) == files.len()
        && files.iter().all(|(path, (value, mode))| {
            let at = data.join(path);
            fs::read(&at).is_ok_and(|v| v == *value)
                && fs::metadata(&at).is_ok_and(|m| {
                    m.permissions().mode() & 0o777 == effective(*mode, group)
                        && group.is_none_or(|gid| m.gid() == gid)
                })
        })
}

/// Gives `path` and everything below it to `gid`: directories setgid and
/// group-readable (files got their modes when written); links are not
/// followed.
fn give_to_group(path: &Path, gid: u32) -> io::Result<()> {
    lchown(path, None, Some(gid))?;
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        // After the chown, which may clear the setgid bit.
        let mode = meta.permissions().mode() | GROUP_DIR;
        fs::set_permissions(path, Permissions::from_mode(mode))?;
        for entry in fs::read_dir(path)? {
            give_to_group(&entry?.path(), gid)?;
        }
    }
    Ok(())
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

/// Writes `files` into the volume at `dir` unless it already holds them;
/// `group`: the pod's `fsGroup`.
pub fn write(dir: &Path, files: &Payload, group: Option<u32>) -> Result<(), String> {
    let failed = |p: &Path, e: io::Error| format!("{}: {e}", p.display());
    fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    if current(dir, files, group) {
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
        let mode = effective(*mode, group);
        fs::set_permissions(&at, Permissions::from_mode(mode)).map_err(|e| failed(&at, e))?;
    }
    if let Some(gid) = group {
        give_to_group(&fresh, gid).map_err(|e| failed(&fresh, e))?;
    }
    // The switch: one rename of a symlink.
    let previous = fs::read_link(dir.join(DATA)).ok();
    let next = dir.join("..data_tmp");
    let _ = fs::remove_file(&next);
    symlink(&name, &next).map_err(|e| failed(&next, e))?;
    if let Some(gid) = group {
        lchown(&next, None, Some(gid)).map_err(|e| failed(&next, e))?;
    }
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
        if let Some(gid) = group {
            lchown(&link, None, Some(gid)).map_err(|e| failed(&link, e))?;
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
    if let Some(gid) = group {
        // The volume's root, not what is below it (done above).
        lchown(dir, None, Some(gid)).map_err(|e| failed(dir, e))?;
        let mode = fs::metadata(dir)
            .map_err(|e| failed(dir, e))?
            .permissions()
            .mode();
        fs::set_permissions(dir, Permissions::from_mode(mode | GROUP_DIR))
            .map_err(|e| failed(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("there").permissions().mode() & 0o7777
    }

    #[test]
    fn with_an_fs_group_the_volume_is_the_groups_and_group_readable() {
        let dir = std::env::temp_dir().join(format!("wasmlet-aw-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let files = Payload::from([
            (PathBuf::from("db/password"), (b"s3cret".to_vec(), 0o400)),
            (PathBuf::from("plain"), (b"x".to_vec(), 0o644)),
        ]);
        write(&dir, &files, None).expect("written");
        assert_eq!(mode(&dir.join("db/password")), 0o400);

        write(&dir, &files, Some(4242)).expect("written again, for the group");
        let password = dir.join("db/password");
        assert_eq!(mode(&password), 0o440);
        assert_eq!(fs::metadata(&password).expect("there").gid(), 4242);
        assert_eq!(mode(&dir.join("plain")), 0o644);
        let data_dir = fs::canonicalize(dir.join("db")).expect("a directory");
        assert_eq!(fs::metadata(&data_dir).expect("there").gid(), 4242);
        assert_eq!(mode(&data_dir) & GROUP_DIR, GROUP_DIR, "setgid, group r-x");
        assert_eq!(fs::metadata(&dir).expect("there").gid(), 4242);
        assert!(current(&dir, &files, Some(4242)), "written once, then left");
        assert!(!current(&dir, &files, Some(4243)));
        fs::remove_dir_all(&dir).expect("removed");
    }
}
