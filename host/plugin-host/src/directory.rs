//! The plugin directory: every `*.toml` manifest next to its `.wasm`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::capability::HostContext;
use crate::contract::Kind;
use crate::engine::PluginEngine;
use crate::error::{LoadError, ManifestError};
use crate::manifest::{Capabilities, Manifest};
use crate::metrics::PluginMetrics;
use crate::plugin::Plugin;

/// What loading a directory gave: the plugins that loaded, in name order, and
/// why the others did not.
#[derive(Debug, Default)]
pub struct PluginSet {
    pub plugins: Vec<Arc<Plugin>>,
    pub skipped: Vec<Skipped>,
}

/// A plugin of the directory that did not load.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Skipped {
    pub name: String,
    /// What its manifest says it is; `None` when the manifest itself is
    /// unreadable, so it may be anything, a pod source included.
    pub kind: Option<Kind>,
    /// What its manifest says an admission plugin's failure means.
    pub failure_policy: Option<crate::FailurePolicy>,
    pub error: LoadError,
}

impl Skipped {
    /// Whether this may be a pod source: the agent must then not treat the
    /// pods it would give as orphans.
    pub fn may_be_source(&self) -> bool {
        self.kind.is_none_or(|k| k == Kind::PodSource)
    }
}

impl PluginSet {
    /// Loads every plugin in `dir`. A plugin that fails to load is reported and
    /// skipped; the rest still load. `grants` narrows plugins by name.
    pub async fn load_dir(
        engine: &Arc<PluginEngine>,
        host: &Arc<HostContext>,
        metrics: &PluginMetrics,
        dir: &Path,
        grants: &BTreeMap<String, Capabilities>,
    ) -> Result<Self, LoadError> {
        Self::load_dir_with(engine, host, metrics, dir, grants, |_, _| Ok(true)).await
    }

    /// As [`Self::load_dir`], but `adjust` sees each plugin's manifest first:
    /// it may change it (e.g. the agent sets a source's path from its own
    /// config), skip the plugin (`Ok(false)`) or refuse it (`Err`).
    pub async fn load_dir_with(
        engine: &Arc<PluginEngine>,
        host: &Arc<HostContext>,
        metrics: &PluginMetrics,
        dir: &Path,
        grants: &BTreeMap<String, Capabilities>,
        adjust: impl Fn(&str, &mut Manifest) -> Result<bool, String>,
    ) -> Result<Self, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut manifests: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.ends_with("Cargo.toml"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        manifests.sort();
        let mut set = Self::default();
        for manifest in manifests {
            match Self::load_one(engine, host, metrics, &manifest, grants, &adjust).await {
                Ok(None) => {}
                Ok(Some(plugin)) => set.plugins.push(Arc::new(plugin)),
                Err(skipped) => {
                    tracing::error!(error = %skipped.error, "plugin skipped");
                    set.skipped.push(skipped);
                }
            }
        }
        Ok(set)
    }

    /// Loads the plugin of one manifest, as [`Self::load_dir_with`] does
    /// (`Ok(None)`: `adjust` skipped it); a failure says what the manifest
    /// could tell about the plugin.
    pub async fn load_one(
        engine: &Arc<PluginEngine>,
        host: &Arc<HostContext>,
        metrics: &PluginMetrics,
        manifest: &Path,
        grants: &BTreeMap<String, Capabilities>,
        adjust: impl Fn(&str, &mut Manifest) -> Result<bool, String>,
    ) -> Result<Option<Plugin>, Skipped> {
        let name = manifest
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mut kind, mut failure_policy) = (None, None);
        let loaded = async {
            let mut parsed = Plugin::read_manifest(manifest)?;
            kind = Some(parsed.kind);
            failure_policy = Some(parsed.failure_policy);
            if !adjust(&name, &mut parsed).map_err(|message| LoadError::Manifest {
                path: manifest.to_path_buf(),
                source: ManifestError::Configure(message),
            })? {
                return Ok(None);
            }
            let dir = manifest.parent().unwrap_or(Path::new("."));
            Plugin::from_manifest(engine, host, metrics, &name, parsed, dir, grants.get(&name))
                .await
                .map(Some)
        };
        loaded.await.map_err(|error| Skipped {
            name: name.clone(),
            kind,
            failure_policy,
            error,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The table the agent logs at start.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "{:<24} {:<11} {:<7} {:<9} capabilities\n",
            "plugin", "kind", "wit", "policy"
        );
        for p in &self.plugins {
            let policy = match (p.manifest.kind, p.manifest.mode) {
                (_, crate::Mode::Monitor) => "monitor",
                (Kind::Admission, _) => match p.manifest.failure_policy {
                    crate::FailurePolicy::FailClosed => "closed",
                    crate::FailurePolicy::FailOpen => "open",
                },
                _ => "-",
            };
            let _ = writeln!(
                out,
                "{:<24} {:<11} {:<7} {:<9} {}",
                p.name,
                p.manifest.kind.world(),
                p.wit_version,
                policy,
                p.grant.summary()
            );
        }
        for e in &self.skipped {
            let _ = writeln!(out, "skipped: {e}");
        }
        out
    }
}
