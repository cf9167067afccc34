//! The one table from failure kinds to HTTP status and OCI error code, and the error body.
//!
//! Handlers and the application say *why* a request failed ([`Kind`]); only
//! [`Kind::answer`] decides the status and the code it is sent with.

use axum::response::{IntoResponse, Response};
use berth_app::RegistryError;
use berth_oci::Digest;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use serde::Serialize;

/// The error codes of the distribution spec ("The `code` field MUST be one of the
/// following"): exactly its 14, the only codes a 4xx body carries.
///
/// A 5xx body carries `UNKNOWN` instead, as CNCF Distribution does: the spec's list
/// governs 4xx answers, and none of the 14 describes a failure of the registry itself.
/// `UNKNOWN` is therefore no variant here; only [`Kind::Internal`] is sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `BLOB_UNKNOWN`: blob unknown to registry.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry.
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name.
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry.
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied.
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests.
    TooManyRequests,
}

impl Code {
    /// Every code, in the spec's order.
    #[cfg(test)]
    const ALL: [Code; 14] = [
        Code::BlobUnknown,
        Code::BlobUploadInvalid,
        Code::BlobUploadUnknown,
        Code::DigestInvalid,
        Code::ManifestBlobUnknown,
        Code::ManifestInvalid,
        Code::ManifestUnknown,
        Code::NameInvalid,
        Code::NameUnknown,
        Code::SizeInvalid,
        Code::Unauthorized,
        Code::Denied,
        Code::Unsupported,
        Code::TooManyRequests,
    ];

    /// The code as it appears in an error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
        }
    }
}

/// The code of every 5xx body (see [`Code`]).
const SERVER_ERROR_CODE: &str = "UNKNOWN";

/// Why a request failed. Handlers and [`RegistryError`] name a kind; [`Kind::answer`]
/// gives each its status and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The `/v2/` path names no endpoint.
    EndpointUnknown,
    /// The endpoint exists, but not for this method (sent with `Allow`).
    MethodNotAllowed,
    /// A repository name breaks the spec's grammar.
    NameInvalid,
    /// The repository does not exist.
    NameUnknown,
    /// A digest is malformed, of an unsupported algorithm, or does not match the content.
    DigestInvalid,
    /// The blob is not in the repository.
    BlobUnknown,
    /// A blob read's `Range` lies outside the blob (sent with `Content-Range: bytes */size`).
    ReadRangeInvalid,
    /// The upload session does not exist, or belongs to another repository.
    UploadUnknown,
    /// An upload request is malformed (e.g. its `Content-Range` breaks the grammar).
    UploadInvalid,
    /// An upload chunk does not start where the session stands, or its `Content-Range`
    /// cannot be satisfied (sent with the session's `Range`).
    UploadRangeInvalid,
    /// A length does not match what was declared.
    SizeInvalid,
    /// A blob or manifest exceeds its configured limit.
    TooLarge,
    /// A manifest is refused as a document.
    ManifestInvalid,
    /// The manifest (or tag) is not in the repository.
    ManifestUnknown,
    /// A manifest references a blob or child manifest that is not in the repository.
    ManifestBlobUnknown,
    /// A listing's `n` is not a non-negative integer.
    PageSizeInvalid,
    /// A limit on work in progress is reached; the client may retry (sent with
    /// `Retry-After`).
    Overloaded,
    /// The operation is not supported here.
    Unsupported,
    /// No credentials, or credentials that are not valid, or a token that does not
    /// grant the operation (sent with a `WWW-Authenticate` challenge).
    Unauthorized,
    /// Valid credentials that are not allowed the operation.
    Denied,
    /// An immutability rule protects a tag the request would move or delete.
    TagImmutable,
    /// The registry failed; the client did nothing wrong.
    Internal,
}

impl Kind {
    /// Every kind, for checking the table.
    #[cfg(test)]
    const ALL: [Kind; 22] = [
        Kind::EndpointUnknown,
        Kind::MethodNotAllowed,
        Kind::NameInvalid,
        Kind::NameUnknown,
        Kind::DigestInvalid,
        Kind::BlobUnknown,
        Kind::ReadRangeInvalid,
        Kind::UploadUnknown,
        Kind::UploadInvalid,
        Kind::UploadRangeInvalid,
        Kind::SizeInvalid,
        Kind::TooLarge,
        Kind::ManifestInvalid,
        Kind::ManifestUnknown,
        Kind::ManifestBlobUnknown,
        Kind::PageSizeInvalid,
        Kind::Overloaded,
        Kind::Unsupported,
        Kind::Unauthorized,
        Kind::Denied,
        Kind::TagImmutable,
        Kind::Internal,
    ];

    /// The one table: the status and the OCI code (none for a server error, whose body
    /// says `UNKNOWN`) each kind is sent with.
    pub fn answer(self) -> (StatusCode, Option<Code>) {
        use StatusCode as S;
        let (status, code) = match self {
            // Distribution answers an unknown route with 404; of the 14 codes, "repository
            // name not known" is the one that fits a path naming no endpoint.
            Kind::EndpointUnknown => (S::NOT_FOUND, Code::NameUnknown),
            Kind::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, Code::Unsupported),
            Kind::NameInvalid => (S::BAD_REQUEST, Code::NameInvalid),
            Kind::NameUnknown => (S::NOT_FOUND, Code::NameUnknown),
            Kind::DigestInvalid => (S::BAD_REQUEST, Code::DigestInvalid),
            Kind::BlobUnknown => (S::NOT_FOUND, Code::BlobUnknown),
            // The spec names no code for an unsatisfiable blob `Range`; Distribution's
            // RANGE_INVALID is not one of the 14. The range asks for offsets past the
            // blob's length, which is what SIZE_INVALID is about.
            Kind::ReadRangeInvalid => (S::RANGE_NOT_SATISFIABLE, Code::SizeInvalid),
            Kind::UploadUnknown => (S::NOT_FOUND, Code::BlobUploadUnknown),
            Kind::UploadInvalid => (S::BAD_REQUEST, Code::BlobUploadInvalid),
            // "If a chunk is uploaded out of order, the registry MUST respond with a 416":
            // the status is the spec's, the chunk is an invalid part of a blob upload.
            Kind::UploadRangeInvalid => (S::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid),
            Kind::SizeInvalid => (S::BAD_REQUEST, Code::SizeInvalid),
            Kind::TooLarge => (S::PAYLOAD_TOO_LARGE, Code::SizeInvalid),
            Kind::ManifestInvalid => (S::BAD_REQUEST, Code::ManifestInvalid),
            Kind::ManifestUnknown => (S::NOT_FOUND, Code::ManifestUnknown),
            Kind::ManifestBlobUnknown => (S::BAD_REQUEST, Code::ManifestBlobUnknown),
            // Distribution's PAGINATION_NUMBER_INVALID is not one of the 14. `n` is a number
            // the client sent about how much to return, and SIZE_INVALID is the spec's code
            // for a number that is wrong; UNSUPPORTED would say listing itself is.
            Kind::PageSizeInvalid => (S::BAD_REQUEST, Code::SizeInvalid),
            Kind::Overloaded => (S::TOO_MANY_REQUESTS, Code::TooManyRequests),
            Kind::Unsupported => (S::METHOD_NOT_ALLOWED, Code::Unsupported),
            Kind::Unauthorized => (S::UNAUTHORIZED, Code::Unauthorized),
            Kind::Denied => (S::FORBIDDEN, Code::Denied),
            // Harbor refuses these with 412 (its own code PRECONDITION, not one of the 14);
            // of the spec's codes, DENIED says the request may not be done to the resource.
            Kind::TagImmutable => (S::PRECONDITION_FAILED, Code::Denied),
            Kind::Internal => return (S::INTERNAL_SERVER_ERROR, None),
        };
        (status, Some(code))
    }
}

/// An error response: why it failed, a message, optional detail and headers.
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An error of `kind`, sent with the status and code the table gives it.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
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
        self.kind.answer().0
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::BlobUnknown => ApiError::new(Kind::BlobUnknown, message),
            RegistryError::BlobUploadUnknown => ApiError::new(Kind::UploadUnknown, message),
            RegistryError::BlobUploadInvalid(_) => ApiError::new(Kind::UploadInvalid, message),
            RegistryError::DigestInvalid(_) => ApiError::new(Kind::DigestInvalid, message),
            RegistryError::ManifestBlobUnknown(d) => {
                ApiError::new(Kind::ManifestBlobUnknown, message)
                    .with_detail(serde_json::json!({ "digest": d.as_str() }))
            }
            RegistryError::ManifestInvalid(_) => ApiError::new(Kind::ManifestInvalid, message),
            RegistryError::ManifestUnknown => ApiError::new(Kind::ManifestUnknown, message),
            RegistryError::NameUnknown => ApiError::new(Kind::NameUnknown, message),
            RegistryError::SizeInvalid(_) => ApiError::new(Kind::SizeInvalid, message),
            RegistryError::UploadRangeInvalid { offset } => {
                ApiError::new(Kind::UploadRangeInvalid, message)
                    .with_header(header::RANGE, crate::v2::upload_range(offset))
            }
            RegistryError::ReadRangeInvalid { size } => {
                ApiError::new(Kind::ReadRangeInvalid, message)
                    .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
            }
            RegistryError::TooLarge(_) => ApiError::new(Kind::TooLarge, message),
            RegistryError::UploadLost => ApiError::new(Kind::UploadInvalid, message),
            RegistryError::TooManyRequests(_) => {
                ApiError::new(Kind::Overloaded, message).with_header(header::RETRY_AFTER, "1")
            }
            RegistryError::BlobReferenced { digest, referrer } => {
                referenced(message, &digest, &referrer, "GET, HEAD")
            }
            RegistryError::ManifestReferenced { digest, referrer } => {
                referenced(message, &digest, &referrer, "GET, HEAD, PUT")
            }
            RegistryError::TagImmutable(_) => ApiError::new(Kind::TagImmutable, message),
            RegistryError::QuotaExceeded(_) => ApiError::new(Kind::Denied, message),
            RegistryError::Unsupported(_) => ApiError::new(Kind::Unsupported, message),
            RegistryError::Internal(_) => ApiError::new(Kind::Internal, message),
        }
    }
}

/// A DELETE of content a manifest still references. 409 would be the plain HTTP answer
/// (GitLab's registry sends it with a code of its own; Harbor's API answers 412), but the
/// spec allows only 400, 404 and 405 on these DELETEs, and 405 is its answer for a delete that is not allowed; the
/// spec code for it is UNSUPPORTED (zot sends 405 with DENIED, which clients present as
/// missing permissions). The detail names the manifest to delete first.
fn referenced(message: String, digest: &Digest, referrer: &Digest, allow: &str) -> ApiError {
    ApiError::new(Kind::Unsupported, message)
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
        let (status, code) = self.kind.answer();
        if status.is_server_error() {
            tracing::error!(kind = ?self.kind, error = %self.message, "request failed");
        }
        let body = serde_json::to_vec(&Body {
            errors: [Entry {
                code: code.map_or(SERVER_ERROR_CODE, Code::as_str),
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        })
        .unwrap_or_default();
        let mut response = (
            status,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_spec_fourteen() {
        let spec = "BLOB_UNKNOWN BLOB_UPLOAD_INVALID BLOB_UPLOAD_UNKNOWN DIGEST_INVALID \
                    MANIFEST_BLOB_UNKNOWN MANIFEST_INVALID MANIFEST_UNKNOWN NAME_INVALID \
                    NAME_UNKNOWN SIZE_INVALID UNAUTHORIZED DENIED UNSUPPORTED TOOMANYREQUESTS";
        let ours: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(ours, spec.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn client_errors_have_a_spec_code_and_server_errors_none() {
        for kind in Kind::ALL {
            let (status, code) = kind.answer();
            assert!(
                status.is_client_error() == code.is_some()
                    && (status.is_client_error() || status.is_server_error()),
                "{kind:?}: {status} {code:?}"
            );
        }
    }
}
