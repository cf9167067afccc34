//! Manifest reads, pushes and deletes.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use berth_oci::{Reference, ReferenceError, RepositoryName};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};

use bytes::BytesMut;
use futures_util::StreamExt;

use super::{Call, content_length, header_str};
use crate::error::{ApiError, Kind};
use crate::held_body::held_body;

fn parse_reference(raw: &str, for_push: bool) -> Result<Reference, ApiError> {
    Reference::parse(raw).map_err(|e| match e {
        ReferenceError::Digest(e) => ApiError::new(Kind::DigestInvalid, e.to_string()),
        ReferenceError::Tag(e) if for_push => ApiError::new(Kind::ManifestInvalid, e.to_string()),
        ReferenceError::Tag(_) => ApiError::new(Kind::ManifestUnknown, "manifest unknown"),
    })
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>`: serves the manifest exactly as pushed,
/// with the media type it was pushed with, whatever the `Accept` header says.
pub async fn get(
    call: Call<'_>,
    name: RepositoryName,
    reference: &str,
) -> Result<Response, ApiError> {
    let reference = parse_reference(reference, false)?;
    let head = call.method == Method::HEAD;
    let (manifest, body) = if head {
        let manifest = call.registry.stat_manifest(&name, &reference).await?;
        (manifest, Body::empty())
    } else {
        let (manifest, held) = call.registry.get_manifest(&name, &reference).await?;
        if call.registry.config().audit_pulls {
            call.registry.audit_pull(&name, &reference, &call.actor());
        }
        let body = held_body(held.content().clone(), held);
        (manifest, body)
    };
    let len = manifest.size;
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        manifest.media_type.parse().map_err(|_| {
            ApiError::new(Kind::Internal, "stored media type is not a valid header")
        })?,
    );
    headers.insert(header::CONTENT_LENGTH, len.into());
    let digest = manifest.digest.as_str();
    let mut etag = Vec::with_capacity(digest.len() + 2);
    etag.push(b'"');
    etag.extend_from_slice(digest.as_bytes());
    etag.push(b'"');
    headers.insert(
        DOCKER_CONTENT_DIGEST,
        digest.parse().expect("digests are header-safe"),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::try_from(etag).expect("digests are header-safe"),
    );
    Ok(response)
}

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

/// Room a manifest body of unknown length starts with.
const FIRST_ROOM: usize = 64 << 10;

/// `PUT /v2/<name>/manifests/<reference>`: validates and commits a manifest.
pub async fn put(
    call: Call<'_>,
    name: RepositoryName,
    reference: &str,
) -> Result<Response, ApiError> {
    let reference = parse_reference(reference, true)?;
    let limit = call.registry.config().max_manifest_bytes;
    let too_large = || {
        ApiError::new(
            Kind::TooLarge,
            format!("manifest exceeds the {limit}-byte limit"),
        )
    };
    if content_length(&call.headers).is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let content_type = header_str(&call.headers, header::CONTENT_TYPE).map(str::to_owned);
    let actor = call.actor();
    // Room for what the client declared, or for what arrives as it arrives: a body that
    // trickles holds only what it sent.
    let declared = content_length(&call.headers).map_or(0, |len| len as usize);
    let mut room = call
        .registry
        .manifest_body_room(call.client, declared.max(FIRST_ROOM))
        .await?;
    let mut body = BytesMut::with_capacity(declared);
    let mut frames = call.body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                Kind::ManifestInvalid,
                format!("reading the manifest failed: {e}"),
            )
        })?;
        if (body.len() + frame.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&frame);
        room.grow_to(body.capacity()).await?;
    }
    let body = body.freeze();
    let pushed = call
        .registry
        .put_manifest(&name, &reference, content_type.as_deref(), body, &actor)
        .await?;
    let mut response = (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                format!("/v2/{name}/manifests/{}", pushed.digest),
            ),
            (header::CONTENT_LENGTH, "0".into()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                pushed.digest.to_string(),
            ),
        ],
    )
        .into_response();
    if let Some(subject) = pushed.subject {
        response.headers_mut().insert(
            "oci-subject",
            subject.as_str().parse().expect("digests are header-safe"),
        );
    }
    Ok(response)
}

/// `DELETE /v2/<name>/manifests/<reference>`: deletes by digest, untags by tag.
pub async fn delete(
    call: Call<'_>,
    name: RepositoryName,
    reference: &str,
) -> Result<Response, ApiError> {
    let reference = parse_reference(reference, false)?;
    call.registry
        .delete_manifest(&name, &reference, &call.actor())
        .await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
