//! Why a management operation failed.

use berth_meta::{MemberError, MetaError, ProjectError, RobotError, UserError};

/// Why a management operation failed; the API maps each to its status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManageError {
    /// No credentials, where some are needed.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (or the caller may not know it does).
    #[error("{0}")]
    NotFound(String),
    /// It would clash with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The resource is not in a state that allows it.
    #[error("{0}")]
    Precondition(String),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl From<UserError> for ManageError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Meta(e) => ManageError::Meta(e),
            other => ManageError::Conflict(other.to_string()),
        }
    }
}

impl From<ProjectError> for ManageError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::Meta(e) => ManageError::Meta(e),
            ProjectError::NameTaken(_) => ManageError::Conflict(e.to_string()),
            ProjectError::NotEmpty(_) => ManageError::Precondition(e.to_string()),
        }
    }
}

impl From<MemberError> for ManageError {
    fn from(e: MemberError) -> Self {
        match e {
            MemberError::Meta(e) => ManageError::Meta(e),
            MemberError::AlreadyMember => ManageError::Conflict(e.to_string()),
            MemberError::UnknownRole(_) | MemberError::UnknownEntity => {
                ManageError::Invalid(e.to_string())
            }
        }
    }
}

impl From<RobotError> for ManageError {
    fn from(e: RobotError) -> Self {
        match e {
            RobotError::Meta(e) => ManageError::Meta(e),
            RobotError::NameTaken(_) => ManageError::Conflict(e.to_string()),
        }
    }
}
