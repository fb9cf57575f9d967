//! `hostPath`: a node path, checked against its `type` as the kubelet's
//! `hostPathTypeChecker` does, and created for the `...OrCreate` types.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::HostPathVolumeSource;

fn not_a(path: &str, what: &str) -> String {
    format!("hostPath type check failed: {path} is not a {what}")
}

/// The checked path of a `hostPath` volume.
pub fn check(source: &HostPathVolumeSource) -> Result<PathBuf, String> {
    let path = source.path.as_str();
    let kind = source.type_.as_deref().unwrap_or_default();
    let stat = || fs::metadata(path).map(|m| m.file_type());
    let is = |test: fn(&fs::FileType) -> bool, what: &str| match stat() {
        Ok(t) if test(&t) => Ok(()),
        _ => Err(not_a(path, what)),
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match stat() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|e| format!("creating {path}: {e}")),
            Ok(t) if t.is_dir() => Ok(()),
            _ => Err(not_a(path, "directory")),
        },
        "FileOrCreate" => match stat() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map(drop)
                .map_err(|e| format!("creating {path}: {e}")),
            Ok(t) if t.is_file() => Ok(()),
            _ => Err(not_a(path, "file")),
        },
        "Directory" => is(fs::FileType::is_dir, "directory"),
        "File" => is(fs::FileType::is_file, "file"),
        "Socket" => is(FileTypeExt::is_socket, "socket file"),
        "CharDevice" => is(FileTypeExt::is_char_device, "character device"),
        "BlockDevice" => is(FileTypeExt::is_block_device, "block device"),
        other => Err(format!(
            "hostPath type {other:?} is not a type Kubernetes knows"
        )),
    }?;
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &std::path::Path, kind: &str) -> HostPathVolumeSource {
        HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: Some(kind.into()),
        }
    }

    #[test]
    fn types_are_checked_and_created() -> io::Result<()> {
        let root = std::env::temp_dir().join(format!("wasmlet-hostpath-{}", std::process::id()));
        let dir = root.join("a/b");
        assert!(check(&source(&dir, "Directory")).is_err());
        check(&source(&dir, "DirectoryOrCreate")).map_err(io::Error::other)?;
        assert!(dir.is_dir());
        check(&source(&dir, "Directory")).map_err(io::Error::other)?;
        let e = check(&source(&dir, "File")).expect_err("a directory");
        assert!(e.ends_with("is not a file"), "{e}");
        let file = dir.join("f");
        check(&source(&file, "FileOrCreate")).map_err(io::Error::other)?;
        check(&source(&file, "File")).map_err(io::Error::other)?;
        assert!(check(&source(&file, "DirectoryOrCreate")).is_err());
        assert!(check(&source(&file, "Socket")).is_err());
        assert!(
            check(&source(&root.join("none"), "")).is_ok(),
            "no type, no check"
        );
        assert!(check(&source(&file, "Pipe")).is_err());
        fs::remove_dir_all(&root)
    }
}
