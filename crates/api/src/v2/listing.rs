//! Listings: the catalog, tags and referrers.

use axum::response::{IntoResponse, Response};
use berth_app::{Registry, TagList};
use berth_oci::RepositoryName;
use http::header;
use serde::Serialize;

use super::{Call, parse_digest};
use crate::error::{ApiError, Kind};
use crate::held_body::held_body;

/// Parses `n`: a non-negative integer (values above the maximum are clamped later).
fn page_size(call: &Call<'_>) -> Result<Option<u32>, ApiError> {
    call.query
        .get("n")
        .map(|n| {
            n.parse::<u64>()
                .map(|v| v.min(u64::from(u32::MAX)) as u32)
                .map_err(|_| {
                    ApiError::new(Kind::PageSizeInvalid, format!("invalid page size n={n:?}"))
                })
        })
        .transpose()
}

/// Sends a listing, holding its room in the buffer budget, with
/// `Link: <path?last=..&n=..>; rel="next"` when more names follow.
///
/// The room is set aside before the body is written: names need no escaping in JSON
/// (their grammars allow no quote, backslash or control character), so each takes its
/// length plus its quotes and comma.
async fn paged(
    registry: &Registry,
    list: &TagList,
    path: &str,
    serialize: impl FnOnce(&[String]) -> Vec<u8>,
) -> Result<Response, ApiError> {
    let names = list.page.names();
    let estimate = names.iter().map(|n| n.len() + 3).sum::<usize>() + path.len() + 64;
    let mut permit = registry.reserve_buffer(estimate).await?;
    let body = serialize(names);
    permit.shrink_to(body.len());
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        held_body(body.into(), permit),
    )
        .into_response();
    if let (Some(n), Some(last)) = (list.next_page, list.page.names().last()) {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("last", last)
            .append_pair("n", &n.to_string())
            .finish();
        let link = format!("<{path}?{query}>; rel=\"next\"");
        if let Ok(v) = link.parse() {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(response)
}

#[derive(Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

#[derive(Serialize)]
struct Tags<'a> {
    name: &'a str,
    tags: &'a [String],
}

/// `GET /v2/_catalog?n=&last=`
pub async fn catalog(call: Call<'_>) -> Result<Response, ApiError> {
    let n = page_size(&call)?;
    let visibility = call
        .services
        .identity
        .access
        .catalog_visibility(&call.caller)
        .await
        .map_err(|e| ApiError::new(crate::error::Kind::Internal, e.to_string()))?;
    let list = call
        .registry
        .catalog(&visibility, call.query.get("last"), n)
        .await?;
    paged(call.registry, &list, "/v2/_catalog", |repositories| {
        serde_json::to_vec(&Catalog { repositories }).expect("serializable")
    })
    .await
}

/// `GET /v2/<name>/tags/list?n=&last=`
pub async fn tags(call: Call<'_>, name: RepositoryName) -> Result<Response, ApiError> {
    let n = page_size(&call)?;
    let list = call.registry.tags(&name, call.query.get("last"), n).await?;
    let path = format!("/v2/{name}/tags/list");
    paged(call.registry, &list, &path, |tags| {
        serde_json::to_vec(&Tags {
            name: name.as_str(),
            tags,
        })
        .expect("serializable")
    })
    .await
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=&last=`
///
/// Answers one page, in digest order, of at most `max_referrers` descriptors; when more
/// follow, `Link: <…?last=<digest>>; rel="next"` names the next page, as the spec asks
/// when the list "cannot be returned in a single manifest". `last` is the previous page's
/// last digest; the filter is carried over to the next page.
pub async fn referrers(
    call: Call<'_>,
    name: RepositoryName,
    digest: &str,
) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    let artifact_type = call.query.get("artifactType");
    let after = call.query.get("last").map(parse_digest).transpose()?;
    let page = call
        .registry
        .referrers(&name, &digest, artifact_type, after.as_ref())
        .await?;
    let mut response = (
        [(header::CONTENT_TYPE, berth_oci::media_type::OCI_INDEX)],
        held_body(page.index, page.permit),
    )
        .into_response();
    if artifact_type.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            http::HeaderValue::from_static("artifactType"),
        );
    }
    if let Some(last) = page.next_after {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(t) = artifact_type {
            query.append_pair("artifactType", t);
        }
        query.append_pair("last", last.as_str());
        let link = format!(
            "</v2/{name}/referrers/{digest}?{}>; rel=\"next\"",
            query.finish()
        );
        if let Ok(v) = link.parse() {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(response)
}
