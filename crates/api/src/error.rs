//! The one table from error kinds to HTTP status and OCI error code, and the error body.

use axum::response::{IntoResponse, Response};
use berth_app::RegistryError;
use berth_oci::Digest;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use serde::Serialize;

/// An error response: status, OCI error code, message, optional detail and headers.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// Builds an error with `code` and the status the table gives it.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: status_of(code),
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Overrides the status (e.g. 413 for an oversized manifest, 416 for ranges).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a `detail` object.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The status this error is sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The status of each error code (distribution-spec codes, plus Distribution's
/// `RANGE_INVALID`, `PAGINATION_NUMBER_INVALID`, `UNAVAILABLE` and `UNKNOWN`).
fn status_of(code: &str) -> StatusCode {
    match code {
        "BLOB_UNKNOWN" | "BLOB_UPLOAD_UNKNOWN" | "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" => {
            StatusCode::NOT_FOUND
        }
        "BLOB_UPLOAD_INVALID"
        | "DIGEST_INVALID"
        | "MANIFEST_BLOB_UNKNOWN"
        | "MANIFEST_INVALID"
        | "NAME_INVALID"
        | "SIZE_INVALID"
        | "PAGINATION_NUMBER_INVALID" => StatusCode::BAD_REQUEST,
        "RANGE_INVALID" => StatusCode::RANGE_NOT_SATISFIABLE,
        "UNAUTHORIZED" => StatusCode::UNAUTHORIZED,
        "DENIED" => StatusCode::FORBIDDEN,
        "UNSUPPORTED" => StatusCode::METHOD_NOT_ALLOWED,
        "TOOMANYREQUESTS" => StatusCode::TOO_MANY_REQUESTS,
        "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::BlobUnknown => ApiError::new("BLOB_UNKNOWN", message),
            RegistryError::BlobUploadUnknown => ApiError::new("BLOB_UPLOAD_UNKNOWN", message),
            RegistryError::BlobUploadInvalid(_) => ApiError::new("BLOB_UPLOAD_INVALID", message),
            RegistryError::DigestInvalid(_) => ApiError::new("DIGEST_INVALID", message),
            RegistryError::ManifestBlobUnknown(d) => {
                ApiError::new("MANIFEST_BLOB_UNKNOWN", message)
                    .with_detail(serde_json::json!({ "digest": d.as_str() }))
            }
            RegistryError::ManifestInvalid(_) => ApiError::new("MANIFEST_INVALID", message),
            RegistryError::ManifestUnknown => ApiError::new("MANIFEST_UNKNOWN", message),
            RegistryError::NameUnknown => ApiError::new("NAME_UNKNOWN", message),
            RegistryError::SizeInvalid(_) => ApiError::new("SIZE_INVALID", message),
            RegistryError::UploadRangeInvalid { offset } => ApiError::new("RANGE_INVALID", message)
                .with_header(header::RANGE, crate::v2::upload_range(offset)),
            RegistryError::ReadRangeInvalid { size } => ApiError::new("RANGE_INVALID", message)
                .with_header(header::CONTENT_RANGE, format!("bytes */{size}")),
            RegistryError::TooLarge(_) => {
                ApiError::new("SIZE_INVALID", message).with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            RegistryError::BlobReferenced { digest, referrer } => {
                referenced(message, &digest, &referrer, "GET, HEAD")
            }
            RegistryError::ManifestReferenced { digest, referrer } => {
                referenced(message, &digest, &referrer, "GET, HEAD, PUT")
            }
            RegistryError::Unsupported(_) => ApiError::new("UNSUPPORTED", message),
            RegistryError::Internal(_) => ApiError::new("UNKNOWN", message),
        }
    }
}

/// A DELETE of content a manifest still references. 409 would be the plain HTTP answer
/// (GitLab's registry sends it with a code of its own; Harbor's API answers 412), but the
/// spec allows only 400, 404 and 405 on these DELETEs, and 405 is its answer for a delete that is not allowed; the
/// spec code for it is UNSUPPORTED (zot sends 405 with DENIED, which clients present as
/// missing permissions). The detail names the manifest to delete first.
fn referenced(message: String, digest: &Digest, referrer: &Digest, allow: &str) -> ApiError {
    ApiError::new("UNSUPPORTED", message)
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail(serde_json::json!({
            "digest": digest.as_str(),
            "referencedBy": referrer.as_str(),
        }))
        .with_header(header::ALLOW, allow)
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, error = %self.message, "request failed");
        }
        let body = serde_json::to_vec(&Body {
            errors: [Entry {
                code: self.code,
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        })
        .unwrap_or_default();
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
