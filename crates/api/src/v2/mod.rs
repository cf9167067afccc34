//! The OCI distribution API: one dispatcher over the parsed [`Endpoint`].

mod blobs;
mod gate;
mod listing;
mod manifests;
mod uploads;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_app::Registry;
use berth_app::identity::Caller;
use berth_oci::{Digest, RepositoryName};
use http::{HeaderMap, HeaderValue, Method, header};

use crate::Services;
use crate::endpoint::{Endpoint, RouteError};
use crate::error::{ApiError, Kind};
use crate::query::Query;

pub use gate::throttled;
pub use uploads::upload_range;

/// Sent on every `/v2/` response, as Docker clients expect.
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// What each handler gets: the registry, the parsed request pieces and the body.
pub struct Call<'a> {
    registry: &'a Arc<Registry>,
    services: &'a Services,
    /// Who sent the request (anonymous in open mode).
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    query: Query<'a>,
    body: Body,
    /// The client's address, when the listener named it.
    client: Option<std::net::IpAddr>,
}

/// Entry point of every `/v2/...` request.
pub async fn dispatch(State(services): State<Arc<Services>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let result = match Endpoint::parse(rest) {
        Ok(endpoint) => {
            tracing::Span::current().record("endpoint", endpoint.label());
            match gate::admit(&services, &endpoint, &parts).await {
                Ok(caller) => {
                    let call = Call {
                        registry: &services.registry,
                        services: &services,
                        caller,
                        method: parts.method.clone(),
                        query: Query::parse(parts.uri.query()),
                        headers: parts.headers,
                        body,
                        client: parts.extensions.get::<crate::ClientAddr>().map(|c| c.0),
                    };
                    route(endpoint, call).await
                }
                Err(e) => Err(e),
            }
        }
        Err(RouteError::Name(e)) => Err(ApiError::new(Kind::NameInvalid, e.to_string())),
        Err(RouteError::NotFound) => Err(ApiError::new(Kind::EndpointUnknown, "no such endpoint")),
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    response
}

async fn route(endpoint: Endpoint, call: Call<'_>) -> Result<Response, ApiError> {
    use Method as M;
    let m = call.method.clone();
    // HEAD is answered like GET; the router drops the body.
    let read = m == M::GET || m == M::HEAD;
    match endpoint {
        Endpoint::Base if read => Ok(json_response(b"{}".to_vec())),
        Endpoint::Catalog if read => listing::catalog(call).await,
        Endpoint::Tags(name) if read => listing::tags(call, name).await,
        Endpoint::Referrers(name, digest) if read => listing::referrers(call, name, &digest).await,
        Endpoint::Blob(name, digest) if m == M::GET || m == M::HEAD => {
            blobs::get(call, name, &digest).await
        }
        Endpoint::Blob(name, digest) if m == M::DELETE => blobs::delete(call, name, &digest).await,
        Endpoint::UploadStart(name) if m == M::POST => uploads::start(call, name).await,
        Endpoint::Upload(name, id) if m == M::GET => uploads::status(call, name, &id).await,
        Endpoint::Upload(name, id) if m == M::PATCH => uploads::patch(call, name, &id).await,
        Endpoint::Upload(name, id) if m == M::PUT => uploads::complete(call, name, &id).await,
        Endpoint::Upload(name, id) if m == M::DELETE => uploads::cancel(call, name, &id).await,
        Endpoint::Manifest(name, r) if m == M::GET || m == M::HEAD => {
            manifests::get(call, name, &r).await
        }
        Endpoint::Manifest(name, r) if m == M::PUT => manifests::put(call, name, &r).await,
        Endpoint::Manifest(name, r) if m == M::DELETE => manifests::delete(call, name, &r).await,
        other => Err(method_not_allowed(&other)),
    }
}

impl Call<'_> {
    /// Who the audit log names for this request.
    fn actor(&self) -> berth_app::identity::Actor {
        berth_app::identity::Actor::new(self.caller.name(), self.client)
    }
}

fn method_not_allowed(endpoint: &Endpoint) -> ApiError {
    let allow = match endpoint {
        Endpoint::Base | Endpoint::Catalog | Endpoint::Tags(_) | Endpoint::Referrers(..) => {
            "GET, HEAD"
        }
        Endpoint::Blob(..) => "GET, HEAD, DELETE",
        Endpoint::UploadStart(_) => "POST",
        Endpoint::Upload(..) => "GET, PATCH, PUT, DELETE",
        Endpoint::Manifest(..) => "GET, HEAD, PUT, DELETE",
    };
    ApiError::new(
        Kind::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
    .with_header(header::ALLOW, allow)
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn parse_digest(raw: &str) -> Result<Digest, ApiError> {
    Digest::parse(raw).map_err(|e| ApiError::new(Kind::DigestInvalid, e.to_string()))
}

fn parse_name(raw: &str) -> Result<RepositoryName, ApiError> {
    RepositoryName::parse(raw).map_err(|e| ApiError::new(Kind::NameInvalid, e.to_string()))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}
