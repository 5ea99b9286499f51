//! The one error type of the domain. Every variant carries a message fit to show a person.

use sea_orm::DbErr;

/// What went wrong in a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A value was rejected; `field` names the input it came from.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The value would clash with an existing one.
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    /// Nothing by that id, or nothing the caller may see (both look the same on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Wrong email or password.
    #[error("wrong email or password")]
    BadCredentials,
    /// Too many attempts; try again after this many seconds.
    #[error("too many failed sign-ins: try again in {} minute(s)", retry_after_secs.div_ceil(60))]
    Throttled { retry_after_secs: u64 },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            field,
            message: message.into(),
        }
    }

    /// The input field this error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } | Self::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
