//! The HTTP surface: `/v2/` (the OCI distribution API), `/healthz`, `/readyz`.
//!
//! Every `/v2/` request goes through one catch-all route and a parser into an
//! [`Endpoint`], which names the operation and the access it needs; handlers are thin:
//! they extract, call one `Registry` method and map the result. Errors become HTTP
//! responses in exactly one place (`error.rs`).
//!
//! Architecture invariant: only this crate (and later the UI) speaks HTTP.

mod credentials;
mod endpoint;
mod error;
mod harbor;
mod health;
mod held_body;
mod query;
mod request_checks;
mod request_limits;
mod request_log;
mod time_format;
mod token;
mod v2;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use berth_app::Registry;
use berth_app::identity::Identity;

pub use endpoint::{Access, Endpoint};

/// The address of the client that sent a request, which the listener puts in its
/// extensions (limits per client use it; without it, none apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// What the HTTP application serves.
pub struct Services {
    /// The registry.
    pub registry: Arc<Registry>,
    /// Accounts, projects and access.
    pub identity: Arc<Identity>,
    /// The job queue: garbage collection's runs and schedule.
    pub jobs: Arc<dyn berth_meta::JobStore>,
    /// The URL clients reach Berth at (token realm, links); when absent, each
    /// request's own scheme and host.
    pub external_url: Option<String>,
    /// The scheme of this listener (`http` or `https`), for URLs built from requests.
    pub scheme: &'static str,
}

/// Builds the complete HTTP application.
pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/service/token", axum::routing::any(token::token))
        .nest("/api/v2.0", harbor::routes())
        .merge(harbor::session_routes())
        .route("/v2", axum::routing::any(v2::dispatch))
        .route("/v2/", axum::routing::any(v2::dispatch))
        .route("/v2/{*rest}", axum::routing::any(v2::dispatch))
        .layer(axum::middleware::from_fn(request_checks::check))
        .layer(axum::middleware::from_fn(request_log::log_request))
        .with_state(services)
}
