//! `/projects/{project}/repositories` and `/repositories`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::Artifacts;
use berth_meta::{RepositoryField, RepositoryInfo};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::paged;
use super::params::repository_param;
use super::query::{Fields, Kind, list_query};
use super::{body, json};
use crate::time_format::rfc3339;

const FIELDS: Fields<RepositoryField> = &[
    ("name", RepositoryField::Name, Kind::Text),
    ("creation_time", RepositoryField::CreationTime, Kind::Time),
    ("update_time", RepositoryField::UpdateTime, Kind::Time),
    ("pull_count", RepositoryField::PullCount, Kind::Integer),
    ("id", RepositoryField::Id, Kind::Integer),
];

/// The use cases.
pub fn artifacts(ctx: &Ctx) -> Artifacts {
    Artifacts::new(ctx.services.identity.clone(), ctx.services.registry.clone())
}

/// Harbor's `Repository`.
pub fn repository_json(r: &RepositoryInfo) -> Value {
    json!({
        "id": r.id,
        "project_id": r.project_id,
        "name": r.name.as_str(),
        "description": r.description,
        "artifact_count": r.artifact_count,
        "pull_count": r.pull_count,
        "creation_time": rfc3339(r.created_at),
        "update_time": rfc3339(r.updated_at),
    })
}

/// `GET /projects/{project_name}/repositories`
pub async fn list(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let (query, page) = list_query(&ctx.params, FIELDS)?;
    let listed = artifacts(&ctx)
        .repositories(&ctx.who, &project, &query)
        .await?;
    let items: Vec<Value> = listed.items.iter().map(repository_json).collect();
    let path = format!("/api/v2.0/projects/{project}/repositories");
    Ok(paged(&items, listed.total, page, &path, &ctx.params))
}

/// `GET /repositories`: every repository the caller may read.
pub async fn list_all(ctx: Ctx) -> Result<Response, HarborError> {
    let (query, page) = list_query(&ctx.params, FIELDS)?;
    let listed = artifacts(&ctx).all_repositories(&ctx.who, &query).await?;
    let items: Vec<Value> = listed.items.iter().map(repository_json).collect();
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/repositories",
        &ctx.params,
    ))
}

/// `GET /projects/{project_name}/repositories/{repository_name}`
pub async fn get(
    ctx: Ctx,
    Path((project, name)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let repository = artifacts(&ctx)
        .repository(&ctx.who, &project, &name)
        .await?;
    Ok(json(&repository_json(&repository)))
}

#[derive(Deserialize, Default)]
struct RepositoryReq {
    #[serde(default)]
    description: String,
}

/// `PUT /projects/{project_name}/repositories/{repository_name}`: the description.
pub async fn update(
    ctx: Ctx,
    Path((project, name)): Path<(String, String)>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let req: RepositoryReq = body(&raw)?;
    artifacts(&ctx)
        .describe(&ctx.who, &project, &name, &req.description)
        .await?;
    Ok(().into_response())
}

/// `DELETE /projects/{project_name}/repositories/{repository_name}`
pub async fn delete(
    ctx: Ctx,
    Path((project, name)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    artifacts(&ctx)
        .delete_repository(&ctx.who, &project, &name)
        .await?;
    Ok(().into_response())
}
