//! `configMap`, `secret` and `projected` volumes: files made from API
//! objects (and, in a projected volume, the downward API and a service
//! account token), written by the [`super::atomic_writer`], as the kubelet's
//! configmap, secret and projected plugins make them. Secret and projected
//! volumes are memory-backed, so their contents never reach the node's disk.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, KeyToPath, Pod, ProjectedVolumeSource, SecretVolumeSource,
};

use super::atomic_writer::{Payload, file_mode, item_path};
use super::downward_api;
use crate::api_objects::{DEFAULT_TOKEN_SECONDS, Data, Fetched, ObjectKind};

pub const CONFIG_MAP_DIR: &str = "kubernetes.io~configmap";
pub const SECRET_DIR: &str = "kubernetes.io~secret";
pub const PROJECTED_DIR: &str = "kubernetes.io~projected";

/// One object a volume (or a projection) takes files from.
struct ObjectFiles<'a> {
    kind: ObjectKind,
    name: &'a str,
    items: Option<&'a [KeyToPath]>,
    optional: bool,
}

impl ObjectFiles<'_> {
    /// The object's keys as files, added to `files`: every key, or only
    /// the `items` (each at its own path); a missing object or key is an
    /// error unless `optional`.
    fn add(
        self,
        files: &mut Payload,
        fetched: &Fetched,
        default_mode: Option<i32>,
    ) -> Result<(), String> {
        let Self {
            kind,
            name,
            items,
            optional,
        } = self;
        let data: &Data = match fetched.object(kind, name)? {
            Some(data) => data,
            None if optional => return Ok(()),
            None => return Err(format!("{} {name:?} not found", kind.lowercase())),
        };
        match items.filter(|i| !i.is_empty()) {
            None => {
                for (key, value) in data {
                    let mode = file_mode(None, default_mode);
                    files.insert(item_path(key)?, (value.clone(), mode));
                }
            }
            Some(items) => {
                for item in items {
                    let Some(value) = data.get(&item.key) else {
                        if optional {
                            continue;
                        }
                        let what = match kind {
                            ObjectKind::ConfigMap => "config",
                            ObjectKind::Secret => "secret",
                        };
                        return Err(format!(
                            "{} references non-existent {what} key: {}",
                            kind.lowercase(),
                            item.key
                        ));
                    };
                    let mode = file_mode(item.mode, default_mode);
                    files.insert(item_path(&item.path)?, (value.clone(), mode));
                }
            }
        }
        Ok(())
    }
}

/// The files of a `configMap` volume.
pub fn config_map(source: &ConfigMapVolumeSource, fetched: &Fetched) -> Result<Payload, String> {
    let mut files = Payload::new();
    let object = ObjectFiles {
        kind: ObjectKind::ConfigMap,
        name: &source.name,
        items: source.items.as_deref(),
        optional: source.optional.unwrap_or(false),
    };
    object.add(&mut files, fetched, source.default_mode)?;
    Ok(files)
}

/// The files of a `secret` volume.
pub fn secret(source: &SecretVolumeSource, fetched: &Fetched) -> Result<Payload, String> {
    let mut files = Payload::new();
    let object = ObjectFiles {
        kind: ObjectKind::Secret,
        name: source.secret_name.as_deref().unwrap_or_default(),
        items: source.items.as_deref(),
        optional: source.optional.unwrap_or(false),
    };
    object.add(&mut files, fetched, source.default_mode)?;
    Ok(files)
}

/// The files of a `projected` volume, source by source.
pub fn projected(
    pod: &Pod,
    source: &ProjectedVolumeSource,
    fetched: &Fetched,
) -> Result<Payload, String> {
    let mut files = Payload::new();
    let mode = source.default_mode;
    for projection in source.sources.iter().flatten() {
        if let Some(d) = &projection.downward_api {
            downward_api::payload(&mut files, pod, d.items.iter().flatten(), mode)?;
        }
        let objects = [
            projection.config_map.as_ref().map(|c| ObjectFiles {
                kind: ObjectKind::ConfigMap,
                name: &c.name,
                items: c.items.as_deref(),
                optional: c.optional.unwrap_or(false),
            }),
            projection.secret.as_ref().map(|s| ObjectFiles {
                kind: ObjectKind::Secret,
                name: &s.name,
                items: s.items.as_deref(),
                optional: s.optional.unwrap_or(false),
            }),
        ];
        for object in objects.into_iter().flatten() {
            object.add(&mut files, fetched, mode)?;
        }
        if let Some(t) = &projection.service_account_token {
            let audience = t.audience.as_deref().filter(|a| !a.is_empty());
            let seconds = t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS);
            let token = fetched.token(audience, seconds)?;
            files.insert(
                item_path(&t.path)?,
                (token.as_bytes().to_vec(), file_mode(None, mode)),
            );
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, SecretVolumeSource, VolumeProjection};

    use super::*;

    fn fetched() -> Fetched {
        let mut f = Fetched::default();
        let data: Data = [
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]
        .into();
        f.insert_object(ObjectKind::ConfigMap, "settings", Some(data));
        f.insert_object(ObjectKind::Secret, "gone", None);
        f.insert_token(None, DEFAULT_TOKEN_SECONDS, "t0k3n".into());
        f
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    fn listed(files: &Payload) -> Vec<(String, String, u32)> {
        files
            .iter()
            .map(|(p, (v, m))| {
                let value = String::from_utf8_lossy(v).into_owned();
                (p.display().to_string(), value, *m)
            })
            .collect()
    }

    #[test]
    fn a_config_map_gives_every_key_or_its_items() {
        let mut source = ConfigMapVolumeSource {
            name: "settings".into(),
            default_mode: Some(0o600),
            ..Default::default()
        };
        let all = config_map(&source, &fetched()).expect("files");
        assert_eq!(
            listed(&all),
            [
                ("a".into(), "1".into(), 0o600),
                ("b".into(), "2".into(), 0o600)
            ]
        );
        source.items = Some(vec![item("b", "deep/b.txt", Some(0o400))]);
        let some = config_map(&source, &fetched()).expect("files");
        assert_eq!(listed(&some), [("deep/b.txt".into(), "2".into(), 0o400)]);

        source.items = Some(vec![item("c", "c", None)]);
        let missing = config_map(&source, &fetched()).expect_err("no key c");
        assert_eq!(missing, "configmap references non-existent config key: c");
        source.optional = Some(true);
        assert!(
            config_map(&source, &fetched())
                .expect("optional")
                .is_empty()
        );

        source.items = Some(vec![item("a", "../escape", None)]);
        assert!(
            config_map(&source, &fetched()).is_err(),
            "a path out of the volume"
        );
    }

    #[test]
    fn a_missing_secret_fails_the_mount_unless_optional() {
        let mut source = SecretVolumeSource {
            secret_name: Some("gone".into()),
            ..Default::default()
        };
        assert_eq!(
            secret(&source, &fetched()).expect_err("missing"),
            "secret \"gone\" not found"
        );
        source.optional = Some(true);
        assert!(secret(&source, &fetched()).expect("optional").is_empty());
    }

    #[test]
    fn a_projected_volume_joins_its_sources_with_the_token() {
        let source = ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(Default::default()),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(k8s_openapi::api::core::v1::ConfigMapProjection {
                        name: "settings".into(),
                        items: Some(vec![item("a", "ca.crt", None)]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            default_mode: None,
        };
        // A token projection without a path is refused, not written.
        assert!(projected(&Pod::default(), &source, &fetched()).is_err());
        let mut with_path = source.clone();
        if let Some(sources) = with_path.sources.as_mut() {
            sources[0].service_account_token =
                Some(k8s_openapi::api::core::v1::ServiceAccountTokenProjection {
                    path: "token".into(),
                    ..Default::default()
                });
        }
        let files = projected(&Pod::default(), &with_path, &fetched()).expect("files");
        assert_eq!(
            listed(&files),
            [
                ("ca.crt".into(), "1".into(), 0o644),
                ("token".into(), "t0k3n".into(), 0o644)
            ]
        );
    }
}
