//! `/retentions`: tag retention policies, their executions, tasks and task logs, with
//! Harbor's `RetentionPolicy`, `RetentionExecution`, `RetentionExecutionTask` and
//! `RetentionMetadata` JSON.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{PolicyView, Retentions};
use berth_app::retention::{PolicyDefinition, SETTING_NEXT};
use berth_meta::{RetentionExecution, RetentionTask, TaskStatus};
use http::header;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::{Page, paged};
use super::{body, created, json, null_as_default};
use crate::time_format::rfc3339;

fn retentions(ctx: &Ctx) -> Retentions {
    Retentions::new(
        ctx.services.identity.clone(),
        ctx.services.registry.clone(),
        ctx.services.jobs.clone(),
    )
}

/// A positive id from the path.
fn id(raw: &str, name: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| HarborError::bad_request(format!("{name} must be a positive integer")))
}

/// Harbor's `RetentionMetadata`: the templates, and the selectors the portal offers.
fn metadata_json() -> Value {
    let template = |id: &str, text: &str, unit: Option<&str>| {
        let params: Vec<Value> = unit
            .map(|unit| json!({"type": "int", "unit": unit, "required": true}))
            .into_iter()
            .collect();
        json!({"rule_template": id, "display_text": text, "action": "retain", "params": params})
    };
    json!({
        "templates": [
            template("latestPushedK", "the most recently pushed # artifacts", Some("COUNT")),
            template("latestPulledN", "the most recently pulled # artifacts", Some("COUNT")),
            template("nDaysSinceLastPush", "pushed within the last # days", Some("DAYS")),
            template("nDaysSinceLastPull", "pulled within the last # days", Some("DAYS")),
            template("always", "always", None),
        ],
        "scope_selectors": [{
            "display_text": "Repositories",
            "kind": "doublestar",
            "decorations": ["repoMatches", "repoExcludes"],
        }],
        "tag_selectors": [{
            "display_text": "Tags",
            "kind": "doublestar",
            "decorations": ["matches", "excludes"],
        }],
    })
}

/// Harbor's `RetentionPolicy`: the definition as given, its id, and the schedule's
/// next fire time among the trigger's settings.
fn policy_json(view: &PolicyView) -> Value {
    let mut value = serde_json::to_value(&view.definition).unwrap_or_default();
    value["id"] = json!(view.id);
    if let (Some(next), Some(settings)) = (
        view.next_fire,
        value
            .get_mut("trigger")
            .and_then(|t| t.get_mut("settings"))
            .and_then(Value::as_object_mut),
    ) {
        settings.insert(SETTING_NEXT.into(), json!(rfc3339(next)));
    }
    value
}

/// Harbor's `RetentionExecution`.
fn execution_json(e: &RetentionExecution) -> Value {
    let mut value = json!({
        "id": e.id,
        "policy_id": e.policy_id,
        "start_time": rfc3339(e.started_at),
        "status": e.status.as_str(),
        "trigger": e.trigger,
        "dry_run": e.dry_run,
    });
    if let Some(end) = e.ended_at {
        value["end_time"] = json!(rfc3339(end));
    }
    value
}

/// Harbor's job-status code: pending 0, running 2, ended 3.
fn status_code(status: TaskStatus) -> u8 {
    match status {
        TaskStatus::Pending => 0,
        TaskStatus::Running => 2,
        TaskStatus::Success | TaskStatus::Error | TaskStatus::Stopped => 3,
    }
}

/// Harbor's `RetentionExecutionTask`: the repository named without its project.
fn task_json(execution: &RetentionExecution, t: &RetentionTask) -> Value {
    let repository = (t.repository.split_once('/')).map_or(t.repository.as_str(), |(_, r)| r);
    let mut value = json!({
        "id": t.id,
        "execution_id": t.execution_id,
        "repository": repository,
        "job_id": execution.job_id.map(|j| j.to_string()).unwrap_or_default(),
        "status": t.status.as_str(),
        "status_code": status_code(t.status),
        "total": t.total,
        "retained": t.retained,
    });
    if let Some(start) = t.started_at {
        value["start_time"] = json!(rfc3339(start));
    }
    if let Some(end) = t.ended_at {
        value["end_time"] = json!(rfc3339(end));
    }
    value
}

/// `GET /retentions/metadatas`
pub async fn metadatas(ctx: Ctx) -> Result<Response, HarborError> {
    retentions(&ctx).metadata(&ctx.who)?;
    Ok(json(&metadata_json()))
}

/// `POST /retentions`: `201` with the new policy's `Location`.
pub async fn create(ctx: Ctx, raw: Bytes) -> Result<Response, HarborError> {
    let definition: PolicyDefinition = body(&raw)?;
    let id = retentions(&ctx).create(&ctx.who, definition).await?;
    Ok(created(format!("/api/v2.0/retentions/{id}")))
}

/// `GET /retentions/{id}`
pub async fn get(ctx: Ctx, Path(raw): Path<String>) -> Result<Response, HarborError> {
    let view = retentions(&ctx).get(&ctx.who, id(&raw, "id")?).await?;
    Ok(json(&policy_json(&view)))
}

/// `PUT /retentions/{id}`
pub async fn update(
    ctx: Ctx,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Result<Response, HarborError> {
    let id = id(&raw, "id")?;
    let definition: PolicyDefinition = body(&bytes)?;
    retentions(&ctx).update(&ctx.who, id, definition).await?;
    Ok(().into_response())
}

/// `DELETE /retentions/{id}`
pub async fn delete(ctx: Ctx, Path(raw): Path<String>) -> Result<Response, HarborError> {
    retentions(&ctx).delete(&ctx.who, id(&raw, "id")?).await?;
    Ok(().into_response())
}

#[derive(Deserialize)]
struct TriggerBody {
    #[serde(default, deserialize_with = "null_as_default")]
    dry_run: bool,
}

/// `POST /retentions/{id}/executions`: `201` with the execution's `Location`.
pub async fn trigger(
    ctx: Ctx,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Result<Response, HarborError> {
    let id = id(&raw, "id")?;
    let request: TriggerBody = body(&bytes)?;
    let eid = retentions(&ctx)
        .trigger(&ctx.who, id, request.dry_run)
        .await?;
    Ok(created(format!(
        "/api/v2.0/retentions/{id}/executions/{eid}"
    )))
}

/// `GET /retentions/{id}/executions`: newest first.
pub async fn executions(ctx: Ctx, Path(raw): Path<String>) -> Result<Response, HarborError> {
    let id = id(&raw, "id")?;
    let page = Page::from_params(&ctx.params)?;
    let listed = retentions(&ctx)
        .executions(&ctx.who, id, page.offset(), page.size)
        .await?;
    let items: Vec<Value> = listed.items.iter().map(execution_json).collect();
    let path = format!("/api/v2.0/retentions/{id}/executions");
    Ok(paged(&items, listed.total, page, &path, &ctx.params))
}

#[derive(Deserialize)]
struct OperateBody {
    #[serde(default, deserialize_with = "null_as_default")]
    action: String,
}

/// `PATCH /retentions/{id}/executions/{eid}`: `{"action":"stop"}` stops it.
pub async fn operate(
    ctx: Ctx,
    Path((raw, raw_eid)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, HarborError> {
    let (id, eid) = (id(&raw, "id")?, id(&raw_eid, "eid")?);
    let request: OperateBody = body(&bytes)?;
    if request.action != "stop" {
        return Err(HarborError::bad_request("action should be 'stop'"));
    }
    retentions(&ctx).stop(&ctx.who, id, eid).await?;
    Ok(().into_response())
}

/// `GET /retentions/{id}/executions/{eid}/tasks`: one task per repository.
pub async fn tasks(
    ctx: Ctx,
    Path((raw, raw_eid)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    let (id, eid) = (id(&raw, "id")?, id(&raw_eid, "eid")?);
    let page = Page::from_params(&ctx.params)?;
    let (execution, listed) = retentions(&ctx)
        .tasks(&ctx.who, id, eid, page.offset(), page.size)
        .await?;
    let items: Vec<Value> = (listed.items.iter())
        .map(|t| task_json(&execution, t))
        .collect();
    let path = format!("/api/v2.0/retentions/{id}/executions/{eid}/tasks");
    Ok(paged(&items, listed.total, page, &path, &ctx.params))
}

/// `GET /retentions/{id}/executions/{eid}/tasks/{tid}`: the task's log, as text.
pub async fn task_log(
    ctx: Ctx,
    Path((raw, raw_eid, raw_tid)): Path<(String, String, String)>,
) -> Result<Response, HarborError> {
    let (id, eid, tid) = (id(&raw, "id")?, id(&raw_eid, "eid")?, id(&raw_tid, "tid")?);
    let log = retentions(&ctx).task_log(&ctx.who, id, eid, tid).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], log).into_response())
}
