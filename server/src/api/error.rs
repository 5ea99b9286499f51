//! The one error type of REST handlers, answered as Braze does: `{"message": "...", "errors": [...]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::DomainError;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// 401: no key, an unknown or revoked key.
    Unauthorized(String),
    /// 403: the key may not do this (permission, address, workspace).
    Forbidden(String),
    NotFound,
    /// 400 with the list of problems.
    BadRequest {
        message: String,
        errors: Vec<String>,
    },
    /// 409: the change was based on a version that is no longer current (the management API's
    /// `version`), so it was not saved.
    Conflict(String),
    RateLimited,
    Internal,
}

impl ApiError {
    /// A 400 "Bad Request" with one problem, named by its field.
    pub fn bad_request(problem: impl Into<String>) -> Self {
        Self::BadRequest {
            message: "Bad Request".into(),
            errors: vec![problem.into()],
        }
    }

    pub fn missing_permission(permission: &str) -> Self {
        Self::Forbidden(format!(
            "Access Denied: this API key lacks the “{permission}” permission"
        ))
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid { .. } => Self::BadRequest {
                message: "Bad Request".into(),
                errors: vec![error.to_string()],
            },
            DomainError::Conflict { .. } => Self::Conflict(error.to_string()),
            DomainError::NotFound(_) => Self::NotFound,
            DomainError::Forbidden(message) => Self::Forbidden(message),
            DomainError::BadCredentials => Self::Unauthorized("Invalid credentials".into()),
            DomainError::Throttled { .. } => Self::RateLimited,
            DomainError::Db(e) => {
                tracing::error!(error = %e, "database error in the REST API");
                Self::Internal
            }
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        DomainError::Db(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Unauthorized(message) => {
                (StatusCode::UNAUTHORIZED, json!({ "message": message }))
            }
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, json!({ "message": message })),
            Self::NotFound => (StatusCode::NOT_FOUND, json!({ "message": "Not Found" })),
            Self::BadRequest { message, errors } => (
                StatusCode::BAD_REQUEST,
                json!({ "message": message, "errors": errors }),
            ),
            Self::Conflict(problem) => (
                StatusCode::CONFLICT,
                json!({ "message": "Conflict", "errors": [problem] }),
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "message": "Rate Limited" }),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "message": "Internal Server Error" }),
            ),
        };
        (status, Json(body)).into_response()
    }
}
