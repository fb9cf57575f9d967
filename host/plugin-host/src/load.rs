//! Loading a plugin: its manifest, its component (pinned digest, compiled
//! off the runtime's threads), its contract and its kind's export.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::bindings::{admission_handler, lifecycle_handler, pod_source_handler, probe_handler};
use crate::capability::HostContext;
use crate::contract::Kind;
use crate::contract::{ComponentFacts, check_contract};
use crate::engine::PluginEngine;
use crate::error::{LoadError, ManifestError};
use crate::manifest::{Capabilities, Grant, Manifest};
use crate::metrics::PluginMetrics;
use crate::plugin::{Exports, Plugin};
use crate::slots::FairSlots;
use crate::state::PluginIdentity;

impl Plugin {
    /// Loads the plugin described by the manifest at `manifest_path`; the
    /// plugin is named after the manifest's file name.
    pub async fn load(
        engine: &Arc<PluginEngine>,
        host: &Arc<HostContext>,
        metrics: &PluginMetrics,
        manifest_path: &Path,
        operator_grant: Option<&Capabilities>,
    ) -> Result<Self, LoadError> {
        let manifest = Self::parse_manifest(manifest_path, tokio::fs::read(manifest_path).await)?;
        let name = manifest_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        Self::from_manifest(engine, host, metrics, &name, manifest, dir, operator_grant).await
    }

    /// Reads and parses the manifest at `path`.
    pub fn read_manifest(path: &Path) -> Result<Manifest, LoadError> {
        Self::parse_manifest(path, std::fs::read(path))
    }

    fn parse_manifest(path: &Path, read: std::io::Result<Vec<u8>>) -> Result<Manifest, LoadError> {
        let manifest_error = |source: ManifestError| LoadError::Manifest {
            path: path.to_path_buf(),
            source,
        };
        let bytes = read.map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| manifest_error(ManifestError::Syntax("not UTF-8".into())))?;
        Manifest::parse(&text).map_err(manifest_error)
    }

    /// Loads plugin `name` from a parsed manifest; a relative component path is
    /// relative to `dir`.
    pub async fn from_manifest(
        engine: &Arc<PluginEngine>,
        host: &Arc<HostContext>,
        metrics: &PluginMetrics,
        name: &str,
        manifest: Manifest,
        dir: &Path,
        operator_grant: Option<&Capabilities>,
    ) -> Result<Self, LoadError> {
        let name = name.to_owned();
        let component_path = dir.join(
            manifest
                .component
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{name}.wasm"))),
        );
        let wasm = tokio::fs::read(&component_path)
            .await
            .map_err(|source| LoadError::Read {
                path: component_path.clone(),
                source,
            })?;
        let digest = hex::encode(Sha256::digest(&wasm));
        if let Some(pinned) = &manifest.sha256
            && !pinned.eq_ignore_ascii_case(&digest)
        {
            return Err(LoadError::Digest {
                path: component_path,
                pinned: pinned.clone(),
                actual: digest,
            });
        }
        let grant = Grant::effective(&manifest.capabilities, operator_grant).map_err(|e| {
            LoadError::Manifest {
                path: component_path.clone(),
                source: e.within("capabilities").into(),
            }
        })?;

        let compiler = engine.clone();
        let component = tokio::task::spawn_blocking(move || compiler.compile(&wasm))
            .await
            .map_err(|e| LoadError::Compile {
                path: component_path.clone(),
                message: e.to_string(),
            })?
            .map_err(|e| LoadError::Compile {
                path: component_path.clone(),
                message: format!("{e:#}"),
            })?;
        let contract = |message: String| LoadError::Contract {
            path: component_path.clone(),
            message,
        };
        let facts = ComponentFacts::read(&engine.engine, &component);
        let wit_version = check_contract(&facts, &manifest.wit, manifest.kind).map_err(contract)?;
        let pre = engine.linker.instantiate_pre(&component).map_err(|e| {
            contract(format!(
                "imports something the host does not provide: {e:#}"
            ))
        })?;
        let exports = match manifest.kind {
            Kind::Admission => admission_handler::GuestIndices::new(&pre).map(Exports::Admission),
            Kind::Probe => probe_handler::GuestIndices::new(&pre).map(Exports::Probe),
            Kind::Lifecycle => lifecycle_handler::GuestIndices::new(&pre).map(Exports::Lifecycle),
            Kind::PodSource => pod_source_handler::GuestIndices::new(&pre).map(Exports::PodSource),
        }
        .map_err(|e| {
            contract(format!(
                "does not match the `{}` world: {e:#}",
                manifest.kind
            ))
        })?;

        let identity = Arc::new(PluginIdentity {
            name: name.clone(),
            settings_json: manifest.settings_json(),
            grant: grant.clone(),
            memory_limit: manifest.limits.memory_bytes(),
            logs: Default::default(),
        });
        let plugin = Self {
            slots: FairSlots::new(manifest.limits.concurrency as usize),
            name,
            component_path,
            digest,
            wit_version,
            grant,
            identity,
            engine: engine.clone(),
            pre,
            exports,
            host: host.clone(),
            metrics: metrics.clone(),
            manifest,
        };
        if plugin.manifest.kind == Kind::Admission {
            plugin
                .validate_settings()
                .await
                .map_err(|error| LoadError::Settings {
                    path: plugin.component_path.clone(),
                    error,
                })?;
        }
        Ok(plugin)
    }
}
