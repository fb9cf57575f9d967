//! The plugin manifest: a small TOML file next to each `.wasm`.
//!
//! ```toml
//! kind = "admission"          # admission | probe | lifecycle | pod-source
//! wit = "0.1.0"               # the wasmlet:plugin version it was built against
//! component = "x.wasm"        # default: the manifest's name with .wasm
//! sha256 = "…"                # optional pin of the component's digest
//! failure-policy = "fail-closed"   # admission: fail-closed (default) | fail-open
//! mode = "enforce"            # enforce (default) | monitor: only log what it would deny
//!
//! [settings]                  # anything; the plugin reads it as JSON
//!
//! [capabilities]              # nothing is granted unless asked for here
//! read-dirs = ["/etc/kubernetes/manifests"]   # read-only, same path inside
//! connect = ["127.0.0.1:8080"]                # ip:port or ip (any port)
//! target-pod = true           # probe/lifecycle: connect to the pod the call is about
//! exec = true                 # probe/lifecycle: exec in the container the call is about
//!
//! [limits]
//! memory-mib = 64
//! deadline-ms = 1000
//! concurrency = 4
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::contract::Kind;
use crate::contract::WIT_VERSION;
use crate::error::{FieldError, ManifestError};

/// A kind's deadline when the manifest sets none.
fn default_deadline(kind: Kind) -> Duration {
    match kind {
        // Sources block in `changes.wait` between snapshots; the deadline
        // bounds the work of one snapshot on top of that wait.
        Kind::PodSource => Duration::from_secs(30),
        Kind::Admission | Kind::Probe | Kind::Lifecycle => Duration::from_secs(1),
    }
}

/// What an admission plugin's own failure (error, trap, deadline) means for the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// The pod is rejected (the safe default for a policy).
    #[default]
    FailClosed,
    /// The pod is admitted; the failure is logged and counted.
    FailOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    /// Decisions are logged and counted, never enforced.
    Monitor,
}

/// Capabilities a plugin asks for (in its manifest) or an operator grants.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Capabilities {
    /// Host directories, preopened read-only at the same path.
    #[serde(default)]
    pub read_dirs: Vec<PathBuf>,
    /// Where the plugin may connect: `ip:port`, or `ip` for any port.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Probe/lifecycle: may connect to the IP of the pod a call is about.
    #[serde(default)]
    pub target_pod: bool,
    /// Probe/lifecycle: may exec in the container a call is about.
    #[serde(default)]
    pub exec: bool,
    /// Pod sources: what they may list and watch of the Kubernetes API.
    #[serde(default)]
    pub kube_api: Vec<ApiAccess>,
}

/// One thing a plugin may read of the Kubernetes API: a resource, in one
/// namespace or all, with exactly this field selector (none: any).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiAccess {
    pub resource: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub field_selector: Option<String>,
}

impl ApiAccess {
    /// Whether a query of `resource` in `namespace` with `selector` is this.
    pub fn allows(&self, resource: &str, namespace: Option<&str>, selector: Option<&str>) -> bool {
        self.resource == resource
            && (self.namespace.is_none() || self.namespace.as_deref() == namespace)
            && (self.field_selector.is_none() || self.field_selector.as_deref() == selector)
    }

    /// What both allow, if they overlap.
    fn intersect(&self, other: &Self) -> Option<Self> {
        let narrower = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (None, x) | (x, None) => Some(x.clone()),
            (Some(a), Some(b)) => (a == b).then(|| Some(a.clone())),
        };
        (self.resource == other.resource).then_some(())?;
        Some(Self {
            resource: self.resource.clone(),
            namespace: narrower(&self.namespace, &other.namespace)?,
            field_selector: narrower(&self.field_selector, &other.field_selector)?,
        })
    }
}

impl Capabilities {
    /// Errors name the field: every destination parses, every directory is
    /// absolute and canonical (no `.`, `..`, `//` or trailing `/`), so that a
    /// prefix check on paths is a real containment check.
    pub fn validate(&self) -> Result<(), FieldError> {
        for dest in &self.connect {
            Destination::parse(dest).map_err(|e| FieldError::new("connect", e))?;
        }
        for dir in &self.read_dirs {
            canonical_dir(dir).map_err(|e| FieldError::new("read-dirs", e))?;
        }
        Ok(())
    }
}

/// An absolute path written the one way `Path` would print it back.
fn canonical_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::path::Component;
    if !dir.is_absolute() {
        return Err(format!("{} is not absolute", dir.display()));
    }
    let plain = dir
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let rebuilt: PathBuf = dir.components().collect();
    if !plain || rebuilt.as_os_str() != dir.as_os_str() {
        return Err(format!(
            "{} is not a canonical path (no `.`, `..`, `//` or trailing `/`)",
            dir.display()
        ));
    }
    Ok(())
}

/// An allowed destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    Host(IpAddr),
    Socket(SocketAddr),
}

impl Destination {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::Socket(addr));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Host(ip));
        }
        // Name lookups are not granted to plugins, so names are resolved
        // nowhere; only the loopback name is accepted, for local endpoints.
        match text.rsplit_once(':') {
            Some(("localhost", port)) => port
                .parse::<u16>()
                .map(|port| Self::Socket(SocketAddr::from(([127, 0, 0, 1], port))))
                .map_err(|_| format!("{text:?}: bad port")),
            _ if text == "localhost" => Ok(Self::Host(IpAddr::from([127, 0, 0, 1]))),
            _ => Err(format!(
                "{text:?}: expected ip, ip:port or localhost[:port]"
            )),
        }
    }

    pub fn allows(&self, addr: SocketAddr) -> bool {
        match self {
            Self::Host(ip) => *ip == addr.ip(),
            Self::Socket(allowed) => *allowed == addr,
        }
    }

    /// What both allow: `ip` ∩ `ip:port` is `ip:port`.
    pub fn intersect(self, other: Self) -> Option<Self> {
        match (self, other) {
            (Self::Host(a), Self::Host(b)) => (a == b).then_some(self),
            (Self::Socket(s), Self::Host(ip)) | (Self::Host(ip), Self::Socket(s)) => {
                (s.ip() == ip).then_some(Self::Socket(s))
            }
            (Self::Socket(a), Self::Socket(b)) => (a == b).then_some(self),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(ip) => write!(f, "{ip}"),
            Self::Socket(addr) => write!(f, "{addr}"),
        }
    }
}

/// What a plugin may really do: its request narrowed by the operator's grant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    pub read_dirs: Vec<PathBuf>,
    pub connect: Vec<Destination>,
    pub target_pod: bool,
    pub exec: bool,
    pub kube_api: Vec<ApiAccess>,
}

impl Grant {
    /// request ∩ operator grant (`None`: the operator did not narrow this plugin).
    pub fn effective(
        request: &Capabilities,
        operator: Option<&Capabilities>,
    ) -> Result<Self, FieldError> {
        let parse = |list: &[String]| -> Result<BTreeSet<Destination>, FieldError> {
            list.iter()
                .map(|d| Destination::parse(d).map_err(|e| FieldError::new("connect", e)))
                .collect()
        };
        let requested = parse(&request.connect)?;
        let Some(operator) = operator else {
            return Ok(Self {
                read_dirs: request.read_dirs.clone(),
                connect: requested.into_iter().collect(),
                target_pod: request.target_pod,
                exec: request.exec,
                kube_api: request.kube_api.clone(),
            });
        };
        let allowed = parse(&operator.connect)?;
        let connect: BTreeSet<Destination> = requested
            .iter()
            .flat_map(|r| allowed.iter().filter_map(|a| r.intersect(*a)))
            .collect();
        Ok(Self {
            read_dirs: request
                .read_dirs
                .iter()
                .filter(|d| operator.read_dirs.iter().any(|g| d.starts_with(g)))
                .cloned()
                .collect(),
            connect: connect.into_iter().collect(),
            target_pod: request.target_pod && operator.target_pod,
            exec: request.exec && operator.exec,
            kube_api: request
                .kube_api
                .iter()
                .flat_map(|r| operator.kube_api.iter().filter_map(|a| r.intersect(a)))
                .collect(),
        })
    }

    /// Short form for the load table, e.g. `read:/etc/m connect:127.0.0.1:80 exec`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(
            self.read_dirs
                .iter()
                .map(|d| format!("read:{}", d.display())),
        );
        parts.extend(self.connect.iter().map(|d| format!("connect:{d}")));
        if self.target_pod {
            parts.push("target-pod".into());
        }
        if self.exec {
            parts.push("exec".into());
        }
        parts.extend(self.kube_api.iter().map(|a| {
            let selector = a
                .field_selector
                .as_deref()
                .map(|s| format!("?{s}"))
                .unwrap_or_default();
            format!("kube-api:{}{selector}", a.resource)
        }));
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "Limits::default_memory_mib")]
    pub memory_mib: u32,
    pub deadline_ms: Option<u64>,
    #[serde(default = "Limits::default_concurrency")]
    pub concurrency: u32,
}

impl Limits {
    pub const MAX_MEMORY_MIB: u32 = 1024;

    fn default_memory_mib() -> u32 {
        64
    }

    fn default_concurrency() -> u32 {
        4
    }

    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mib) * 1024 * 1024
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: Self::default_memory_mib(),
            deadline_ms: None,
            concurrency: Self::default_concurrency(),
        }
    }
}

/// The most the operator lets any plugin ask for: a manifest asking more is
/// narrowed to it (with a warning), never refused, so an upgraded plugin that
/// asks for more still runs, within the node's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCaps {
    /// One admission call: the pods waiting for admission wait this long at most.
    pub admission_deadline: Duration,
    /// One pod-source snapshot (beyond its wait for a change).
    pub source_deadline: Duration,
    /// One probe or hook call (the probe's timeout or the hook's grace cut it sooner).
    pub handler_deadline: Duration,
    pub memory_mib: u32,
    pub concurrency: u32,
}

impl Default for LimitCaps {
    fn default() -> Self {
        Self {
            admission_deadline: Duration::from_secs(10),
            source_deadline: Duration::from_secs(60),
            handler_deadline: Duration::from_secs(600),
            memory_mib: 256,
            concurrency: 64,
        }
    }
}

impl LimitCaps {
    /// What is wrong with the caps, naming the field (`maxMemoryMiB`, ...).
    pub fn validate(&self) -> Result<(), FieldError> {
        let deadlines = [
            ("maxAdmissionDeadline", self.admission_deadline),
            ("maxSourceDeadline", self.source_deadline),
            ("maxHandlerDeadline", self.handler_deadline),
        ];
        for (field, value) in deadlines {
            if value < Duration::from_millis(1) {
                return Err(FieldError::new(field, "must be at least 1ms"));
            }
        }
        if self.memory_mib == 0 || self.memory_mib > Limits::MAX_MEMORY_MIB {
            return Err(FieldError::new(
                "maxMemoryMiB",
                format!(
                    "{} is outside 1..={}",
                    self.memory_mib,
                    Limits::MAX_MEMORY_MIB
                ),
            ));
        }
        if self.concurrency == 0 {
            return Err(FieldError::new("maxConcurrency", "must be at least 1"));
        }
        Ok(())
    }

    fn deadline(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Admission => self.admission_deadline,
            Kind::PodSource => self.source_deadline,
            Kind::Probe | Kind::Lifecycle => self.handler_deadline,
        }
    }
}

/// A parsed and checked manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    pub kind: Kind,
    /// The wasmlet:plugin WIT version the component was built against.
    pub wit: String,
    pub component: Option<PathBuf>,
    pub sha256: Option<String>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    #[serde(default)]
    pub mode: Mode,
    /// Free-form; the plugin reads it as JSON.
    #[serde(default = "empty_settings")]
    pub settings: serde_json::Value,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: Limits,
}

/// toml's message plus the line it is about, which names the key.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count();
            let source = text.lines().nth(line).unwrap_or_default().trim();
            format!("line {} `{source}`: {}", line + 1, e.message())
        }
        None => e.message().to_owned(),
    }
}

fn empty_settings() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Manifest {
    /// A manifest for a bare component (no file), e.g. for `wasmlet plugin run x.wasm`.
    pub fn for_component(kind: Kind, component: PathBuf, settings: serde_json::Value) -> Self {
        Self {
            kind,
            wit: WIT_VERSION.into(),
            component: Some(component),
            sha256: None,
            failure_policy: FailurePolicy::default(),
            mode: Mode::default(),
            settings,
            capabilities: Capabilities::default(),
            limits: Limits::default(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Self =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(toml_error(text, &e)))?;
        if !manifest.settings.is_object() {
            return Err(FieldError::new("settings", "must be a table").into());
        }
        if manifest.limits.memory_mib == 0 || manifest.limits.memory_mib > Limits::MAX_MEMORY_MIB {
            return Err(FieldError::new(
                "limits.memory-mib",
                format!(
                    "{} is outside 1..={}",
                    manifest.limits.memory_mib,
                    Limits::MAX_MEMORY_MIB
                ),
            )
            .into());
        }
        if manifest.limits.concurrency == 0 {
            return Err(FieldError::new("limits.concurrency", "must be at least 1").into());
        }
        if manifest.limits.deadline_ms == Some(0) {
            return Err(FieldError::new("limits.deadline-ms", "must be at least 1").into());
        }
        if let Some(pin) = &manifest.sha256
            && (pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(FieldError::new("sha256", format!("{pin:?} is not 64 hex digits")).into());
        }
        if (manifest.capabilities.exec || manifest.capabilities.target_pod)
            && !matches!(manifest.kind, Kind::Probe | Kind::Lifecycle)
        {
            return Err(FieldError::new(
                "capabilities",
                format!(
                    "exec and target-pod concern a container, which only probe and lifecycle plugins have (kind = {:?})",
                    manifest.kind.world()
                ),
            )
            .into());
        }
        if !manifest.capabilities.kube_api.is_empty() && manifest.kind != Kind::PodSource {
            return Err(FieldError::new(
                "capabilities.kube-api",
                format!(
                    "only pod sources read the Kubernetes API (kind = {:?})",
                    manifest.kind.world()
                ),
            )
            .into());
        }
        manifest
            .capabilities
            .validate()
            .map_err(|e| e.within("capabilities"))?;
        Ok(manifest)
    }

    pub fn deadline(&self) -> Duration {
        self.limits
            .deadline_ms
            .map_or_else(|| default_deadline(self.kind), Duration::from_millis)
    }

    /// Narrows the limits to the operator's caps; says what it narrowed.
    pub fn cap(&mut self, caps: &LimitCaps) -> Vec<String> {
        let mut narrowed = Vec::new();
        let max = caps.deadline(self.kind);
        if self.deadline() > max {
            narrowed.push(format!("deadline {:?} capped to {max:?}", self.deadline()));
            self.limits.deadline_ms =
                Some(u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        if self.limits.memory_mib > caps.memory_mib {
            narrowed.push(format!(
                "memory {} MiB capped to {} MiB",
                self.limits.memory_mib, caps.memory_mib
            ));
            self.limits.memory_mib = caps.memory_mib;
        }
        if self.limits.concurrency > caps.concurrency {
            narrowed.push(format!(
                "concurrency {} capped to {}",
                self.limits.concurrency, caps.concurrency
            ));
            self.limits.concurrency = caps.concurrency;
        }
        narrowed
    }

    /// The settings as the JSON text the plugin reads.
    pub fn settings_json(&self) -> String {
        serde_json::to_string(&self.settings).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_manifest_gets_safe_defaults() {
        let m = Manifest::parse("kind = \"admission\"\nwit = \"0.1.0\"").expect("valid");
        assert_eq!(m.kind, Kind::Admission);
        assert_eq!(m.failure_policy, FailurePolicy::FailClosed);
        assert_eq!(m.mode, Mode::Enforce);
        assert_eq!(m.capabilities, Capabilities::default());
        assert_eq!(m.limits.memory_mib, 64);
        assert_eq!(m.deadline(), Duration::from_secs(1));
        assert_eq!(m.settings_json(), "{}");
    }

    #[test]
    fn operator_caps_narrow_what_a_manifest_asks_for() {
        let mut m = Manifest::parse(
            "kind = \"admission\"\nwit = \"0.1.0\"\n[limits]\ndeadline-ms = 120000\nmemory-mib = 512\nconcurrency = 100\n",
        )
        .expect("valid");
        let narrowed = m.cap(&LimitCaps::default());
        assert_eq!(narrowed.len(), 3, "{narrowed:?}");
        assert_eq!(m.deadline(), Duration::from_secs(10));
        assert_eq!(m.limits.memory_mib, 256);
        assert_eq!(m.limits.concurrency, 64);
        // Within the caps: untouched. A probe may take its timeout, up to 10m.
        let mut probe =
            Manifest::parse("kind = \"probe\"\nwit = \"0.1.0\"\n[limits]\ndeadline-ms = 600000\n")
                .expect("valid");
        assert!(probe.cap(&LimitCaps::default()).is_empty());
        assert_eq!(probe.deadline(), Duration::from_secs(600));
        let zero = LimitCaps {
            concurrency: 0,
            ..LimitCaps::default()
        };
        assert_eq!(zero.validate().expect_err("zero").field, "maxConcurrency");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("kind = \"admision\"\nwit = \"0.1.0\"", "admision"),
            ("kind = \"admission\"", "wit"),
            (
                "kind = \"admission\"\nwit = \"0.1.0\"\n[limits]\nmemory-mib = 0",
                "limits.memory-mib",
            ),
            ("kind = \"admission\"\nwit = 3", "line 2 `wit = 3`"),
            (
                "kind = \"admission\"\nwit = \"0.1.0\"\nsha256 = \"abc\"",
                "sha256",
            ),
            (
                "kind = \"admission\"\nwit = \"0.1.0\"\n[capabilities]\nexec = true",
                "exec",
            ),
            (
                "kind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\nconnect = [\"example.com\"]",
                "capabilities.connect",
            ),
            (
                "kind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\nread-dirs = [\"etc\"]",
                "read-dirs",
            ),
            (
                "kind = \"probe\"\nwit = \"0.1.0\"\n[capabilities]\nnetwork = true",
                "network",
            ),
        ];
        for (text, field) in cases {
            let err = Manifest::parse(text).expect_err(text);
            assert!(err.to_string().contains(field), "{text:?} → {err:?}");
        }
    }

    #[test]
    fn settings_become_json() {
        let m = Manifest::parse(
            "kind = \"admission\"\nwit = \"0.1.0\"\n[settings]\nlabels = [\"team\"]\nmax = 3",
        )
        .expect("valid");
        let json: serde_json::Value = serde_json::from_str(&m.settings_json()).expect("json");
        assert_eq!(json, serde_json::json!({"labels": ["team"], "max": 3}));
    }

    #[test]
    fn effective_grant_is_the_intersection() {
        let request = Capabilities {
            read_dirs: vec!["/etc/kubernetes/manifests".into(), "/var/secret".into()],
            connect: vec!["127.0.0.1:8080".into(), "10.0.0.1".into()],
            target_pod: true,
            exec: true,
            kube_api: vec![ApiAccess {
                resource: "pods".into(),
                namespace: None,
                field_selector: Some("spec.nodeName=n1".into()),
            }],
        };
        let all = Grant::effective(&request, None).expect("valid");
        assert_eq!(all.read_dirs.len(), 2);
        assert_eq!(all.connect.len(), 2);
        assert!(all.exec && all.target_pod);

        let operator = Capabilities {
            read_dirs: vec!["/etc/kubernetes".into()],
            connect: vec!["127.0.0.1:8080".into(), "127.0.0.1:9090".into()],
            target_pod: true,
            exec: false,
            // Any selector on pods covers the request's; secrets were not asked for.
            kube_api: vec![
                ApiAccess {
                    resource: "pods".into(),
                    namespace: None,
                    field_selector: None,
                },
                ApiAccess {
                    resource: "secrets".into(),
                    namespace: None,
                    field_selector: None,
                },
            ],
        };
        let narrowed = Grant::effective(&request, Some(&operator)).expect("valid");
        assert_eq!(
            narrowed.read_dirs,
            vec![PathBuf::from("/etc/kubernetes/manifests")]
        );
        assert_eq!(
            narrowed.connect,
            vec![Destination::parse("127.0.0.1:8080").expect("valid")]
        );
        assert!(narrowed.target_pod);
        assert!(!narrowed.exec, "the operator did not grant exec");
        assert_eq!(narrowed.kube_api, request.kube_api);
        let pods = &narrowed.kube_api[0];
        assert!(pods.allows("pods", None, Some("spec.nodeName=n1")));
        assert!(
            !pods.allows("pods", None, Some("spec.nodeName=n2")),
            "another node's pods"
        );
        assert!(!pods.allows("pods", None, None), "every pod");
        assert!(!pods.allows("secrets", None, Some("spec.nodeName=n1")));
    }

    #[test]
    fn grants_narrow_ip_to_ip_port_and_refuse_non_canonical_paths() {
        let request = Capabilities {
            connect: vec!["10.0.0.1".into(), "10.0.0.2:80".into()],
            ..Default::default()
        };
        let operator = Capabilities {
            connect: vec!["10.0.0.1:443".into(), "10.0.0.2".into(), "10.0.0.3".into()],
            ..Default::default()
        };
        let narrowed = Grant::effective(&request, Some(&operator)).expect("valid");
        let socket = |s: &str| Destination::Socket(s.parse().expect("addr"));
        assert_eq!(
            narrowed.connect,
            vec![socket("10.0.0.1:443"), socket("10.0.0.2:80")]
        );
        for bad in ["/etc/../root", "/etc/./m", "/etc//m", "/etc/m/", "etc"] {
            let caps = Capabilities {
                read_dirs: vec![bad.into()],
                ..Default::default()
            };
            let err = caps.validate().expect_err(bad);
            assert_eq!(err.field, "read-dirs", "{bad}: {err}");
        }
        let fine = Capabilities {
            read_dirs: vec!["/etc/kubernetes/manifests".into(), "/".into()],
            ..Default::default()
        };
        assert_eq!(fine.validate(), Ok(()));
    }

    #[test]
    fn destinations_match_ip_or_exact_socket() {
        let host = Destination::parse("10.1.2.3").expect("ip");
        assert!(host.allows("10.1.2.3:80".parse().expect("addr")));
        assert!(!host.allows("10.1.2.4:80".parse().expect("addr")));
        let socket = Destination::parse("localhost:8080").expect("localhost");
        assert!(socket.allows("127.0.0.1:8080".parse().expect("addr")));
        assert!(!socket.allows("127.0.0.1:8081".parse().expect("addr")));
    }
}
