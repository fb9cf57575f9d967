//! `downwardAPI` volumes (and the downward API items of `projected`
//! volumes): files holding what the pod may read of itself, written by the
//! [`super::atomic_writer`]. Mounted read-only.

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod};
use wasmlet_rules::downward::{self, RuntimeFacts};

use super::atomic_writer::{Payload, file_mode, item_path};

pub const PLUGIN_DIR: &str = "kubernetes.io~downward-api";

/// The files of `items`, added to `files`.
pub fn payload<'a>(
    files: &mut Payload,
    pod: &Pod,
    items: impl IntoIterator<Item = &'a DownwardAPIVolumeFile>,
    default_mode: Option<i32>,
) -> Result<(), String> {
    for item in items {
        let path = item_path(&item.path)?;
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
        files.insert(
            path,
            (value.into_bytes(), file_mode(item.mode, default_mode)),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io;
    use std::os::unix::fs::PermissionsExt;

    use k8s_openapi::api::core::v1::ObjectFieldSelector;

    use super::super::atomic_writer::{DATA, write};
    use super::*;

    fn payload_of(
        pod: &Pod,
        items: &[DownwardAPIVolumeFile],
        mode: Option<i32>,
    ) -> Result<Payload, String> {
        let mut files = Payload::new();
        payload(&mut files, pod, items, mode)?;
        Ok(files)
    }

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
        let files = payload_of(&pod, &items, None).map_err(io::Error::other)?;
        write(&dir, &files, None).map_err(io::Error::other)?;
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
        write(&dir, &files, None).map_err(io::Error::other)?;
        assert_eq!(
            fs::read_link(dir.join(DATA))?,
            first,
            "unchanged: not rewritten"
        );

        pod.metadata.name = Some("web-2".into());
        let files = payload_of(&pod, &items[..1], Some(0o600)).map_err(io::Error::other)?;
        write(&dir, &files, None).map_err(io::Error::other)?;
        assert_eq!(fs::read_to_string(dir.join("name"))?, "web-2");
        assert_eq!(
            fs::metadata(dir.join("name"))?.permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.join("meta").exists(), "a dropped item goes");
        assert!(!dir.join(first).exists(), "the old payload goes");

        assert!(payload_of(&pod, &[item("../x", "metadata.name")], None).is_err());
        assert!(payload_of(&pod, &[item("..x", "metadata.name")], None).is_err());
        fs::remove_dir_all(&dir)
    }
}
