//! gRPC status → the port's typed error.

use tonic::Code;
use wasmlet_core::{ErrorKind, RuntimeError};

pub(crate) fn error_kind(code: Code) -> ErrorKind {
    match code {
        Code::NotFound => ErrorKind::NotFound,
        Code::AlreadyExists => ErrorKind::AlreadyExists,
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidArgument,
        Code::FailedPrecondition | Code::Aborted => ErrorKind::FailedPrecondition,
        Code::Unavailable => ErrorKind::Unavailable,
        Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        Code::ResourceExhausted => ErrorKind::ResourceExhausted,
        Code::PermissionDenied | Code::Unauthenticated => ErrorKind::PermissionDenied,
        Code::Unimplemented => ErrorKind::Unimplemented,
        Code::Cancelled => ErrorKind::Cancelled,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorKind::Internal,
    }
}

/// containerd answers with this (code Unknown) while its CRI plugin is still
/// starting after a restart: the runtime is not there yet.
const CRI_STARTING: &str = "server is not initialized yet";

pub(crate) fn from_status(call: &'static str, status: &tonic::Status) -> RuntimeError {
    let kind = if status.message().contains(CRI_STARTING) {
        ErrorKind::Unavailable
    } else {
        error_kind(status.code())
    };
    let message = if status.message().is_empty() {
        // Transport failures carry their cause in the source chain, not the message.
        std::error::Error::source(status)
            .map_or_else(|| status.code().to_string(), |e| e.to_string())
    } else {
        status.message().to_owned()
    };
    RuntimeError::new(call, kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_a_caller_acts_on_keep_their_meaning() {
        let cases = [
            (Code::NotFound, ErrorKind::NotFound),
            (Code::AlreadyExists, ErrorKind::AlreadyExists),
            (Code::Unavailable, ErrorKind::Unavailable),
            (Code::DeadlineExceeded, ErrorKind::DeadlineExceeded),
            (Code::InvalidArgument, ErrorKind::InvalidArgument),
            (Code::FailedPrecondition, ErrorKind::FailedPrecondition),
            (Code::ResourceExhausted, ErrorKind::ResourceExhausted),
            (Code::Unimplemented, ErrorKind::Unimplemented),
        ];
        for (code, kind) in cases {
            assert_eq!(error_kind(code), kind, "{code:?}");
        }
    }

    #[test]
    fn codes_without_a_remedy_are_internal() {
        for code in [Code::Unknown, Code::Internal, Code::DataLoss] {
            assert_eq!(error_kind(code), ErrorKind::Internal, "{code:?}");
        }
    }

    #[test]
    fn a_runtime_still_starting_is_unavailable() {
        let status = tonic::Status::unknown("server is not initialized yet");
        assert_eq!(from_status("Version", &status).kind, ErrorKind::Unavailable);
    }

    #[test]
    fn error_names_the_call_and_keeps_the_runtime_message() {
        let status = tonic::Status::not_found("image \"x\" not found");
        let err = from_status("PullImage", &status);
        assert_eq!(err.call, "PullImage");
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "PullImage: not found: image \"x\" not found"
        );
    }
}
