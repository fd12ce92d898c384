//! The admin API's errors, and the one place they become gRPC statuses.

use tonic::{Code, Status};

use crate::audit::Outcome;
use crate::identity::error::IdentityError;
use crate::store::StoreError;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{identity} lacks permission {permission}")]
    Denied {
        identity: String,
        permission: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    TooLarge(String),
    /// The call does not fit the state things are in.
    #[error("{0}")]
    Precondition(String),
    /// A failure whose detail belongs in the log only.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IdentityError> for AdminError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Unauthenticated(e) => AdminError::Unauthenticated(e),
            IdentityError::Denied(e) | IdentityError::Precondition(e) => {
                AdminError::Precondition(e)
            }
            IdentityError::Invalid(e) => AdminError::Invalid(e),
            IdentityError::NotFound(e) => AdminError::NotFound(e),
            IdentityError::TooLarge(e) => AdminError::TooLarge(e),
            IdentityError::Internal(e) => AdminError::Internal(e),
            IdentityError::Store(e) => AdminError::Store(e),
        }
    }
}

impl AdminError {
    /// How the audit log records this failure.
    pub fn outcome(&self) -> Outcome {
        match self {
            AdminError::Unauthenticated(_) => Outcome::Unauthenticated,
            AdminError::Denied { .. } => Outcome::Denied,
            AdminError::Invalid(_)
            | AdminError::TooLarge(_)
            | AdminError::InUse(_)
            | AdminError::Precondition(_) => Outcome::Invalid,
            AdminError::NotFound(_) => Outcome::Invalid,
            AdminError::Conflict(_) => Outcome::Conflict,
            AdminError::Store(_) | AdminError::Internal(_) => Outcome::Error,
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        let code = match &error {
            AdminError::Unauthenticated(_) => Code::Unauthenticated,
            AdminError::Denied { .. } => Code::PermissionDenied,
            AdminError::Invalid(_) => Code::InvalidArgument,
            AdminError::NotFound(_) => Code::NotFound,
            AdminError::Conflict(_) => Code::Aborted,
            AdminError::InUse(_) | AdminError::Precondition(_) => Code::FailedPrecondition,
            AdminError::Internal(_) => Code::Internal,
            AdminError::TooLarge(_) => Code::ResourceExhausted,
            AdminError::Store(StoreError::Conflict { .. }) => Code::Aborted,
            AdminError::Store(StoreError::Failed(_)) => Code::Unavailable,
            AdminError::Store(_) => Code::Internal,
        };
        if let AdminError::Store(store) = &error {
            tracing::error!(error = %store, "admin call failed in the store");
            if code == Code::Internal {
                return Status::internal("the control plane's store failed; see its log");
            }
        }
        if let AdminError::Internal(detail) = &error {
            tracing::error!(error = %detail, "admin call failed");
            return Status::internal("the control plane failed; see its log");
        }
        Status::new(code, error.to_string())
    }
}
