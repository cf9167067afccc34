//! `/robots`: robot accounts.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{RobotRequest, Robots, level_name};
use berth_meta::{Robot, RobotField, RobotGrant};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::paged;
use super::query::{Fields, Kind, list_query};
use super::{body, json};
use crate::time_format::rfc3339;

const FIELDS: Fields<RobotField> = &[
    ("name", RobotField::Name, Kind::Text),
    ("Level", RobotField::Level, Kind::Text),
    ("level", RobotField::Level, Kind::Text),
    ("ProjectID", RobotField::ProjectId, Kind::Integer),
    ("project_id", RobotField::ProjectId, Kind::Integer),
    ("creation_time", RobotField::CreationTime, Kind::Time),
    ("id", RobotField::Id, Kind::Integer),
];

fn robots(ctx: &Ctx) -> Robots {
    Robots::new(ctx.services.identity.clone())
}

/// Unix milliseconds as Harbor's `expires_at` (Unix seconds, -1 for never).
fn expires_at(ms: i64) -> i64 {
    if ms < 0 { -1 } else { ms / 1000 }
}

/// Harbor's `Robot` (never with its secret).
async fn robot_json(ctx: &Ctx, robot: &Robot) -> Result<Value, HarborError> {
    let permissions: Vec<Value> = robot
        .grants
        .iter()
        .map(|g| {
            json!({
                "kind": g.kind,
                "namespace": g.namespace,
                "access": g.access.iter().map(|(resource, action)| json!({
                    "resource": resource, "action": action, "effect": "allow",
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "id": robot.id,
        "name": robots(ctx).full_name(robot).await?,
        "description": robot.description,
        "level": level_name(robot.level),
        "duration": robot.duration_days,
        "editable": true,
        "disable": robot.disabled,
        "expires_at": expires_at(robot.expires_at),
        "permissions": permissions,
        "creator_type": "local",
        "creator_ref": 0,
        "creation_time": rfc3339(robot.created_at),
        "update_time": rfc3339(robot.updated_at),
    }))
}

#[derive(Deserialize, Default)]
struct AccessReq {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    action: String,
}

#[derive(Deserialize, Default)]
struct PermissionReq {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    access: Vec<AccessReq>,
}

#[derive(Deserialize, Default)]
struct RobotReq {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    level: String,
    duration: Option<i64>,
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    permissions: Vec<PermissionReq>,
}

impl RobotReq {
    fn into_request(self) -> RobotRequest {
        RobotRequest {
            name: self.name,
            description: self.description,
            level: self.level,
            duration: self.duration.unwrap_or(0),
            disable: self.disable,
            secret: self.secret,
            grants: self
                .permissions
                .into_iter()
                .map(|p| RobotGrant {
                    kind: p.kind,
                    namespace: p.namespace,
                    access: p
                        .access
                        .into_iter()
                        .map(|a| (a.resource, a.action))
                        .collect(),
                })
                .collect(),
        }
    }
}

fn robot_id(raw: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| HarborError::bad_request("robot_id must be a positive integer"))
}

/// `GET /robots`
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    let (query, page) = list_query(&ctx.params, FIELDS)?;
    let listed = robots(&ctx).list(&ctx.who, query).await?;
    let mut items = Vec::with_capacity(listed.items.len());
    for robot in &listed.items {
        items.push(robot_json(&ctx, robot).await?);
    }
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/robots",
        &ctx.params,
    ))
}

/// `POST /robots`: `201` with the robot's name and its secret, shown this once.
pub async fn create(ctx: Ctx, raw: Bytes) -> Result<Response, HarborError> {
    let req: RobotReq = body(&raw)?;
    let created = robots(&ctx).create(&ctx.who, req.into_request()).await?;
    let mut response = json(&json!({
        "id": created.robot.id,
        "name": created.full_name,
        "secret": created.secret,
        "creation_time": rfc3339(created.robot.created_at),
        "expires_at": expires_at(created.robot.expires_at),
    }));
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = format!("/api/v2.0/robots/{}", created.robot.id).parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /robots/{robot_id}`
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    let robot = robots(&ctx).get(&ctx.who, robot_id(&id)?).await?;
    Ok(json(&robot_json(&ctx, &robot).await?))
}

/// `PUT /robots/{robot_id}`
pub async fn update(ctx: Ctx, Path(id): Path<String>, raw: Bytes) -> Result<Response, HarborError> {
    let req: RobotReq = body(&raw)?;
    let id = robot_id(&id)?;
    let mut request = req.into_request();
    if request.duration == 0 {
        request.duration = robots(&ctx).get(&ctx.who, id).await?.duration_days;
    }
    robots(&ctx).update(&ctx.who, id, request).await?;
    Ok(().into_response())
}

#[derive(Deserialize, Default)]
struct SecretReq {
    #[serde(default)]
    secret: String,
}

/// `PATCH /robots/{robot_id}`: a new secret, given or generated, returned once.
pub async fn refresh(
    ctx: Ctx,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let req: SecretReq = if raw.is_empty() {
        SecretReq::default()
    } else {
        body(&raw)?
    };
    let secret = robots(&ctx)
        .refresh_secret(&ctx.who, robot_id(&id)?, &req.secret)
        .await?;
    Ok(json(&json!({ "secret": secret })))
}

/// `DELETE /robots/{robot_id}`
pub async fn delete(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    robots(&ctx).delete(&ctx.who, robot_id(&id)?).await?;
    Ok(().into_response())
}
