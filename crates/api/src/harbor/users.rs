//! `/users`: accounts.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{ManageError, NewAccount, PasswordChange, Users};
use berth_meta::{ProfileUpdate, User, UserField};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::{Page, paged};
use super::query::{Fields, Kind, list_query};
use super::{body, created, json, null_as_default};
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
    #[serde(default, deserialize_with = "null_as_default")]
    username: String,
    #[serde(default, deserialize_with = "null_as_default")]
    email: String,
    #[serde(default, deserialize_with = "null_as_default")]
    realname: String,
    #[serde(default, deserialize_with = "null_as_default")]
    comment: String,
    #[serde(default, deserialize_with = "null_as_default")]
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

/// `GET /users/current/permissions?scope=&relative=`: what the caller may do in one
/// namespace, as Harbor lists it: `/system` (resources `/system/<resource>`) or
/// `/project/<id>` (resources `/project/<id>/<resource>`, the project itself
/// `/project/<id>`). Any other scope, none included, names no namespace: an empty list.
pub async fn permissions(ctx: Ctx) -> Result<Response, HarborError> {
    use berth_authz::{
        ProjectRef, Resource, effective_permissions, project_namespace_permissions,
        system_namespace_permissions,
    };
    let account = ctx.who.account()?.clone();
    let scope = ctx.params.get("scope").unwrap_or("");
    let relative = ctx.params.boolean("relative")?.unwrap_or(false);
    let nothing = || Ok(json(&Vec::<Value>::new()));
    let (namespace, set) = if scope.starts_with("/system") {
        let set = effective_permissions(&account.principal, None);
        (
            "/system".to_owned(),
            set.intersection(&system_namespace_permissions()),
        )
    } else if let Some(id) = project_scope(scope) {
        let project = match berth_app::manage::Projects::new(ctx.services.identity.clone())
            .get(&ctx.who, &id.to_string(), false)
            .await
        {
            Ok(project) => project,
            // A project the caller may not see grants nothing.
            Err(ManageError::NotFound(_) | ManageError::Forbidden(_)) => return nothing(),
            Err(e) => return Err(e.into()),
        };
        let project = ProjectRef {
            id: project.id,
            public: project.public,
        };
        let set = effective_permissions(&account.principal, Some(project));
        (
            format!("/project/{id}"),
            set.intersection(&project_namespace_permissions()),
        )
    } else {
        return nothing();
    };
    let items: Vec<Value> = set
        .iter()
        .filter_map(|p| {
            let absolute = match p.resource {
                // Harbor's "self" resource: the project itself.
                Resource::Project if namespace.starts_with("/project/") => namespace.clone(),
                resource => format!("{namespace}/{resource}"),
            };
            let resource = if relative {
                relative_to(&absolute, scope)?
            } else {
                absolute
            };
            Some(json!({ "resource": resource, "action": p.action.as_str() }))
        })
        .collect();
    Ok(json(&items))
}

/// The project id of a `/project/<id>[/...]` scope (Harbor's `projectNamespaceRe`).
fn project_scope(scope: &str) -> Option<i64> {
    scope
        .strip_prefix("/project/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Harbor's `Resource.RelativeTo`: the resource below `scope`, `.` for the scope
/// itself, nothing for a resource outside it.
fn relative_to(resource: &str, scope: &str) -> Option<String> {
    let rest = resource.strip_prefix(scope)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    Some(if rest.is_empty() {
        ".".into()
    } else {
        rest.into()
    })
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
    #[serde(default, deserialize_with = "null_as_default")]
    old_password: String,
    #[serde(default, deserialize_with = "null_as_default")]
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
