//! `/ping`, `/health`, `/systeminfo`.

use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::context::Ctx;
use super::json;

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
