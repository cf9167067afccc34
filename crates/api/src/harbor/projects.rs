//! `/projects`: projects and their settings.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{ProjectDraft, ProjectRequest, Projects, Quotas};
use berth_meta::{FieldFilter, Match, Project, ProjectField};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::paged;
use super::query::{Fields, Kind, list_query};
use super::{body, created, json, null_as_default};
use crate::time_format::rfc3339;

const FIELDS: Fields<ProjectField> = &[
    ("name", ProjectField::Name, Kind::Text),
    ("public", ProjectField::Public, Kind::Boolean),
    ("owner", ProjectField::Owner, Kind::Text),
    ("project_id", ProjectField::Id, Kind::Integer),
    ("creation_time", ProjectField::CreationTime, Kind::Time),
    ("update_time", ProjectField::UpdateTime, Kind::Time),
];

/// The use cases.
pub fn projects(ctx: &Ctx) -> Projects {
    Projects::new(ctx.services.identity.clone())
}

/// Harbor's `Project`, with the caller's roles in it.
pub async fn project_json(ctx: &Ctx, project: &Project) -> Result<Value, HarborError> {
    let roles = projects(ctx).roles_of(&ctx.who, project.id).await?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("public".into(), json!(project.public.to_string()));
    for (k, v) in &project.metadata {
        metadata.insert(k.clone(), json!(v));
    }
    Ok(json!({
        "project_id": project.id,
        "owner_id": project.owner_id.unwrap_or(0),
        "name": project.name,
        "creation_time": rfc3339(project.created_at),
        "update_time": rfc3339(project.updated_at),
        "deleted": false,
        "owner_name": project.owner_name,
        "togglable": true,
        "current_user_role_id": roles.first().copied().unwrap_or(0),
        "current_user_role_ids": roles,
        "repo_count": project.repo_count,
        "metadata": metadata,
        "cve_allowlist": {
            "id": 0,
            "project_id": project.id,
            "items": [],
            "creation_time": rfc3339(project.created_at),
            "update_time": rfc3339(project.updated_at),
        },
    }))
}

/// `GET /projects` with `name`, `public`, `owner`, `q`, `sort` and paging.
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    let (mut query, page) = list_query(&ctx.params, FIELDS)?;
    if let Some(name) = ctx.params.get("name") {
        query.filters.push(FieldFilter {
            field: ProjectField::Name,
            matching: Match::Fuzzy(name.to_owned()),
        });
    }
    if let Some(public) = ctx.params.boolean("public")? {
        query.filters.push(FieldFilter {
            field: ProjectField::Public,
            matching: Match::Exact(if public { "1" } else { "0" }.into()),
        });
    }
    if let Some(owner) = ctx.params.get("owner") {
        query.filters.push(FieldFilter {
            field: ProjectField::Owner,
            matching: Match::Exact(owner.to_owned()),
        });
    }
    let listed = projects(&ctx).list(&ctx.who, &query).await?;
    let mut items = Vec::with_capacity(listed.items.len());
    for project in &listed.items {
        items.push(project_json(&ctx, project).await?);
    }
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/projects",
        &ctx.params,
    ))
}

#[derive(Deserialize, Default)]
struct ProjectReq {
    #[serde(default, deserialize_with = "null_as_default")]
    project_name: String,
    public: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    metadata: BTreeMap<String, String>,
    /// Bytes, `-1` for no limit; absent or null: the `storage_per_project` setting.
    storage_limit: Option<i64>,
}

/// `POST /projects`: `Location` names the new project by id, or by name when the
/// client asks with `X-Resource-Name-In-Location: true`.
pub async fn create(ctx: Ctx, headers: HeaderMap, raw: Bytes) -> Result<Response, HarborError> {
    let req: ProjectReq = body(&raw)?;
    let name_in_location = headers
        .get("x-resource-name-in-location")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let name = req.project_name.clone();
    let id = projects(&ctx)
        .create(
            &ctx.who,
            ProjectRequest {
                name: req.project_name,
                public: req.public,
                metadata: req.metadata,
                owner: None,
                storage_limit: req.storage_limit,
            },
        )
        .await?;
    Ok(created(if name_in_location {
        format!("/api/v2.0/projects/{name}")
    } else {
        format!("/api/v2.0/projects/{id}")
    }))
}

/// `HEAD /projects?project_name=`: 200 when it exists, 404 otherwise.
pub async fn head(ctx: Ctx) -> Result<Response, HarborError> {
    let name = ctx
        .params
        .get("project_name")
        .ok_or_else(|| HarborError::bad_request("project_name is required"))?;
    Ok(if projects(&ctx).exists(&ctx.who, name).await? {
        StatusCode::OK.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    })
}

/// `GET /projects/{project_name_or_id}`
pub async fn get(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let found = projects(&ctx).get(&ctx.who, &project, ctx.by_name).await?;
    Ok(json(&project_json(&ctx, &found).await?))
}

/// `PUT /projects/{project_name_or_id}`: visibility and metadata.
pub async fn update(
    ctx: Ctx,
    Path(project): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let req: ProjectReq = body(&raw)?;
    projects(&ctx)
        .update(
            &ctx.who,
            &project,
            ctx.by_name,
            ProjectDraft {
                public: req.public,
                metadata: req.metadata,
            },
        )
        .await?;
    Ok(().into_response())
}

/// `DELETE /projects/{project_name_or_id}`: only when empty.
pub async fn delete(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    projects(&ctx)
        .delete(&ctx.who, &project, ctx.by_name)
        .await?;
    Ok(().into_response())
}

/// `GET /projects/{project_name_or_id}/_deletable`
pub async fn deletable(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let found = projects(&ctx)
        .with_permission(
            &ctx.who,
            &project,
            ctx.by_name,
            berth_authz::Resource::Project,
            berth_authz::Action::Delete,
        )
        .await?;
    let (deletable, message) = if found.repo_count == 0 {
        (true, String::new())
    } else {
        (
            false,
            format!("the project holds {} repositories", found.repo_count),
        )
    };
    Ok(json(&json!({ "deletable": deletable, "message": message })))
}

/// `GET /projects/{project_name_or_id}/summary`
pub async fn summary(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let summary = projects(&ctx)
        .summary(&ctx.who, &project, ctx.by_name)
        .await?;
    let count = |role: i64| summary.members_by_role.get(&role).copied().unwrap_or(0);
    let mut body = json!({
        "repo_count": summary.repo_count,
        "project_admin_count": count(berth_authz::ROLE_PROJECT_ADMIN),
        "maintainer_count": count(berth_authz::ROLE_MAINTAINER),
        "developer_count": count(berth_authz::ROLE_DEVELOPER),
        "guest_count": count(berth_authz::ROLE_GUEST),
        "limited_guest_count": count(berth_authz::ROLE_LIMITED_GUEST),
    });
    let quotas = Quotas::new(ctx.services.identity.clone(), ctx.services.registry.clone());
    if let Some(quota) = quotas.of_project(&ctx.who, &project, ctx.by_name).await? {
        body["quota"] = json!({
            "hard": {"storage": quota.hard},
            "used": {"storage": quota.used},
        });
    }
    Ok(json(&body))
}
