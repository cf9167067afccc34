//! `/users`: accounts.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{NewAccount, PasswordChange, Users};
use berth_meta::{ProfileUpdate, User, UserField};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::{Page, paged};
use super::query::{Fields, Kind, list_query};
use super::{body, created, json};
use crate::time_format::rfc3339;

const FIELDS: Fields<UserField> = &[
    ("username", UserField::Username, Kind::Text),
    ("email", UserField::Email, Kind::Text),
    ("creation_time", UserField::CreationTime, Kind::Time),
    ("update_time", UserField::UpdateTime, Kind::Time),
];

/// Harbor's `UserResp`.
pub fn user_json(user: &User) -> Value {
    json!({
        "user_id": user.id,
        "username": user.username,
        "email": user.email,
        "realname": user.realname,
        "comment": user.comment,
        "sysadmin_flag": user.sysadmin,
        "admin_role_in_auth": false,
        "creation_time": rfc3339(user.created_at),
        "update_time": rfc3339(user.updated_at),
    })
}

fn users(ctx: &Ctx) -> Users {
    Users::new(ctx.services.identity.clone())
}

/// `GET /users`
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    let (query, page) = list_query(&ctx.params, FIELDS)?;
    let listed = users(&ctx).list(&ctx.who, &query).await?;
    let items: Vec<Value> = listed.items.iter().map(user_json).collect();
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/users",
        &ctx.params,
    ))
}

#[derive(Deserialize)]
struct CreationReq {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    realname: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    password: String,
}

/// `POST /users`
pub async fn create(ctx: Ctx, raw: Bytes) -> Result<Response, HarborError> {
    let req: CreationReq = body(&raw)?;
    let id = users(&ctx)
        .create(
            &ctx.who,
            NewAccount {
                username: req.username,
                email: req.email,
                realname: req.realname,
                comment: req.comment,
                password: req.password,
                sysadmin: false,
            },
        )
        .await?;
    Ok(created(format!("/api/v2.0/users/{id}")))
}

/// `GET /users/current`
pub async fn current(ctx: Ctx) -> Result<Response, HarborError> {
    let user = users(&ctx).current(&ctx.who).await?;
    Ok(json(&user_json(&user)))
}

/// `GET /users/current/permissions?scope=/project/<id>&relative=`
pub async fn permissions(ctx: Ctx) -> Result<Response, HarborError> {
    let account = ctx.who.account()?.clone();
    let scope = ctx.params.get("scope").unwrap_or("");
    let relative = ctx.params.boolean("relative")?.unwrap_or(false);
    let project = match scope.strip_prefix("/project/") {
        Some(id) => {
            let project = berth_app::manage::Projects::new(ctx.services.identity.clone())
                .get(&ctx.who, id, false)
                .await?;
            Some(berth_authz::ProjectRef {
                id: project.id,
                public: project.public,
            })
        }
        None if scope.is_empty() || scope == "/" => None,
        None => return Err(HarborError::bad_request(format!("unknown scope {scope:?}"))),
    };
    let set = berth_authz::effective_permissions(&account.principal, project);
    let items: Vec<Value> = set
        .iter()
        .map(|p| {
            let resource = if relative {
                p.resource.to_string()
            } else {
                format!("{scope}/{}", p.resource)
            };
            json!({ "resource": resource, "action": p.action.as_str() })
        })
        .collect();
    Ok(json(&items))
}

/// `GET /users/search?username=`: ids and names only.
pub async fn search(ctx: Ctx) -> Result<Response, HarborError> {
    let page = Page::from_params(&ctx.params)?;
    let name = ctx
        .params
        .get("username")
        .ok_or_else(|| HarborError::bad_request("username is required"))?;
    let listed = users(&ctx)
        .search(&ctx.who, name, page.offset(), page.size)
        .await?;
    let items: Vec<Value> = listed
        .items
        .iter()
        .map(|u| json!({ "user_id": u.id, "username": u.username }))
        .collect();
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/users/search",
        &ctx.params,
    ))
}

fn user_id(raw: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| HarborError::bad_request("user_id must be a positive integer"))
}

/// `GET /users/{user_id}`
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    let user = users(&ctx).get(&ctx.who, user_id(&id)?).await?;
    Ok(json(&user_json(&user)))
}

#[derive(Deserialize)]
struct ProfileReq {
    email: Option<String>,
    realname: Option<String>,
    comment: Option<String>,
}

/// `PUT /users/{user_id}`: the profile.
pub async fn update(ctx: Ctx, Path(id): Path<String>, raw: Bytes) -> Result<Response, HarborError> {
    let req: ProfileReq = body(&raw)?;
    users(&ctx)
        .update_profile(
            &ctx.who,
            user_id(&id)?,
            ProfileUpdate {
                email: req.email,
                realname: req.realname,
                comment: req.comment,
            },
        )
        .await?;
    Ok(().into_response())
}

/// `DELETE /users/{user_id}`
pub async fn delete(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    users(&ctx).delete(&ctx.who, user_id(&id)?).await?;
    Ok(().into_response())
}

#[derive(Deserialize)]
struct PasswordReq {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
}

/// `PUT /users/{user_id}/password`
pub async fn password(
    ctx: Ctx,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let req: PasswordReq = body(&raw)?;
    users(&ctx)
        .change_password(
            &ctx.who,
            user_id(&id)?,
            PasswordChange {
                old_password: req.old_password,
                new_password: req.new_password,
            },
        )
        .await?;
    Ok(().into_response())
}

#[derive(Deserialize)]
struct SysAdminReq {
    sysadmin_flag: bool,
}

/// `PUT /users/{user_id}/sysadmin`
pub async fn sysadmin(
    ctx: Ctx,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let req: SysAdminReq = body(&raw)?;
    users(&ctx)
        .set_sysadmin(&ctx.who, user_id(&id)?, req.sysadmin_flag)
        .await?;
    Ok(().into_response())
}
