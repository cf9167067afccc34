//! `/system/gc`: garbage collection's schedule, runs, logs and stopping a run, with
//! Harbor's `GCHistory` JSON.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::jobs::{CollectionParameters, Trigger};
use berth_app::manage::{Collections, GcSchedule, ScheduleRequest, ScheduleType, parameters_of};
use berth_meta::{JobRecord, JobState};
use http::header;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::{Page, paged};
use super::{body, created, json};
use crate::time_format::rfc3339;

/// The use cases, over the request's services.
fn collections(ctx: &Ctx) -> Collections {
    Collections::new(ctx.services.identity.clone(), ctx.services.jobs.clone())
}

/// Harbor's `job_parameters`: the parameters as a JSON string.
fn parameters_text(parameters: &CollectionParameters) -> String {
    json!({
        "delete_untagged": parameters.delete_untagged,
        "dry_run": parameters.dry_run,
        "workers": parameters.workers,
    })
    .to_string()
}

/// Harbor's `job_status` of a run.
fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "Pending",
        JobState::Running => "Running",
        JobState::Succeeded => "Success",
        JobState::Failed => "Error",
        JobState::Stopped => "Stopped",
    }
}

/// A run as Harbor's `GCHistory`.
fn run_json(run: &JobRecord) -> Value {
    let parameters = parameters_of(&run.spec).ok();
    let (kind, schedule_type) = match parameters.map(|p| p.trigger) {
        Some(Trigger::Schedule) => ("SCHEDULE", "Schedule"),
        _ => ("MANUAL", "Manual"),
    };
    json!({
        "id": run.id,
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": kind,
        "job_parameters": parameters.as_ref().map(parameters_text).unwrap_or_default(),
        "schedule": { "type": schedule_type },
        "job_status": status(run.state),
        "deleted": false,
        "creation_time": rfc3339(run.created_at),
        "update_time": rfc3339(run.finished_at.unwrap_or(run.created_at)),
    })
}

/// The schedule as Harbor's `GCHistory`.
fn schedule_json(schedule: &GcSchedule) -> Value {
    json!({
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": schedule.cron,
        "job_parameters": parameters_text(&schedule.parameters),
        "schedule": {
            "type": schedule_type_name(schedule.kind),
            "cron": schedule.cron,
            "next_scheduled_time": rfc3339(schedule.next_fire),
        },
        "deleted": false,
    })
}

fn schedule_type_name(kind: ScheduleType) -> &'static str {
    match kind {
        ScheduleType::None => "None",
        ScheduleType::Manual => "Manual",
        ScheduleType::Hourly => "Hourly",
        ScheduleType::Daily => "Daily",
        ScheduleType::Weekly => "Weekly",
        ScheduleType::Custom => "Custom",
    }
}

/// Harbor's `Schedule` request body.
#[derive(Deserialize)]
struct ScheduleBody {
    schedule: ScheduleObject,
    #[serde(default)]
    parameters: ParametersBody,
}

#[derive(Deserialize)]
struct ScheduleObject {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    cron: Option<String>,
}

#[derive(Deserialize, Default)]
struct ParametersBody {
    #[serde(default)]
    delete_untagged: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    workers: Option<usize>,
}

/// The most sweeps Harbor lets a run use at once.
const MAX_WORKERS: usize = 5;

impl ScheduleBody {
    fn request(self) -> Result<ScheduleRequest, HarborError> {
        let kind = match self.schedule.kind.as_str() {
            "None" => ScheduleType::None,
            "Manual" => ScheduleType::Manual,
            "Hourly" => ScheduleType::Hourly,
            "Daily" => ScheduleType::Daily,
            "Weekly" => ScheduleType::Weekly,
            "Custom" => ScheduleType::Custom,
            other => {
                return Err(HarborError::bad_request(format!(
                    "invalid schedule type {other:?}"
                )));
            }
        };
        let workers = self.parameters.workers.unwrap_or(1);
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(HarborError::bad_request(format!(
                "workers must be between 1 and {MAX_WORKERS}"
            )));
        }
        Ok(ScheduleRequest {
            kind,
            cron: self.schedule.cron,
            parameters: CollectionParameters {
                delete_untagged: self.parameters.delete_untagged,
                dry_run: self.parameters.dry_run,
                workers,
                trigger: Trigger::Manual,
            },
        })
    }
}

/// `GET /system/gc`: the runs, newest first.
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    let page = Page::from_params(&ctx.params)?;
    let (runs, total) = collections(&ctx)
        .runs(&ctx.who, page.number, page.size)
        .await?;
    let items: Vec<Value> = runs.iter().map(run_json).collect();
    Ok(paged(
        &items,
        total,
        page,
        "/api/v2.0/system/gc",
        &ctx.params,
    ))
}

/// `GET /system/gc/{gc_id}`
pub async fn get(ctx: Ctx, Path(id): Path<i64>) -> Result<Response, HarborError> {
    let run = collections(&ctx).run(&ctx.who, id).await?;
    Ok(json(&run_json(&run)))
}

/// `GET /system/gc/{gc_id}/log`: the run's log as text.
pub async fn log(ctx: Ctx, Path(id): Path<i64>) -> Result<Response, HarborError> {
    let lines = collections(&ctx).log(&ctx.who, id).await?;
    let text: String = (lines.iter())
        .map(|l| format!("{} [INFO] {}\n", rfc3339(l.at), l.line))
        .collect();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `PUT /system/gc/{gc_id}`: asks the run to stop.
pub async fn stop(ctx: Ctx, Path(id): Path<i64>) -> Result<Response, HarborError> {
    collections(&ctx).stop(&ctx.who, id).await?;
    Ok(().into_response())
}

/// `GET /system/gc/schedule`: the schedule, or an empty answer when there is none.
pub async fn schedule(ctx: Ctx) -> Result<Response, HarborError> {
    Ok(match collections(&ctx).schedule(&ctx.who).await? {
        Some(schedule) => json(&schedule_json(&schedule)),
        None => ().into_response(),
    })
}

/// `POST /system/gc/schedule`: a run now (`201` with its `Location`), or a new
/// schedule.
pub async fn create_schedule(ctx: Ctx, bytes: Bytes) -> Result<Response, HarborError> {
    let request = body::<ScheduleBody>(&bytes)?.request()?;
    Ok(
        match collections(&ctx).set_schedule(&ctx.who, request).await? {
            Some(id) => created(format!("/api/v2.0/system/gc/{id}")),
            None => created("/api/v2.0/system/gc/schedule".into()),
        },
    )
}

/// `PUT /system/gc/schedule`: the same as `POST`, answered `200`.
pub async fn update_schedule(ctx: Ctx, bytes: Bytes) -> Result<Response, HarborError> {
    let request = body::<ScheduleBody>(&bytes)?.request()?;
    collections(&ctx).set_schedule(&ctx.who, request).await?;
    Ok(().into_response())
}
