//! `/audit-logs`, `/projects/{project}/logs` and their `auditlog-exts` forms.

use axum::extract::Path;
use axum::response::Response;
use berth_app::manage::AuditLog;
use berth_meta::{AuditField, AuditRecord};
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::json;
use super::paging::paged;
use super::query::{Fields, Kind, list_query};
use crate::time_format::rfc3339;

const FIELDS: Fields<AuditField> = &[
    ("operation", AuditField::Operation, Kind::Text),
    ("resource_type", AuditField::ResourceType, Kind::Text),
    ("resource", AuditField::Resource, Kind::Text),
    ("username", AuditField::Username, Kind::Text),
    ("op_time", AuditField::OpTime, Kind::Time),
    ("id", AuditField::Id, Kind::Integer),
];

/// The event types entries are recorded under (`<operation>_<resource type>`).
const EVENT_TYPES: &[&str] = &[
    "create_artifact",
    "delete_artifact",
    "pull_artifact",
    "delete_tag",
    "delete_blob",
    "create_project",
    "update_project",
    "delete_project",
    "create_project_member",
    "update_project_member",
    "delete_project_member",
    "create_robot",
    "update_robot",
    "delete_robot",
    "create_user",
    "update_user",
    "delete_user",
    "create_label",
    "update_label",
    "delete_label",
    "create_artifact_label",
    "delete_artifact_label",
    "create_immutable_tag_rule",
    "update_immutable_tag_rule",
    "delete_immutable_tag_rule",
    "create_retention_policy",
    "update_retention_policy",
    "delete_retention_policy",
    "update_configuration",
];

/// Harbor's `AuditLog`.
fn entry_json(record: &AuditRecord) -> Value {
    let e = &record.entry;
    json!({
        "id": record.id,
        "username": e.username,
        "resource": e.resource,
        "resource_type": e.resource_type,
        "operation": e.operation,
        "op_time": rfc3339(e.op_time),
    })
}

/// Harbor's `AuditLogExt`.
fn entry_ext_json(record: &AuditRecord) -> Value {
    let e = &record.entry;
    let mut v = entry_json(record);
    v["operation_description"] = json!(format!(
        "{} {} {}",
        e.operation, e.resource_type, e.resource
    ));
    v["operation_result"] = json!(e.success);
    v
}

async fn respond(
    ctx: Ctx,
    project: Option<String>,
    path: &str,
    render: fn(&AuditRecord) -> Value,
) -> Result<Response, HarborError> {
    let (mut query, page) = list_query(&ctx.params, FIELDS)?;
    if query.sort.is_empty() {
        query.sort.push(berth_meta::SortKey {
            field: AuditField::OpTime,
            descending: true,
        });
    }
    let log = AuditLog::new(ctx.services.identity.clone());
    let listed = match &project {
        Some(p) => log.project(&ctx.who, p, true, &query).await?,
        None => log.list(&ctx.who, &query).await?,
    };
    let items: Vec<Value> = listed.items.iter().map(render).collect();
    Ok(paged(&items, listed.total, page, path, &ctx.params))
}

/// `GET /audit-logs`
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    respond(ctx, None, "/api/v2.0/audit-logs", entry_json).await
}

/// `GET /auditlog-exts`
pub async fn list_ext(ctx: Ctx) -> Result<Response, HarborError> {
    respond(ctx, None, "/api/v2.0/auditlog-exts", entry_ext_json).await
}

/// `GET /projects/{project_name}/logs`
pub async fn project(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let path = format!("/api/v2.0/projects/{project}/logs");
    respond(ctx, Some(project), &path, entry_json).await
}

/// `GET /projects/{project_name}/auditlog-exts`
pub async fn project_ext(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let path = format!("/api/v2.0/projects/{project}/auditlog-exts");
    respond(ctx, Some(project), &path, entry_ext_json).await
}

/// `GET /auditlog-exts/events`
pub async fn event_types(ctx: Ctx) -> Result<Response, HarborError> {
    ctx.who.account()?;
    let items: Vec<Value> = EVENT_TYPES
        .iter()
        .map(|t| json!({ "event_type": t }))
        .collect();
    Ok(json(&items))
}
