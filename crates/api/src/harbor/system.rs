//! `/ping`, `/health`, `/systeminfo`, `/configurations`, `/statistics`, `/search`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use berth_app::manage::System;
use serde_json::json;

use super::context::Ctx;
use super::error::HarborError;
use super::{body, json};

/// `GET /ping`
pub async fn ping() -> &'static str {
    "Pong"
}

/// `GET /health`: the overall status and each component's.
pub async fn health(ctx: Ctx) -> Response {
    let registry = &ctx.services.registry;
    let component = |ok: Result<(), String>, name: &str| match ok {
        Ok(()) => json!({ "name": name, "status": "healthy" }),
        Err(e) => json!({ "name": name, "status": "unhealthy", "error": e }),
    };
    let database = component(
        registry.database_ready().await.map_err(|e| e.to_string()),
        "database",
    );
    let storage = component(
        registry.storage_ready().await.map_err(|e| e.to_string()),
        "storage",
    );
    let healthy = database["status"] == "healthy" && storage["status"] == "healthy";
    json(&json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "components": [database, storage],
    }))
}

/// `GET /systeminfo`: what clients need before logging in, and more once logged in.
pub async fn info(ctx: Ctx) -> Response {
    let mut info = json!({
        "auth_mode": "db_auth",
        "primary_auth_mode": false,
        "self_registration": ctx
            .services
            .identity
            .settings
            .current()
            .await
            .map(|s| s.self_registration)
            .unwrap_or(false),
        "harbor_version": concat!("v2.13.0-berth-", env!("CARGO_PKG_VERSION")),
        "banner_message": "",
        "oidc_provider_name": "",
    });
    if ctx.who.account.is_some() {
        let host = ctx.services.external_url.clone().unwrap_or_default();
        info["registry_url"] = json!(host.split("://").nth(1).unwrap_or(&host));
        info["external_url"] = json!(host);
        info["project_creation_restriction"] = json!(
            ctx.services
                .identity
                .settings
                .current()
                .await
                .map(|s| s.project_creation_restriction.clone())
                .unwrap_or_default()
        );
        info["has_ca_root"] = json!(false);
        info["read_only"] = json!(false);
        info["with_chartmuseum"] = json!(false);
        info["notification_enable"] = json!(false);
    }
    json(&info).into_response()
}

/// `GET /configurations`: each setting as `{value, editable}`.
pub async fn configurations(ctx: Ctx) -> Result<Response, HarborError> {
    let settings = System::new(ctx.services.identity.clone())
        .settings(&ctx.who)
        .await?;
    let items: serde_json::Map<String, serde_json::Value> = settings
        .to_values()
        .into_iter()
        .map(|(key, value)| {
            let editable = key != "auth_mode";
            (key, json!({ "value": value, "editable": editable }))
        })
        .collect();
    Ok(json(&items))
}

/// `PUT /configurations`: the keys given (others stay).
pub async fn update_configurations(ctx: Ctx, raw: Bytes) -> Result<Response, HarborError> {
    let values: BTreeMap<String, serde_json::Value> = body(&raw)?;
    System::new(ctx.services.identity.clone())
        .update_settings(&ctx.who, values)
        .await?;
    Ok(().into_response())
}

/// `GET /statistics`
pub async fn statistics(ctx: Ctx) -> Result<Response, HarborError> {
    let s = System::new(ctx.services.identity.clone())
        .statistics(&ctx.who)
        .await?;
    Ok(json(&json!({
        "private_project_count": s.private_projects,
        "private_repo_count": s.private_repositories,
        "public_project_count": s.public_projects,
        "public_repo_count": s.public_repositories,
        "total_project_count": s.private_projects + s.public_projects,
        "total_repo_count": s.private_repositories + s.public_repositories,
        "total_storage_consumption": s.stored_bytes,
    })))
}

/// `GET /search?q=`
pub async fn search(ctx: Ctx) -> Result<Response, HarborError> {
    let words = ctx.params.get("q").unwrap_or("").to_owned();
    let found = System::new(ctx.services.identity.clone())
        .search(&ctx.who, &words)
        .await?;
    let mut projects = Vec::with_capacity(found.projects.len());
    for project in &found.projects {
        projects.push(super::projects::project_json(&ctx, project).await?);
    }
    let repositories: Vec<serde_json::Value> = found
        .repositories
        .iter()
        .map(|(r, p)| {
            json!({
                "project_id": p.id,
                "project_name": p.name,
                "project_public": p.public,
                "repository_name": r.name.as_str(),
                "pull_count": r.pull_count,
                "artifact_count": r.artifact_count,
            })
        })
        .collect();
    Ok(json(
        &json!({ "project": projects, "repository": repositories }),
    ))
}
