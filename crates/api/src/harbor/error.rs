//! Harbor's error answers: `{"errors":[{"code","message"}]}` with Harbor's codes.

use axum::response::{IntoResponse, Response};
use berth_app::manage::ManageError;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

/// An error answer of the Harbor API.
#[derive(Debug)]
pub struct HarborError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl HarborError {
    /// An error with `status` (its Harbor code follows from it).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HarborError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `400 BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// `401 UNAUTHORIZED`.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized")
    }

    /// `429` for a client that failed to log in too often.
    pub fn throttled(retry_after_secs: u64) -> Self {
        HarborError {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins; retry in {retry_after_secs} s"),
            )
        }
    }

    /// `500`, logged.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }

    /// Harbor's code for a status.
    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::PRECONDITION_FAILED => "PRECONDITION",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::TOO_MANY_REQUESTS => "TOO_MANY_REQUESTS",
            _ => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl From<ManageError> for HarborError {
    fn from(e: ManageError) -> Self {
        let status = match &e {
            ManageError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ManageError::Forbidden(_) => StatusCode::FORBIDDEN,
            ManageError::NotFound(_) => StatusCode::NOT_FOUND,
            ManageError::Conflict(_) => StatusCode::CONFLICT,
            ManageError::Invalid(_) => StatusCode::BAD_REQUEST,
            ManageError::Precondition(_) => StatusCode::PRECONDITION_FAILED,
            ManageError::Meta(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HarborError::new(status, e.to_string())
    }
}

impl From<berth_meta::MetaError> for HarborError {
    fn from(e: berth_meta::MetaError) -> Self {
        HarborError::internal(e)
    }
}

impl IntoResponse for HarborError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(error = %self.message, "management request failed");
        }
        let body = json!({ "errors": [{ "code": self.code(), "message": self.message }] });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
