//! Blob uploads: start (with monolithic and mount forms), status, chunks, completion, cancel.

use std::io;

use axum::response::{IntoResponse, Response};
use berth_app::{MountOutcome, UploadBody, UploadState};
use berth_oci::{Algorithm, ContentRange, RangeError, RepositoryName, UploadId, UploadRef};
use futures_util::TryStreamExt;
use http::{StatusCode, header};

use super::{Call, content_length, header_str, parse_digest, parse_name};
use crate::error::{ApiError, Kind};

/// The `Range` value for an upload holding `offset` bytes (`0-0` when empty, as
/// Distribution answers).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn upload_location(name: &RepositoryName, url: &UploadRef) -> String {
    format!("/v2/{name}/blobs/uploads/{url}")
}

/// A `202`/`204` answer describing where a session stands.
fn session_response(status: StatusCode, state: &UploadState) -> Response {
    let session = &state.session;
    (
        status,
        [
            (
                header::LOCATION,
                upload_location(&session.repository, &state.url),
            ),
            (header::RANGE, upload_range(session.offset)),
            (header::CONTENT_LENGTH, "0".into()),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                state.url.to_string(),
            ),
        ],
    )
        .into_response()
}

fn blob_created(name: &RepositoryName, digest: &berth_oci::Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (header::CONTENT_LENGTH, "0".into()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
        .into_response()
}

fn parse_upload_url(raw: &str) -> Result<UploadRef, ApiError> {
    UploadRef::parse(raw)
        .map_err(|_| ApiError::new(Kind::UploadUnknown, "blob upload unknown to registry"))
}

/// Reads the body and its framing headers.
fn upload_body(call: Call<'_>) -> Result<UploadBody, ApiError> {
    let content_range = header_str(&call.headers, header::CONTENT_RANGE)
        .map(|v| {
            ContentRange::parse(v).map_err(|e| match e {
                RangeError::Malformed(_) => {
                    ApiError::new(Kind::UploadInvalid, format!("invalid Content-Range: {e}"))
                }
                RangeError::Unsatisfiable => ApiError::new(
                    Kind::UploadRangeInvalid,
                    format!("Content-Range {v} ends before it starts or is longer than 2^64-1"),
                ),
            })
        })
        .transpose()?;
    Ok(UploadBody {
        content_length: content_length(&call.headers),
        content_range,
        client: call.client,
        stream: Box::pin(call.body.into_data_stream().map_err(io::Error::other)),
    })
}

/// `POST /v2/<name>/blobs/uploads/`: opens a session, or stores a whole blob
/// (`?digest=`), or mounts one from another repository (`?mount=&from=`).
pub async fn start(call: Call<'_>, name: RepositoryName) -> Result<Response, ApiError> {
    let registry = call.registry;
    if let Some(mount) = call.query.get("mount") {
        let digest = parse_digest(mount)?;
        let from = call.query.get("from").map(parse_name).transpose()?;
        let source = mount_source(call.services, &call.caller, &digest, from).await?;
        return Ok(
            match registry.mount_blob(&name, &digest, source.as_ref()).await? {
                MountOutcome::Mounted => blob_created(&name, &digest),
                MountOutcome::Started(session) => session_response(StatusCode::ACCEPTED, &session),
            },
        );
    }
    if let Some(digest) = call.query.get("digest") {
        let digest = parse_digest(digest)?;
        registry
            .upload_monolithic(&name, &digest, upload_body(call)?)
            .await?;
        return Ok(blob_created(&name, &digest));
    }
    let algorithm = match call.query.get("digest-algorithm") {
        Some(a) => {
            Algorithm::parse(a).map_err(|e| ApiError::new(Kind::DigestInvalid, e.to_string()))?
        }
        None => Algorithm::Sha256,
    };
    let session = registry.start_upload(&name, algorithm).await?;
    Ok(session_response(StatusCode::ACCEPTED, &session))
}

/// The repository a blob may be mounted from: `from` when the caller may read it;
/// without `from`, some repository holding the blob that the caller may read. Knowing
/// a digest is never enough to read another project's bytes.
async fn mount_source(
    services: &crate::Services,
    caller: &berth_app::identity::Caller,
    digest: &berth_oci::Digest,
    from: Option<RepositoryName>,
) -> Result<Option<RepositoryName>, ApiError> {
    let candidates = match from {
        Some(from) => vec![from],
        None => services.registry.blob_repositories(digest).await?,
    };
    for candidate in candidates {
        if super::gate::may_pull(services, caller, &candidate).await? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the upload stands.
pub async fn status(call: Call<'_>, name: RepositoryName, id: &str) -> Result<Response, ApiError> {
    let url = parse_upload_url(id)?;
    let state = call.registry.upload_status(&name, &url).await?;
    Ok(session_response(StatusCode::NO_CONTENT, &state))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: appends a chunk (or a stream).
pub async fn patch(call: Call<'_>, name: RepositoryName, id: &str) -> Result<Response, ApiError> {
    let url = parse_upload_url(id)?;
    let registry = call.registry;
    let result = registry.append_chunk(&name, &url, upload_body(call)?).await;
    match result {
        Ok(state) => Ok(session_response(StatusCode::ACCEPTED, &state)),
        Err(e) => Err(with_location(ApiError::from(e), &name, &url.id)),
    }
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: finishes the upload.
pub async fn complete(
    call: Call<'_>,
    name: RepositoryName,
    id: &str,
) -> Result<Response, ApiError> {
    let url = parse_upload_url(id)?;
    let registry = call.registry;
    let digest = call.query.get("digest").map(str::to_owned);
    let body = upload_body(call)?;
    let result = registry
        .complete_upload(&name, &url, digest.as_deref(), body)
        .await;
    match result {
        Ok(digest) => Ok(blob_created(&name, &digest)),
        Err(e) => Err(with_location(ApiError::from(e), &name, &url.id)),
    }
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: abandons the upload.
pub async fn cancel(call: Call<'_>, name: RepositoryName, id: &str) -> Result<Response, ApiError> {
    let url = parse_upload_url(id)?;
    call.registry.cancel_upload(&name, &url).await?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// A `416` tells the client where to resume, so it carries the session URL (of a
/// session that has a record by then).
fn with_location(err: ApiError, name: &RepositoryName, id: &UploadId) -> ApiError {
    if err.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        let url = UploadRef::recorded(id.clone());
        err.with_header(header::LOCATION, upload_location(name, &url))
            .with_header(
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_string(),
            )
    } else {
        err
    }
}
