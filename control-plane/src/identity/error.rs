//! The identity API's errors, and the one place they become gRPC statuses.

use tonic::{Code, Status};

use super::keyset::KeySetError;
use super::records::RecordError;
use super::revocation::RevocationError;
use crate::audit::Outcome;
use crate::store::StoreError;

/// Why an identity call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No certificate, or one that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller asking for what it may not have.
    #[error("{0}")]
    Denied(String),
    /// A request that is wrong in itself: a bad CSR, a missing field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// A rotation step that does not fit the keys' states now.
    #[error("{0}")]
    Precondition(String),
    /// Signing failed; the detail goes to the log, not to the caller.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdentityError {
    /// How the audit log records this failure.
    pub fn outcome(&self) -> Outcome {
        match self {
            IdentityError::Unauthenticated(_) => Outcome::Unauthenticated,
            IdentityError::Denied(_) => Outcome::Denied,
            IdentityError::Invalid(_)
            | IdentityError::NotFound(_)
            | IdentityError::TooLarge(_)
            | IdentityError::Precondition(_) => Outcome::Invalid,
            IdentityError::Internal(_) | IdentityError::Store(_) => Outcome::Error,
        }
    }
}

impl From<RecordError> for IdentityError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Store(store) => IdentityError::Store(store),
            other => IdentityError::Internal(other.to_string()),
        }
    }
}

impl From<RevocationError> for IdentityError {
    fn from(error: RevocationError) -> Self {
        match error {
            RevocationError::AlreadyRevoked { .. } | RevocationError::Raced(_) => {
                IdentityError::Precondition(error.to_string())
            }
            RevocationError::UnknownNode(_) => IdentityError::NotFound(error.to_string()),
            RevocationError::Record(record) => record.into(),
            RevocationError::Store(store) => IdentityError::Store(store),
        }
    }
}

impl From<KeySetError> for IdentityError {
    fn from(error: KeySetError) -> Self {
        match error {
            KeySetError::NotFound { .. } => IdentityError::NotFound(error.to_string()),
            KeySetError::Record(record) => record.into(),
            KeySetError::Store(store) => IdentityError::Store(store),
            other => IdentityError::Precondition(other.to_string()),
        }
    }
}

impl From<IdentityError> for Status {
    fn from(error: IdentityError) -> Self {
        let code = match &error {
            IdentityError::Unauthenticated(_) => Code::Unauthenticated,
            IdentityError::Denied(_) => Code::PermissionDenied,
            IdentityError::Invalid(_) => Code::InvalidArgument,
            IdentityError::NotFound(_) => Code::NotFound,
            IdentityError::TooLarge(_) => Code::ResourceExhausted,
            IdentityError::Precondition(_) => Code::FailedPrecondition,
            IdentityError::Store(StoreError::Conflict { .. }) => Code::Aborted,
            IdentityError::Store(StoreError::Failed(_)) => Code::Unavailable,
            IdentityError::Internal(_) | IdentityError::Store(_) => Code::Internal,
        };
        if code == Code::Internal {
            tracing::error!(%error, "identity call failed");
            return Status::internal("the control plane failed to issue; see its log");
        }
        Status::new(code, error.to_string())
    }
}
