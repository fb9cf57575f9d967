//! A loaded plugin and the one way all its calls are made.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::{
    admission_handler, lifecycle_handler, pod_source_handler, probe_handler, types,
};
use crate::capability::HostContext;
use crate::engine::{EPOCH_TICK, PluginEngine};
use crate::error::{CallError, Failure, LoadError};
use crate::manifest::{Capabilities, Grant, Kind, Manifest};
use crate::metrics::{CallLabels, ErrorLabels, PluginMetrics};
use crate::slots::FairSlots;
use crate::state::{CallState, CallTarget, PluginIdentity};

/// The WIT package version this host implements. Components built against any
/// `0.1.x` are compatible (for 0.x, the minor version is the breaking one).
pub const WIT_VERSION: &str = "0.1.0";
const WIT_PACKAGE: &str = "wasmlet:plugin";

pub(crate) type CallFuture<'a, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, types::Error>>> + Send + 'a>>;

/// Where in the component each kind's export lives, resolved once at load.
#[derive(Clone)]
pub(crate) enum Exports {
    Admission(admission_handler::GuestIndices),
    Probe(probe_handler::GuestIndices),
    Lifecycle(lifecycle_handler::GuestIndices),
    PodSource(pod_source_handler::GuestIndices),
}

/// How long a call waits for one of the plugin's slots: a call that gets none
/// did not run (`Failure::Busy`), which is not the same as one that failed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SlotWait {
    /// The wait comes out of the call's deadline (a preStop hook's share of
    /// the grace period, or any call with no better bound).
    OutOfDeadline,
    /// Up to this long, on top of the deadline, which starts with the slot
    /// (a probe's timeout is the check's, not the queue's).
    UpTo(Duration),
}

/// Bytes one host call may take from the guest.
const HOSTCALL_FUEL: usize = 1 << 20;

/// How many epoch ticks a guest may run before it yields to the executor.
const YIELD_TICKS: u128 = 10;

/// The epoch callback's verdict when a call's time is up.
#[derive(Debug)]
struct DeadlineReached;

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline reached")
    }
}

impl std::error::Error for DeadlineReached {}

/// A plugin ready to be called: compiled, linked, its contract checked.
pub struct Plugin {
    pub name: String,
    pub manifest: Manifest,
    /// The `.wasm` it was loaded from.
    pub component_path: PathBuf,
    /// sha256 of the `.wasm`.
    pub digest: String,
    /// The wasmlet:plugin version the component was built against.
    pub wit_version: String,
    /// What it may do: its request narrowed by the operator.
    pub grant: Grant,
    pub(crate) identity: Arc<PluginIdentity>,
    pub(crate) engine: Arc<PluginEngine>,
    pub(crate) pre: InstancePre<CallState>,
    pub(crate) exports: Exports,
    pub(crate) host: Arc<HostContext>,
    pub(crate) metrics: PluginMetrics,
    slots: FairSlots,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.manifest.kind)
            .field("wit_version", &self.wit_version)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

/// What a component declares, read without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFacts {
    /// The plugin kind its export names, if any.
    pub kind: Option<Kind>,
    /// The wasmlet:plugin version of its exports.
    pub wit_version: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl ComponentFacts {
    pub(crate) fn read(engine: &wasmtime::Engine, component: &Component) -> Self {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let mut kind = None;
        let mut wit_version = None;
        for name in &exports {
            if let Some((iface, version)) = ours(name)
                && let Some(k) = Kind::ALL
                    .into_iter()
                    .find(|k| k.export_interface() == iface)
            {
                kind = Some(k);
                wit_version = Some(version.to_owned());
            }
        }
        Self {
            kind,
            wit_version,
            imports,
            exports,
        }
    }
}

/// `wasmlet:plugin/<iface>@<version>` → (iface, version).
fn ours(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// Same major version, and for 0.x the same minor.
pub fn wit_compatible(version: &str) -> bool {
    let parts = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parts(version), parts(WIT_VERSION)) {
        (Some((major, minor)), Some((our_major, our_minor))) => {
            major == our_major && (major > 0 || minor == our_minor)
        }
        _ => false,
    }
}

fn check_contract(facts: &ComponentFacts, manifest: &Manifest) -> Result<String, String> {
    if !wit_compatible(&manifest.wit) {
        return Err(format!(
            "manifest says wit = {:?}; this agent speaks {WIT_PACKAGE}@{WIT_VERSION} (compatible: {})",
            manifest.wit,
            compatible_range()
        ));
    }
    for name in facts.imports.iter().chain(&facts.exports) {
        if let Some((_, version)) = ours(name)
            && !wit_compatible(version)
        {
            return Err(format!(
                "built against {WIT_PACKAGE}@{version} ({name}); this agent speaks {WIT_VERSION} (compatible: {})",
                compatible_range()
            ));
        }
    }
    match facts.kind {
        None => Err(format!(
            "exports no {WIT_PACKAGE} handler, so it is no wasmlet plugin (exports: {})",
            if facts.exports.is_empty() {
                "none".into()
            } else {
                facts.exports.join(", ")
            }
        )),
        Some(kind) if kind != manifest.kind => Err(format!(
            "built for the `{}` world, but its manifest says kind = {:?}",
            kind.world(),
            manifest.kind.world()
        )),
        Some(_) => Ok(facts.wit_version.clone().unwrap_or_default()),
    }
}

fn compatible_range() -> String {
    let mut it = WIT_VERSION.split('.');
    match (it.next(), it.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}.x"),
        (Some(major), _) => format!("{major}.x"),
        _ => WIT_VERSION.into(),
    }
}

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
        let manifest = Self::read_manifest(manifest_path)?;
        let name = manifest_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        Self::from_manifest(engine, host, metrics, &name, manifest, dir, operator_grant).await
    }

    /// Reads and parses the manifest at `path`.
    pub fn read_manifest(path: &Path) -> Result<Manifest, LoadError> {
        let manifest_error = |message: String| LoadError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| manifest_error("not UTF-8".into()))?;
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
        let manifest_error = |message: String| LoadError::Manifest {
            path: component_path.clone(),
            message,
        };
        let wasm = std::fs::read(&component_path).map_err(|source| LoadError::Read {
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
        let grant = Grant::effective(&manifest.capabilities, operator_grant)
            .map_err(|e| manifest_error(format!("capabilities: {e}")))?;

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
        let wit_version = check_contract(&facts, &manifest).map_err(contract)?;
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
                .map_err(|source| LoadError::Settings {
                    path: plugin.component_path.clone(),
                    source,
                })?;
        }
        Ok(plugin)
    }

    pub fn kind(&self) -> Kind {
        self.manifest.kind
    }

    /// How many calls hold one of the plugin's concurrency slots right now.
    pub fn busy_slots(&self) -> usize {
        self.slots.busy()
    }

    pub(crate) fn new_store(
        &self,
        target: Option<CallTarget>,
        changes: Option<Arc<Notify>>,
    ) -> Result<Store<CallState>, String> {
        let state = CallState::new(
            self.identity.clone(),
            self.host.clone(),
            target,
            changes,
            self.manifest.deadline(),
        )?;
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limiter);
        // What one host call may copy out of the guest (a log line, a send,
        // a command): the default (128 MiB) is more than any plugin's memory.
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        // The callback below keeps the real deadline; short calls never reach it.
        store.set_epoch_deadline(u64::try_from(YIELD_TICKS).unwrap_or(1));
        store.epoch_deadline_callback(|ctx| {
            let left = ctx
                .data()
                .deadline
                .saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(wasmtime::Error::new(DeadlineReached));
            }
            // Yield to the executor at least every YIELD_TICKS: a guest that
            // computes for long must not starve the agent's other tasks.
            let ticks = left
                .as_nanos()
                .div_ceil(EPOCH_TICK.as_nanos())
                .min(YIELD_TICKS);
            Ok(UpdateDeadline::Yield(u64::try_from(ticks).unwrap_or(1)))
        });
        Ok(store)
    }

    /// One call on a fresh store: instantiate, run `f`, classify what went
    /// wrong, count it. The way every stateless call is made.
    pub(crate) async fn call<A, T, F>(
        &self,
        call: &'static str,
        target: Option<CallTarget>,
        args: &A,
        f: F,
    ) -> Result<T, CallError>
    where
        A: Sync + ?Sized,
        F: for<'a> FnOnce(&'a mut Store<CallState>, Instance, &'a A) -> CallFuture<'a, T>,
    {
        self.call_within(
            call,
            target,
            SlotWait::OutOfDeadline,
            self.manifest.deadline(),
            args,
            f,
        )
        .await
    }

    /// As `call`, with a deadline of the caller's (e.g. a probe's timeout),
    /// never longer than the manifest's, and `wait` for a slot.
    pub(crate) async fn call_within<A, T, F>(
        &self,
        call: &'static str,
        target: Option<CallTarget>,
        wait: SlotWait,
        deadline: Duration,
        args: &A,
        f: F,
    ) -> Result<T, CallError>
    where
        A: Sync + ?Sized,
        F: for<'a> FnOnce(&'a mut Store<CallState>, Instance, &'a A) -> CallFuture<'a, T>,
    {
        let started = Instant::now();
        let deadline = deadline.min(self.manifest.deadline());
        let outcome = async {
            let patience = match wait {
                SlotWait::OutOfDeadline => deadline,
                SlotWait::UpTo(patience) => patience,
            };
            let key = target.as_ref().map(|t| t.pod_uid.clone());
            let _slot = tokio::time::timeout(patience, self.slots.acquire(key))
                .await
                .map_err(|_| Failure::Busy(patience))?;
            // What is left to run in; errors still name the whole deadline.
            let left = match wait {
                SlotWait::OutOfDeadline => deadline.saturating_sub(started.elapsed()),
                SlotWait::UpTo(_) => deadline,
            };
            let mut store = self
                .new_store(target, None)
                .map_err(Failure::DeniedCapability)?;
            store.data_mut().deadline = Instant::now() + left;
            // Epochs cannot interrupt a guest blocked in a host call: the
            // timeout covers that, a little after the epoch deadline would.
            let run = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                f(&mut store, instance, args).await
            };
            let result = tokio::time::timeout(left + EPOCH_TICK * 20, run).await;
            settle(&store, result, deadline)
        }
        .await;
        self.record(call, started, outcome)
    }

    pub(crate) fn record<T>(
        &self,
        call: &'static str,
        started: Instant,
        outcome: Result<T, Failure>,
    ) -> Result<T, CallError> {
        let labels = CallLabels {
            plugin: self.name.clone(),
            call: call.into(),
        };
        self.metrics.calls.get_or_create(&labels).inc();
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        outcome.map_err(|failure| {
            self.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    plugin: self.name.clone(),
                    call: call.into(),
                    reason: failure.reason().into(),
                })
                .inc();
            let error = CallError {
                plugin: self.name.clone(),
                call,
                failure,
            };
            tracing::warn!(%error, "plugin call failed");
            error
        })
    }

    /// `validate-settings` of an admission plugin.
    pub async fn validate_settings(&self) -> Result<(), CallError> {
        let Exports::Admission(indices) = self.exports.clone() else {
            return Err(self.wrong_kind("validate-settings", Kind::Admission));
        };
        self.call(
            "validate-settings",
            None,
            &(),
            move |store, instance, ()| {
                Box::pin(async move {
                    let guest = indices.load(&mut *store, &instance)?;
                    guest.call_validate_settings(&mut *store).await
                })
            },
        )
        .await
    }

    pub(crate) fn wrong_kind(&self, call: &'static str, wanted: Kind) -> CallError {
        CallError {
            plugin: self.name.clone(),
            call,
            failure: Failure::BadOutput(format!(
                "is a {} plugin, not a {wanted} plugin",
                self.manifest.kind
            )),
        }
    }
}

/// Turns what a call returned (or how it failed) into the plugin's answer or a
/// [`Failure`], using what the store saw.
pub(crate) fn settle<T>(
    store: &Store<CallState>,
    result: Result<wasmtime::Result<Result<T, types::Error>>, tokio::time::error::Elapsed>,
    deadline: Duration,
) -> Result<T, Failure> {
    let state = store.data();
    let denied = || {
        state
            .denied
            .lock()
            .map(|d| d.join("; "))
            .unwrap_or_default()
    };
    match result {
        Err(_) => Err(Failure::Deadline(deadline)),
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) => Err(match error {
            types::Error::Denied(what) => Failure::DeniedCapability(crate::bounds::message(what)),
            other => {
                let refused = denied();
                if refused.is_empty() {
                    Failure::Plugin(describe(&other))
                } else {
                    Failure::DeniedCapability(format!("{refused} (then: {})", describe(&other)))
                }
            }
        }),
        Ok(Err(trap)) => Err(if state.limiter.exceeded {
            Failure::MemoryLimit {
                limit_bytes: state.memory_limit(),
            }
        } else if trap.downcast_ref::<DeadlineReached>().is_some()
            || trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
        {
            Failure::Deadline(deadline)
        } else {
            let refused = denied();
            let message = crate::bounds::message(trap_message(&trap, &state.stderr.contents()));
            if refused.is_empty() {
                Failure::Trap(message)
            } else {
                Failure::DeniedCapability(format!("{refused} (then trapped: {message})"))
            }
        }),
    }
}

/// The trap, with the guest's last words (a Rust panic prints its message to
/// stderr before trapping).
fn trap_message(trap: &wasmtime::Error, stderr: &[u8]) -> String {
    let code = trap
        .downcast_ref::<wasmtime::Trap>()
        .map_or_else(|| trap.root_cause().to_string(), ToString::to_string);
    let said = String::from_utf8_lossy(stderr);
    let last: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = last[last.len().saturating_sub(2)..].join(" ");
    if tail.is_empty() {
        code
    } else {
        format!("{tail} ({code})")
    }
}

pub(crate) fn describe(error: &types::Error) -> String {
    let text = match error {
        types::Error::InvalidSettings(m) => format!("invalid settings: {m}"),
        types::Error::InvalidInput(m) => format!("invalid input: {m}"),
        types::Error::Denied(m) => format!("denied: {m}"),
        types::Error::Failed(m) => m.clone(),
    };
    crate::bounds::message(text)
}
