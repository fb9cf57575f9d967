//! The runtime port's error: which call failed, in which way, and the runtime's words.

use std::fmt;

/// The ways a runtime call fails that a caller may act on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The sandbox, container or image does not exist.
    NotFound,
    /// A name the call would reserve is taken.
    AlreadyExists,
    /// The request itself is wrong; retrying will not help.
    InvalidArgument,
    /// The object is not in a state that allows the call (e.g. starting an exited container).
    FailedPrecondition,
    /// The runtime cannot be reached (not running, restarting, socket missing).
    Unavailable,
    /// No answer within the call's deadline, or a command outlived its timeout.
    DeadlineExceeded,
    /// The runtime or the node ran out of something.
    ResourceExhausted,
    PermissionDenied,
    /// The runtime does not implement the call.
    Unimplemented,
    Cancelled,
    /// Anything else the runtime reported.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::InvalidArgument => "invalid argument",
            Self::FailedPrecondition => "failed precondition",
            Self::Unavailable => "runtime unavailable",
            Self::DeadlineExceeded => "deadline exceeded",
            Self::ResourceExhausted => "resource exhausted",
            Self::PermissionDenied => "permission denied",
            Self::Unimplemented => "unimplemented",
            Self::Cancelled => "cancelled",
            Self::Internal => "runtime error",
        })
    }
}

/// A failed runtime call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {kind}: {message}")]
pub struct RuntimeError {
    /// The port call that failed, e.g. `"RunPodSandbox"`.
    pub call: &'static str,
    pub kind: ErrorKind,
    pub message: String,
}

impl RuntimeError {
    pub fn new(call: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            call,
            kind,
            message: message.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}
