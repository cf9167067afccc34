//! Liveness and readiness probes.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use berth_app::Registry;
use http::StatusCode;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the metadata store and blob store both answer.
pub async fn readyz(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    match registry.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n"))
        }
    }
}
