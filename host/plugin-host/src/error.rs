//! What can go wrong with a plugin, always naming the plugin.

use std::path::PathBuf;
use std::time::Duration;

/// Errors name the field the way Kubernetes' do, with one type for the host
/// and the plugins.
pub use wasmlet_rules::FieldError;

/// What is wrong with a plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not UTF-8 TOML of the manifest's shape; toml's message names the line.
    #[error("{0}")]
    Syntax(String),
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The agent could not fit it to its own config (e.g. a built-in
    /// source's directory could not be created).
    #[error("{0}")]
    Configure(String),
}

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The call ran past its deadline and was cut.
    Deadline(Duration),
    /// No slot of the plugin's came free within this wait: the call never ran.
    Busy(Duration),
    /// The guest grew its memory (or tables) past the plugin's cap.
    MemoryLimit { limit_bytes: u64 },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    Trap(String),
    /// The guest used a capability it was not granted, then failed.
    DeniedCapability(String),
    /// The guest answered with something the host cannot use.
    BadOutput(String),
    /// The plugin reported an expected failure (`result::err` in WIT).
    Plugin(String),
}

impl Failure {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Deadline(_) => "deadline",
            Self::Busy(_) => "busy",
            Self::MemoryLimit { .. } => "memory",
            Self::Trap(_) => "trap",
            Self::DeniedCapability(_) => "denied",
            Self::BadOutput(_) => "bad_output",
            Self::Plugin(_) => "plugin_error",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deadline(d) => write!(f, "deadline of {d:?} exceeded"),
            Self::Busy(d) => write!(f, "did not run: every slot was busy for {d:?}"),
            Self::MemoryLimit { limit_bytes } => {
                write!(
                    f,
                    "memory limit exceeded ({} MiB)",
                    limit_bytes / (1024 * 1024)
                )
            }
            Self::Trap(msg) => write!(f, "trapped: {msg}"),
            Self::DeniedCapability(what) => write!(f, "denied capability: {what}"),
            Self::BadOutput(msg) => write!(f, "bad output: {msg}"),
            Self::Plugin(msg) => write!(f, "{msg}"),
        }
    }
}

/// A failed plugin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin}: {call}: {failure}")]
pub struct CallError {
    pub plugin: String,
    /// The exported function, e.g. `admit`.
    pub call: &'static str,
    pub failure: Failure,
}

/// Why a plugin was not loaded. The other plugins of the directory still load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("{path}: sha256 is {actual}, but the manifest pins {pinned}")]
    Digest {
        path: PathBuf,
        pinned: String,
        actual: String,
    },
    #[error("{path}: not a WebAssembly component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Contract { path: PathBuf, message: String },
    /// (The call's error is in the message, not the source chain, so that
    /// a report of the chain says it once.)
    #[error("{path}: rejected its settings: {error}")]
    Settings { path: PathBuf, error: CallError },
}
