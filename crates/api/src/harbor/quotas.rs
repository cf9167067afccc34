//! `/quotas`: projects' storage quotas, with Harbor's `Quota` JSON (`ref` names the
//! project; `hard` and `used` are `ResourceList`s of `storage` bytes, `-1` no limit).

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::Quotas;
use berth_meta::{FieldFilter, Match, Quota, QuotaField};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::paged;
use super::query::{Fields, Kind, list_query};
use super::{body, json};
use crate::time_format::rfc3339;

const FIELDS: Fields<QuotaField> = &[
    ("id", QuotaField::Id, Kind::Integer),
    ("reference_id", QuotaField::ProjectId, Kind::Integer),
    ("hard.storage", QuotaField::Hard, Kind::Integer),
    ("used.storage", QuotaField::Used, Kind::Integer),
    ("creation_time", QuotaField::CreationTime, Kind::Time),
    ("update_time", QuotaField::UpdateTime, Kind::Time),
];

fn quotas(ctx: &Ctx) -> Quotas {
    Quotas::new(ctx.services.identity.clone(), ctx.services.registry.clone())
}

/// Harbor's `Quota`.
fn quota_json(quota: &Quota) -> Value {
    json!({
        "id": quota.id,
        "ref": {
            "id": quota.project_id,
            "name": quota.project_name,
            "owner_name": quota.owner_name.as_deref().unwrap_or(""),
        },
        "hard": {"storage": quota.hard},
        "used": {"storage": quota.used},
        "creation_time": rfc3339(quota.created_at),
        "update_time": rfc3339(quota.updated_at),
    })
}

/// A quota id from the path.
fn quota_id(raw: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| HarborError::bad_request("the quota id must be a positive integer"))
}

/// `GET /quotas` with `reference` (only `project` has quotas), `reference_id`, `sort`
/// and paging.
pub async fn list(ctx: Ctx) -> Result<Response, HarborError> {
    let (mut query, page) = list_query(&ctx.params, FIELDS)?;
    if let Some(id) = ctx.params.get("reference_id") {
        query.filters.push(FieldFilter {
            field: QuotaField::ProjectId,
            matching: Match::Exact(id.to_owned()),
        });
    }
    if ctx.params.get("reference").is_some_and(|r| r != "project") {
        query.filters.push(FieldFilter {
            field: QuotaField::Id,
            matching: Match::AnyOf(Vec::new()),
        });
    }
    let listed = quotas(&ctx).list(&ctx.who, &query).await?;
    let items: Vec<Value> = listed.items.iter().map(quota_json).collect();
    Ok(paged(
        &items,
        listed.total,
        page,
        "/api/v2.0/quotas",
        &ctx.params,
    ))
}

/// `GET /quotas/{id}`
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Response, HarborError> {
    let quota = quotas(&ctx).get(&ctx.who, quota_id(&id)?).await?;
    Ok(json(&quota_json(&quota)))
}

/// Harbor's `QuotaUpdateReq`.
#[derive(Deserialize)]
struct QuotaUpdateReq {
    hard: Hard,
}

/// The limits a `QuotaUpdateReq` sets: only `storage` exists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hard {
    storage: i64,
}

/// `PUT /quotas/{id}` with `{"hard": {"storage": N}}`: `N` bytes, or `-1` for no limit.
pub async fn update(ctx: Ctx, Path(id): Path<String>, raw: Bytes) -> Result<Response, HarborError> {
    let req: QuotaUpdateReq = body(&raw)?;
    quotas(&ctx)
        .set_limit(&ctx.who, quota_id(&id)?, req.hard.storage)
        .await?;
    Ok(().into_response())
}
