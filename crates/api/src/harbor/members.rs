//! `/projects/{project}/members`: who holds which role in a project.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_meta::{Member, MemberKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::{Page, paged};
use super::projects::projects;
use super::{body, created, json, null_as_default};

/// Harbor's `ProjectMemberEntity`.
fn member_json(member: &Member) -> Value {
    json!({
        "id": member.id,
        "project_id": member.project_id,
        "entity_name": member.entity_name,
        "role_name": member.role_name,
        "role_id": member.role_id,
        "entity_id": member.entity_id,
        "entity_type": match member.kind {
            MemberKind::User => "u",
            MemberKind::Group => "g",
        },
    })
}

fn member_id(raw: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| HarborError::bad_request("member id must be a positive integer"))
}

/// `GET /projects/{project}/members?entityname=`
pub async fn list(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let page = Page::from_params(&ctx.params)?;
    let listed = projects(&ctx)
        .members(
            &ctx.who,
            &project,
            ctx.by_name,
            ctx.params.get("entityname"),
            page.offset(),
            page.size,
        )
        .await?;
    let items: Vec<Value> = listed.items.iter().map(member_json).collect();
    let path = format!("/api/v2.0/projects/{project}/members");
    Ok(paged(&items, listed.total, page, &path, &ctx.params))
}

#[derive(Deserialize, Default)]
struct UserEntity {
    #[serde(default, deserialize_with = "null_as_default")]
    user_id: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    username: String,
}

#[derive(Deserialize)]
struct MemberReq {
    #[serde(default, deserialize_with = "null_as_default")]
    role_id: i64,
    member_user: Option<UserEntity>,
    member_group: Option<Value>,
}

/// `POST /projects/{project}/members`
pub async fn create(
    ctx: Ctx,
    Path(project): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let req: MemberReq = body(&raw)?;
    if req.member_group.is_some() && req.member_user.is_none() {
        return Err(HarborError::bad_request(
            "group members need LDAP or OIDC groups, which this Berth does not have",
        ));
    }
    let user = req
        .member_user
        .ok_or_else(|| HarborError::bad_request("member_user is required"))?;
    let id = projects(&ctx)
        .add_member(
            &ctx.who,
            &project,
            ctx.by_name,
            (user.user_id, &user.username),
            req.role_id,
        )
        .await?;
    Ok(created(format!(
        "/api/v2.0/projects/{project}/members/{id}"
    )))
}

/// `GET /projects/{project}/members/{mid}`
pub async fn get(
    ctx: Ctx,
    Path((project, mid)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    let member = projects(&ctx)
        .member(&ctx.who, &project, ctx.by_name, member_id(&mid)?)
        .await?;
    Ok(json(&member_json(&member)))
}

#[derive(Deserialize)]
struct RoleReq {
    #[serde(default, deserialize_with = "null_as_default")]
    role_id: i64,
}

/// `PUT /projects/{project}/members/{mid}`: another role.
pub async fn update(
    ctx: Ctx,
    Path((project, mid)): Path<(String, String)>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let req: RoleReq = body(&raw)?;
    projects(&ctx)
        .set_member_role(
            &ctx.who,
            &project,
            ctx.by_name,
            member_id(&mid)?,
            req.role_id,
        )
        .await?;
    Ok(().into_response())
}

/// `DELETE /projects/{project}/members/{mid}`
pub async fn delete(
    ctx: Ctx,
    Path((project, mid)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    projects(&ctx)
        .remove_member(&ctx.who, &project, ctx.by_name, member_id(&mid)?)
        .await?;
    Ok(().into_response())
}
