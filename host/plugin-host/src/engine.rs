//! One wasmtime engine for all plugins: pooling allocation, epoch deadlines, and a
//! disk cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::epochs::EpochTicker;
use crate::manifest::Limits;
use crate::state::CallState;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("wasm engine: {0}")]
    Wasmtime(String),
    #[error("epoch ticker thread: {0}")]
    Ticker(#[from] std::io::Error),
}

/// The compiler, linker and allocator every plugin shares.
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    cache_dir: Option<PathBuf>,
    compat: String,
    pub(crate) ticker: EpochTicker,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// `cache_dir`: where compiled components are kept between runs (created if
    /// missing); `None` compiles on every load.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, EngineError> {
        let wasm = |e: wasmtime::Error| EngineError::Wasmtime(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(1000)
            .total_core_instances(2000)
            .total_memories(1000)
            .total_tables(2000)
            .total_stacks(1000)
            .max_core_instances_per_component(50)
            .max_memories_per_component(10)
            .max_tables_per_component(20)
            .max_memories_per_module(2)
            .max_tables_per_module(10)
            .table_elements(100_000)
            .max_core_instance_size(16 << 20)
            .max_component_instance_size(16 << 20)
            .max_memory_size(Limits::MAX_MEMORY_MIB as usize * 1024 * 1024)
            .max_unused_warm_slots(100)
            // Zero a small plugin's pages instead of decommitting them: a fresh
            // instance per call then does not fault its memory in again.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(wasm)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm)?;
        linker.allow_shadowing(true);
        crate::imports::sockets::add_to_linker(&mut linker).map_err(wasm)?;
        linker.allow_shadowing(false);
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasm)?;
        crate::bindings::AllPlugins::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(wasm)?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Self {
            engine,
            linker,
            cache_dir,
            compat,
            ticker,
        })
    }

    /// What a component declares (kind, WIT version, imports, exports), without running it.
    pub fn inspect(&self, wasm: &[u8]) -> Result<crate::ComponentFacts, String> {
        let component = self
            .compile(wasm)
            .map_err(|e| format!("not a WebAssembly component: {e:#}"))?;
        Ok(crate::ComponentFacts::read(&self.engine, &component))
    }

    /// Compiles `wasm` into the cache ahead of its first load, unless this
    /// engine build compiled it already: the artifact, and whether it was
    /// compiled now. An agent with the same cache then loads it without
    /// compiling; an artifact of another engine build is never used.
    pub fn precompile(&self, wasm: &[u8]) -> Result<(PathBuf, bool), String> {
        let dir = self
            .cache_dir
            .as_ref()
            .ok_or("there is no compile cache to fill (the plugin cache is \"\")")?;
        trusted_cache_dir(dir).map_err(|why| format!("{}: {why}", dir.display()))?;
        let path = self.cache_path(dir, wasm);
        if trusted_entry(&path) && load_cached(&self.engine, &path).is_ok() {
            return Ok((path, false));
        }
        let component =
            Component::new(&self.engine, wasm).map_err(|e| format!("compiling: {e:#}"))?;
        store_cached(dir, &path, &component).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((path, true))
    }

    fn cache_path(&self, dir: &Path, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        dir.join(format!("{digest}-{}.cwasm", self.compat))
    }

    /// Compiles `wasm`, or loads the result of an earlier compile of the same
    /// bytes by the same engine build from the cache.
    pub(crate) fn compile(&self, wasm: &[u8]) -> Result<Component, wasmtime::Error> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, wasm);
        };
        if let Err(why) = trusted_cache_dir(dir) {
            tracing::warn!(dir = %dir.display(), "not using the compile cache: {why}");
            return Component::new(&self.engine, wasm);
        }
        let path = self.cache_path(dir, wasm);
        if trusted_entry(&path) {
            match load_cached(&self.engine, &path) {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compile cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, wasm)?;
        if let Err(e) = store_cached(dir, &path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compile cache entry");
        }
        Ok(component)
    }
}

/// Compiled code is native code: it is loaded only from a directory the
/// agent's user owns and nobody else may write (created so if missing).
fn trusted_cache_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("creating it: {e}"))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not the agent's {me}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// An entry is used only if it is a regular file of the agent's user that
/// nobody else may write.
fn trusted_entry(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &Path) -> Result<Component, wasmtime::Error> {
    // SAFETY: deserialising runs native code compiled earlier. The file was
    // written by `store_cached` below into a directory only the agent's user
    // may write (checked before every use, as the entry itself), under a name
    // made of the wasm's digest and this engine's compatibility hash; wasmtime
    // itself checks the header against this engine.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store_cached(
    dir: &Path,
    path: &Path,
    component: &Component,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = component.serialize()?;
    // An exclusive temp file of our own, renamed in: a reader never sees
    // half a file, and nobody can have planted the temp file.
    let tmp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        fastrand::u64(..)
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file.write_all(&bytes).and_then(|()| file.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}
