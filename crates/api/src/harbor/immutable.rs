//! `/projects/{project}/immutabletagrules`: a project's immutable tag rules.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::immutability::{RuleDefinition, SelectorSpec};
use berth_app::manage::{ImmutableRules, RuleChange, RuleView};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::paging::{Page, paged};
use super::{body, created, null_as_default};

fn rules(ctx: &Ctx) -> ImmutableRules {
    ImmutableRules::new(ctx.services.identity.clone(), ctx.services.registry.clone())
}

/// Harbor's `ImmutableSelector`.
fn selector_json(s: &SelectorSpec) -> Value {
    json!({ "kind": s.kind, "decoration": s.decoration, "pattern": s.pattern })
}

/// Harbor's `ImmutableRule`.
fn rule_json(rule: &RuleView) -> Value {
    let d = &rule.definition;
    let scopes: Map<String, Value> = d
        .scope_selectors
        .iter()
        .map(|(scope, selectors)| {
            let list = selectors.iter().map(selector_json).collect();
            (scope.clone(), Value::Array(list))
        })
        .collect();
    json!({
        "id": rule.id,
        "priority": d.priority,
        "disabled": rule.disabled,
        "action": d.action,
        "template": d.template,
        "tag_selectors": d.tag_selectors.iter().map(selector_json).collect::<Vec<_>>(),
        "scope_selectors": scopes,
    })
}

fn rule_id(raw: &str) -> Result<i64, HarborError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| HarborError::bad_request("immutable_rule_id must be a positive integer"))
}

/// `GET /projects/{project}/immutabletagrules`
pub async fn list(ctx: Ctx, Path(project): Path<String>) -> Result<Response, HarborError> {
    let page = Page::from_params(&ctx.params)?;
    let listed = rules(&ctx)
        .list(&ctx.who, &project, ctx.by_name, page.offset(), page.size)
        .await?;
    let items: Vec<Value> = listed.items.iter().map(rule_json).collect();
    let path = format!("/api/v2.0/projects/{project}/immutabletagrules");
    Ok(paged(&items, listed.total, page, &path, &ctx.params))
}

/// `POST /projects/{project}/immutabletagrules`: `201` with the new rule's `Location`.
pub async fn create(
    ctx: Ctx,
    Path(project): Path<String>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let definition: RuleDefinition = body(&raw)?;
    let id = rules(&ctx)
        .create(&ctx.who, &project, ctx.by_name, &definition)
        .await?;
    Ok(created(format!(
        "/api/v2.0/projects/{project}/immutabletagrules/{id}"
    )))
}

/// The body of an update: Harbor's whole `ImmutableRule`.
#[derive(Deserialize)]
struct UpdateReq {
    #[serde(default, deserialize_with = "null_as_default")]
    id: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    disabled: bool,
    #[serde(flatten)]
    definition: RuleDefinition,
}

/// `PUT /projects/{project}/immutabletagrules/{id}`: switches the rule off or on when
/// `disabled` differs from the stored switch, else replaces its definition. The body's
/// `id` must be the path's (checked first, as Harbor does).
pub async fn update(
    ctx: Ctx,
    Path((project, id)): Path<(String, String)>,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let id = rule_id(&id)?;
    let req: UpdateReq = body(&raw)?;
    if req.id != id {
        return Err(HarborError::bad_request(
            "the immutable_rule_id doesn't match the id in the payload body of ImmutableRule",
        ));
    }
    let change = RuleChange {
        disabled: req.disabled,
        definition: req.definition,
    };
    rules(&ctx)
        .update(&ctx.who, &project, ctx.by_name, id, &change)
        .await?;
    Ok(().into_response())
}

/// `DELETE /projects/{project}/immutabletagrules/{id}`
pub async fn delete(
    ctx: Ctx,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    rules(&ctx)
        .delete(&ctx.who, &project, ctx.by_name, rule_id(&id)?)
        .await?;
    Ok(().into_response())
}
