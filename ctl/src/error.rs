//! Failures of talking to the control plane, worded for a person: what was
//! tried, and what the server or the network said.

use thiserror::Error;
use tonic::{Code, Status};

/// The control plane could not be reached, or refused the TLS handshake.
#[derive(Debug, Error)]
#[error("cannot connect to the control plane at {server}")]
pub struct ConnectError {
    /// The URL that was tried.
    pub server: String,
    /// Where the address and credentials came from, and how to change them.
    pub hint: String,
    pub source: tonic::transport::Error,
}

/// A call the control plane refused or could not complete.
#[derive(Debug, Error)]
#[error("{call} {} ({})", verdict(*.code), words(*.code))]
pub struct RpcError {
    call: &'static str,
    code: Code,
    #[source]
    message: ServerMessage,
}

/// The server's explanation, printed beneath the error line.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct ServerMessage(String);

impl RpcError {
    /// Turns a status from the call named `call` (e.g. "apply") into an error.
    pub fn of(call: &'static str) -> impl FnOnce(Status) -> RpcError {
        move |status| RpcError {
            call,
            code: status.code(),
            message: ServerMessage(status.message().to_owned()),
        }
    }
}

/// "refused" when the server judged the request, "failed" otherwise.
fn verdict(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Aborted
        | Code::FailedPrecondition
        | Code::ResourceExhausted
        | Code::OutOfRange => "refused",
        _ => "failed",
    }
}

/// The status code in words.
fn words(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "too large",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "conflict",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by the server",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn refusal_names_the_call_and_the_code() {
        let error = RpcError::of("apply")(Status::invalid_argument("document 1: bad port"));

        assert_eq!(error.to_string(), "apply refused (invalid argument)");
        assert_eq!(error.source().unwrap().to_string(), "document 1: bad port");
    }

    #[test]
    fn server_trouble_is_a_failure() {
        let error = RpcError::of("list")(Status::unavailable("store is down"));

        assert_eq!(error.to_string(), "list failed (unavailable)");
    }
}
