//! The HTTP surface: `/v2/` (the OCI distribution API), `/healthz`, `/readyz`.
//!
//! Every `/v2/` request goes through one catch-all route and a parser into an
//! [`Endpoint`], which names the operation and the access it needs; handlers are thin:
//! they extract, call one `Registry` method and map the result. Errors become HTTP
//! responses in exactly one place (`error.rs`).
//!
//! Architecture invariant: only this crate (and later the UI) speaks HTTP.

mod endpoint;
mod error;
mod health;
mod held_body;
mod query;
mod request_checks;
mod request_limits;
mod request_log;
mod v2;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use berth_app::Registry;

pub use endpoint::{Access, Endpoint};

/// The address of the client that sent a request, which the listener puts in its
/// extensions (limits per client use it; without it, none apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Builds the complete HTTP application over a registry.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v2", axum::routing::any(v2::dispatch))
        .route("/v2/", axum::routing::any(v2::dispatch))
        .route("/v2/{*rest}", axum::routing::any(v2::dispatch))
        .layer(axum::middleware::from_fn(request_checks::check))
        .layer(axum::middleware::from_fn(request_log::log_request))
        .with_state(registry)
}
