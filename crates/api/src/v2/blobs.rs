//! Blob reads and deletes.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use berth_app::BlobReply;
use berth_oci::{RangeRequest, RepositoryName};
use http::{Method, StatusCode, header};

use super::{Call, header_str, parse_digest};
use crate::error::{ApiError, Kind};
use crate::held_body::held_stream;

/// `GET`/`HEAD /v2/<name>/blobs/<digest>`, with `Range` support on `GET`.
pub async fn get(call: Call<'_>, name: RepositoryName, digest: &str) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    let digest_header = (
        header::HeaderName::from_static("docker-content-digest"),
        digest.to_string(),
    );
    if call.method == Method::HEAD {
        let size = call.registry.blob_size(&name, &digest).await?;
        return Ok((
            [
                (header::CONTENT_LENGTH, size.to_string()),
                (header::CONTENT_TYPE, "application/octet-stream".into()),
                (header::ACCEPT_RANGES, "bytes".into()),
                digest_header,
            ],
            Body::empty(),
        )
            .into_response());
    }
    // A malformed or multi-range header is ignored and the whole blob is sent.
    let range = header_str(&call.headers, header::RANGE).and_then(|r| RangeRequest::parse(r).ok());
    let content = match call.registry.read_blob(&name, &digest, range).await? {
        BlobReply::Content(content) => content,
        BlobReply::Redirect(url) => return redirect(&url, digest_header),
    };
    let mut response = Response::new(held_stream(content.read.body, content.permit));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, content.read.len.into());
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    headers.insert(
        digest_header.0,
        digest_header.1.parse().expect("digests are header-safe"),
    );
    if let Some(r) = content.range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{}", r.start, r.end, content.size);
        response
            .headers_mut()
            .insert(header::CONTENT_RANGE, value.parse().expect("ascii"));
    }
    Ok(response)
}

/// `307 Temporary Redirect` to `url`, where the client fetches the blob (and any range
/// of it) itself.
fn redirect(url: &str, digest_header: (header::HeaderName, String)) -> Result<Response, ApiError> {
    let location = header::HeaderValue::from_str(url).map_err(|e| {
        ApiError::new(
            Kind::Internal,
            format!("presigned URL is no header value: {e}"),
        )
    })?;
    Ok((
        StatusCode::TEMPORARY_REDIRECT,
        [
            (header::LOCATION, location),
            (
                header::CONTENT_LENGTH,
                header::HeaderValue::from_static("0"),
            ),
            (
                digest_header.0,
                digest_header.1.parse().expect("digests are header-safe"),
            ),
        ],
    )
        .into_response())
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository.
pub async fn delete(
    call: Call<'_>,
    name: RepositoryName,
    digest: &str,
) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    call.registry
        .delete_blob(&name, &digest, &call.actor())
        .await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
