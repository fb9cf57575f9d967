//! A loaded plugin: what it is, and which of its kind's exports it has.

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use crate::bindings::{admission_handler, lifecycle_handler, pod_source_handler, probe_handler};
use crate::capability::HostContext;
use crate::contract::Kind;
use crate::engine::PluginEngine;
use crate::error::{CallError, Failure};
use crate::manifest::{Grant, Manifest};
use crate::metrics::PluginMetrics;
use crate::slots::FairSlots;
use crate::state::{CallState, PluginIdentity};

/// Where in the component each kind's export lives, resolved once at load.
#[derive(Clone)]
pub(crate) enum Exports {
    Admission(admission_handler::GuestIndices),
    Probe(probe_handler::GuestIndices),
    Lifecycle(lifecycle_handler::GuestIndices),
    PodSource(pod_source_handler::GuestIndices),
}

/// The export indices of one plugin kind: how a call finds its guest
/// functions, and the one place a call is checked against the plugin's kind.
pub(crate) trait KindExports: Sized + Send + 'static {
    const KIND: Kind;
    /// The guest's functions in one instance.
    type Guest: Send;
    fn of(exports: &Exports) -> Option<Self>;
    fn guest(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<Self::Guest>;
}

macro_rules! kind_exports {
    ($handler:ident, $variant:ident) => {
        impl KindExports for $handler::GuestIndices {
            const KIND: Kind = Kind::$variant;
            type Guest = $handler::Guest;
            fn of(exports: &Exports) -> Option<Self> {
                match exports {
                    Exports::$variant(indices) => Some(indices.clone()),
                    _ => None,
                }
            }
            fn guest(
                &self,
                store: &mut Store<CallState>,
                instance: &Instance,
            ) -> wasmtime::Result<Self::Guest> {
                self.load(store, instance)
            }
        }
    };
}

kind_exports!(admission_handler, Admission);
kind_exports!(probe_handler, Probe);
kind_exports!(lifecycle_handler, Lifecycle);
kind_exports!(pod_source_handler, PodSource);

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
    pub(crate) slots: FairSlots,
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

impl Plugin {
    pub fn kind(&self) -> Kind {
        self.manifest.kind
    }

    /// How many calls hold one of the plugin's concurrency slots right now.
    pub fn busy_slots(&self) -> usize {
        self.slots.busy()
    }

    /// The plugin's exports for `call`, if it is of the kind that makes it.
    pub(crate) fn exports_for<E: KindExports>(&self, call: &'static str) -> Result<E, CallError> {
        E::of(&self.exports).ok_or_else(|| CallError {
            plugin: self.name.clone(),
            call,
            failure: Failure::BadOutput(format!(
                "is a {} plugin, not a {} plugin",
                self.manifest.kind,
                E::KIND
            )),
        })
    }
}
