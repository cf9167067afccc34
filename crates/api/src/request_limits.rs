//! Refuses oversized request lines and header sections before any handler runs.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Longest request target (path and query) accepted.
pub const MAX_URI_BYTES: usize = 8 << 10;
/// Largest header section accepted.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// `414` for a target over [`MAX_URI_BYTES`], `431` for headers over
/// [`MAX_HEADER_BYTES`], with the connection closed so a client cannot keep it busy;
/// `None` for a request within both.
pub fn refusal(req: &Request) -> Option<Response> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some(refuse(StatusCode::URI_TOO_LONG));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
    None
}

fn refuse(status: StatusCode) -> Response {
    (status, [(http::header::CONNECTION, "close")]).into_response()
}
