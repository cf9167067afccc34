//! Harbor's management API v2.0 (`/api/v2.0`), answered with Harbor's paths, JSON
//! shapes, status codes, paging headers and error body. One module per resource;
//! each handler reads its request, calls one management use case and writes Harbor's
//! JSON.

mod artifacts;
mod audit;
mod context;
mod error;
mod gc;
mod immutable;
mod labels;
mod members;
mod metadata;
mod paging;
mod params;
mod projects;
mod query;
mod quotas;
mod repositories;
mod retention;
mod robots;
mod sessions;
mod system;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

pub use error::HarborError;

use crate::Services;

/// The browser login routes (`/c/login`, `/c/log_out`).
pub fn session_routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/c/login", axum::routing::post(sessions::login))
        .route("/c/log_out", get(sessions::logout))
}

/// The routes under `/api/v2.0`.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/ping", get(system::ping))
        .route("/health", get(system::health))
        .route("/systeminfo", get(system::info))
        .route(
            "/configurations",
            get(system::configurations).put(system::update_configurations),
        )
        .route("/statistics", get(system::statistics))
        .route("/system/gc", get(gc::list))
        .route(
            "/system/gc/schedule",
            get(gc::schedule)
                .post(gc::create_schedule)
                .put(gc::update_schedule),
        )
        .route("/system/gc/{gc_id}", get(gc::get).put(gc::stop))
        .route("/system/gc/{gc_id}/log", get(gc::log))
        .route("/search", get(system::search))
        .route("/users", get(users::list).post(users::create))
        .route("/users/current", get(users::current))
        .route("/users/current/permissions", get(users::permissions))
        .route("/users/search", get(users::search))
        .route(
            "/users/{user_id}",
            get(users::get).put(users::update).delete(users::delete),
        )
        .route("/users/{user_id}/password", put(users::password))
        .route("/users/{user_id}/sysadmin", put(users::sysadmin))
        .route(
            "/projects",
            get(projects::list)
                .post(projects::create)
                .head(projects::head),
        )
        .route(
            "/projects/{project}",
            get(projects::get)
                .put(projects::update)
                .delete(projects::delete),
        )
        .route("/projects/{project}/_deletable", get(projects::deletable))
        .route("/projects/{project}/summary", get(projects::summary))
        .route(
            "/projects/{project}/metadatas/",
            get(metadata::list).post(metadata::add),
        )
        .route(
            "/projects/{project}/metadatas/{meta_name}",
            get(metadata::get)
                .put(metadata::update)
                .delete(metadata::delete),
        )
        .route(
            "/projects/{project}/members",
            get(members::list).post(members::create),
        )
        .route(
            "/projects/{project}/members/{member_id}",
            get(members::get)
                .put(members::update)
                .delete(members::delete),
        )
        .route(
            "/projects/{project}/immutabletagrules",
            get(immutable::list).post(immutable::create),
        )
        .route(
            "/projects/{project}/immutabletagrules/{immutable_rule_id}",
            put(immutable::update).delete(immutable::delete),
        )
        .route("/retentions/metadatas", get(retention::metadatas))
        .route("/retentions", axum::routing::post(retention::create))
        .route(
            "/retentions/{id}",
            get(retention::get)
                .put(retention::update)
                .delete(retention::delete),
        )
        .route(
            "/retentions/{id}/executions",
            get(retention::executions).post(retention::trigger),
        )
        .route(
            "/retentions/{id}/executions/{eid}",
            axum::routing::patch(retention::operate),
        )
        .route(
            "/retentions/{id}/executions/{eid}/tasks",
            get(retention::tasks),
        )
        .route(
            "/retentions/{id}/executions/{eid}/tasks/{tid}",
            get(retention::task_log),
        )
        .route("/robots", get(robots::list).post(robots::create))
        .route(
            "/robots/{robot_id}",
            get(robots::get)
                .put(robots::update)
                .patch(robots::refresh)
                .delete(robots::delete),
        )
        .route("/audit-logs", get(audit::list))
        .route("/auditlog-exts", get(audit::list_ext))
        .route("/auditlog-exts/events", get(audit::event_types))
        .route("/projects/{project}/logs", get(audit::project))
        .route("/projects/{project}/auditlog-exts", get(audit::project_ext))
        .route("/repositories", get(repositories::list_all))
        .route("/projects/{project}/repositories", get(repositories::list))
        .route(
            "/projects/{project}/repositories/{repository}",
            get(repositories::get)
                .put(repositories::update)
                .delete(repositories::delete),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts",
            get(artifacts::list),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts/{reference}",
            get(artifacts::get).delete(artifacts::delete),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts/{reference}/tags",
            get(artifacts::tags).post(artifacts::create_tag),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts/{reference}/tags/{tag}",
            axum::routing::delete(artifacts::delete_tag),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts/{reference}/accessories",
            get(artifacts::accessories),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts/{reference}/labels",
            axum::routing::post(labels::add_to_artifact),
        )
        .route(
            "/projects/{project}/repositories/{repository}/artifacts/{reference}/labels/{label_id}",
            axum::routing::delete(labels::remove_from_artifact),
        )
        .route("/quotas", get(quotas::list))
        .route("/quotas/{id}", get(quotas::get).put(quotas::update))
        .route("/labels", get(labels::list).post(labels::create))
        .route(
            "/labels/{label_id}",
            get(labels::get).put(labels::update).delete(labels::delete),
        )
        .fallback(not_found)
        .layer(axum::middleware::map_response(no_sniff))
}

/// Every management answer is data, never a document to sniff and render: stored
/// text such as a repository description cannot turn into script.
async fn no_sniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

async fn not_found() -> HarborError {
    HarborError::not_found("no such API endpoint")
}

/// A JSON answer.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

/// `201 Created` with the new resource's `Location`.
pub fn created(location: String) -> Response {
    (StatusCode::CREATED, [(header::LOCATION, location)]).into_response()
}

/// Reads a JSON body; fields the API does not take are ignored (never assigned).
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HarborError> {
    serde_json::from_slice(bytes)
        .map_err(|e| HarborError::bad_request(format!("invalid request body: {e}")))
}

/// Reads a field's `null` as its default, as Harbor (Go) reads a null into a string or
/// number: clients send `"old_password": null` when an administrator resets a password.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
