//! `/projects/{project}/metadatas`: a project's settings one key at a time.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_authz::Action;

use super::context::Ctx;
use super::error::HarborError;
use super::projects::projects;
use super::{body, json};

/// Reads a body of metadata keys, each a string (Harbor stores them as strings).
fn values(raw: &[u8]) -> Result<BTreeMap<String, String>, HarborError> {
    body(raw)
}

/// `GET /projects/{project}/metadatas/`
pub async fn list(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let metadata = projects(&ctx)
        .metadata(&ctx.who, &project, ctx.by_name)
        .await?;
    Ok(json(&metadata))
}

/// `POST /projects/{project}/metadatas/`
pub async fn add(
    ctx: Ctx,
    Path(project): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    projects(&ctx)
        .set_metadata(
            &ctx.who,
            &project,
            ctx.by_name,
            values(&raw)?,
            Action::Create,
        )
        .await?;
    Ok(().into_response())
}

/// `GET /projects/{project}/metadatas/{meta_name}`
pub async fn get(
    ctx: Ctx,
    Path((project, key)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    let metadata = projects(&ctx)
        .metadata(&ctx.who, &project, ctx.by_name)
        .await?;
    let value = metadata
        .get(&key)
        .ok_or_else(|| HarborError::not_found(format!("metadata {key} not found")))?;
    Ok(json(&BTreeMap::from([(key.clone(), value.clone())])))
}

/// `PUT /projects/{project}/metadatas/{meta_name}`: the body names that key only.
pub async fn update(
    ctx: Ctx,
    Path((project, key)): Path<(String, String)>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let values = values(&raw)?;
    if values.len() != 1 || !values.contains_key(&key) {
        return Err(HarborError::bad_request(format!(
            "the body must set {key:?} and nothing else"
        )));
    }
    projects(&ctx)
        .set_metadata(&ctx.who, &project, ctx.by_name, values, Action::Update)
        .await?;
    Ok(().into_response())
}

/// `DELETE /projects/{project}/metadatas/{meta_name}`
pub async fn delete(
    ctx: Ctx,
    Path((project, key)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    projects(&ctx)
        .delete_metadata(&ctx.who, &project, ctx.by_name, &key)
        .await?;
    Ok(().into_response())
}
