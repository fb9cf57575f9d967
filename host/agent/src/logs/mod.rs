//! Container logs where the kubelet keeps them, so log collectors that read
//! a kubelet node read this one: each container's log in the pod's log
//! directory (`<podLogsDir>/<namespace>_<name>_<uid>/<container>/<n>.log`,
//! written by the runtime), a link to it named
//! `<containerLogsDir>/<pod>_<namespace>_<container>-<id>.log`, both removed
//! with the container or the pod, and [`rotation`] by size. Blocking
//! filesystem calls: callers run them off the async runtime's threads.

pub mod lookup;
pub mod reader;
pub mod rotation;

use std::io;
use std::path::{Path, PathBuf};

/// The longest file name ext4 takes.
const MAX_FILE_NAME: usize = 255;

/// `<root>/<namespace>_<name>_<uid>`, the kubelet's pod log directory.
pub fn pod_log_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{name}_{uid}"))
}

/// The link to a container's log, cut to a file name ext4 takes (as the
/// kubelet's `logSymlink`).
pub fn link_path(
    links: &Path,
    pod_name: &str,
    namespace: &str,
    container: &str,
    id: &str,
) -> PathBuf {
    let suffix = ".log";
    let mut name = format!("{pod_name}_{namespace}_{container}-{id}");
    // Names and IDs are ASCII (validated), so any byte is a boundary.
    name.truncate(MAX_FILE_NAME - suffix.len());
    links.join(name + suffix)
}

/// Links `link` to `log`, replacing a stale link of that name.
pub fn create_link(link: &Path, log: &Path) -> io::Result<()> {
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::fs::symlink(log, link)
}

/// Removes `path` (a link or a directory tree); gone already is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_named_as_the_kubelet_names_them() {
        let link = link_path(
            Path::new("/var/log/containers"),
            "web",
            "shop",
            "app",
            "abc",
        );
        assert_eq!(link, Path::new("/var/log/containers/web_shop_app-abc.log"));
        let long = link_path(
            Path::new("/l"),
            &"p".repeat(200),
            "ns",
            "c",
            &"f".repeat(64),
        );
        let name = long
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(name.len(), MAX_FILE_NAME);
        assert!(name.ends_with(".log"));
    }

    #[test]
    fn a_link_is_made_replaced_and_removed() {
        let dir = std::env::temp_dir().join(format!("wasmlet-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = dir.join("pods/0.log");
        std::fs::create_dir_all(dir.join("pods")).expect("dir");
        std::fs::write(&log, "line\n").expect("log");
        let link = dir.join("containers/x.log");
        create_link(&link, Path::new("/nowhere")).expect("stale link");
        create_link(&link, &log).expect("replaced");
        assert_eq!(
            std::fs::read_to_string(&link).ok().as_deref(),
            Some("line\n")
        );
        remove(&link).expect("removed");
        remove(&link).expect("gone already");
        assert!(log.exists(), "the log itself stays");
        remove(&dir.join("pods")).expect("a tree");
        assert!(!log.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
