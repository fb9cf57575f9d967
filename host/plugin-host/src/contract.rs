//! The contract between a component and this host: which wasmlet:plugin
//! version and world a component was built for, read from its type alone.

use serde::Deserialize;
use wasmtime::component::Component;

/// The WIT package version this host implements. Components built against any
/// `0.1.x` are compatible (for 0.x, the minor version is the breaking one).
pub const WIT_VERSION: &str = "0.1.0";
const WIT_PACKAGE: &str = "wasmlet:plugin";

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

/// Checks a component against its manifest's `wit` and `kind`; Ok: the
/// wasmlet:plugin version it was built against.
pub(crate) fn check_contract(
    facts: &ComponentFacts,
    wit: &str,
    kind: Kind,
) -> Result<String, String> {
    if !wit_compatible(wit) {
        return Err(format!(
            "manifest says wit = {:?}; this agent speaks {WIT_PACKAGE}@{WIT_VERSION} (compatible: {})",
            wit,
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
        Some(built) if built != kind => Err(format!(
            "built for the `{}` world, but its manifest says kind = {:?}",
            built.world(),
            kind.world()
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

/// The plugin kinds, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Admission,
    Probe,
    Lifecycle,
    PodSource,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Admission,
        Kind::Probe,
        Kind::Lifecycle,
        Kind::PodSource,
    ];

    /// The WIT world's name.
    pub fn world(self) -> &'static str {
        match self {
            Self::Admission => "admission",
            Self::Probe => "probe",
            Self::Lifecycle => "lifecycle",
            Self::PodSource => "pod-source",
        }
    }

    /// The interface the world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            Self::Admission => "admission-handler",
            Self::Probe => "probe-handler",
            Self::Lifecycle => "lifecycle-handler",
            Self::PodSource => "pod-source-handler",
        }
    }

    pub fn from_world(world: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.world() == world)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}
