//! `/labels`: global and project labels; and
//! `…/artifacts/{reference}/labels`: the labels an artifact carries.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{LabelDraft, LabelFilter, Labels};
use berth_meta::{Label, LabelField};
use serde::Deserialize;
use serde_json::{Value, json};

use super::artifacts::reference;
use super::context::Ctx;
use super::error::HarborError;
use super::paging::paged;
use super::params::repository_param;
use super::query::{Fields, Kind, list_query};
use super::{body, created, json, null_as_default};
use crate::time_format::rfc3339;

const FIELDS: Fields<LabelField> = &[
    ("name", LabelField::Name, Kind::Text),
    ("description", LabelField::Description, Kind::Text),
    ("color", LabelField::Color, Kind::Text),
    ("scope", LabelField::Scope, Kind::Text),
    ("project_id", LabelField::ProjectId, Kind::Integer),
    ("creation_time", LabelField::CreationTime, Kind::Time),
    ("update_time", LabelField::UpdateTime, Kind::Time),
    ("id", LabelField::Id, Kind::Integer),
];

fn labels(ctx: &Ctx) -> Labels {
    Labels::new(ctx.services.identity.clone())
}

/// Harbor's `Label`; a global label's `project_id` is 0.
pub fn label_json(label: &Label) -> Value {
    json!({
        "id": label.id,
        "name": label.name,
        "description": label.description,
        "color": label.color,
        "scope": label.scope.letter(),
        "project_id": label.scope.project_id().unwrap_or(0),
        "creation_time": rfc3339(label.created_at),
        "update_time": rfc3339(label.updated_at),
    })
}

/// A `Label` body; fields it does not set are empty, as Harbor reads them.
#[derive(Deserialize, Default)]
struct LabelReq {
    #[serde(default, deserialize_with = "null_as_default")]
    id: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    description: String,
    #[serde(default, deserialize_with = "null_as_default")]
    color: String,
    #[serde(default, deserialize_with = "null_as_default")]
    scope: String,
    #[serde(default, deserialize_with = "null_as_default")]
    project_id: i64,
}

impl LabelReq {
    fn into_draft(self) -> LabelDraft {
        LabelDraft {
            name: self.name,
            description: self.description,
            color: self.color,
            scope: self.scope,
            project_id: self.project_id,
        }
    }
}

/// A label id from a path.
fn label_id(raw: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .map_err(|_| HarborError::bad_request("label_id must be an integer"))
}

/// `GET /labels` with `scope` (`g` or `p`), `project_id` (for `p`), `name`, `q`,
/// `sort` and paging.
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    let (query, page) = list_query(&ctx.params, FIELDS)?;
    let filter = LabelFilter {
        scope: ctx.params.get("scope").unwrap_or_default().to_owned(),
        project_id: ctx.params.integer("project_id")?,
        name: ctx.params.get("name").map(str::to_owned),
    };
    let listed = labels(&ctx).list(&ctx.who, &filter, query).await?;
    let items: Vec<Value> = listed.items.iter().map(label_json).collect();
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/labels",
        &ctx.params,
    ))
}

/// `POST /labels`: `201` with the new label's `Location`.
pub async fn create(ctx: Ctx, raw: Bytes) -> Result<Response, HarborError> {
    let req: LabelReq = body(&raw)?;
    let id = labels(&ctx).create(&ctx.who, req.into_draft()).await?;
    Ok(created(format!("/api/v2.0/labels/{id}")))
}

/// `GET /labels/{label_id}`
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    let label = labels(&ctx).get(&ctx.who, label_id(&id)?).await?;
    Ok(json(&label_json(&label)))
}

/// `PUT /labels/{label_id}`: sets name, description and colour.
pub async fn update(ctx: Ctx, Path(id): Path<String>, raw: Bytes) -> Result<Response, HarborError> {
    let req: LabelReq = body(&raw)?;
    labels(&ctx)
        .update(&ctx.who, label_id(&id)?, req.into_draft())
        .await?;
    Ok(().into_response())
}

/// `DELETE /labels/{label_id}`
pub async fn delete(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    labels(&ctx).delete(&ctx.who, label_id(&id)?).await?;
    Ok(().into_response())
}

/// `POST …/artifacts/{reference}/labels` with `{"id": N}`.
pub async fn add_to_artifact(
    ctx: Ctx,
    Path((project, name, r)): Path<(String, String, String)>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let req: LabelReq = body(&raw)?;
    labels(&ctx)
        .add_to_artifact(&ctx.who, &project, &name, &reference(&r)?, req.id)
        .await?;
    Ok(().into_response())
}

/// `DELETE …/artifacts/{reference}/labels/{label_id}`
pub async fn remove_from_artifact(
    ctx: Ctx,
    Path((project, name, r, id)): Path<(String, String, String, String)>,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    labels(&ctx)
        .remove_from_artifact(&ctx.who, &project, &name, &reference(&r)?, label_id(&id)?)
        .await?;
    Ok(().into_response())
}
