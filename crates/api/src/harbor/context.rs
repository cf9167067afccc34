//! What every Harbor API handler starts from: the services, who calls (Basic
//! credentials, a browser session, or nobody), and the query parameters. API calls
//! with Basic credentials need no CSRF token; those riding a session cookie do.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use berth_app::identity::{AuthError, Caller, CallerError, Credentials};
use berth_app::manage::Requester;
use http::request::Parts;
use http::{Method, StatusCode, header};

use super::error::HarborError;
use super::params::Params;
use super::sessions::{CSRF_HEADER, SESSION_COOKIE, cookie};
use crate::Services;
use crate::credentials::credentials;

/// A Harbor API request's context.
pub struct Ctx {
    /// The services.
    pub services: Arc<Services>,
    /// Who calls.
    pub who: Requester,
    /// The query parameters.
    pub params: Params,
    /// Whether a numeric `{project_name_or_id}` is a name (`X-Is-Resource-Name`).
    pub by_name: bool,
}

impl Ctx {
    /// The context of a request authenticated by a session cookie; unsafe methods must
    /// carry the session's CSRF token, and a foreign `Origin` is refused.
    async fn from_session(
        parts: &Parts,
        services: &Arc<Services>,
        id: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Self, HarborError> {
        let session = services
            .identity
            .sessions
            .resolve(id)
            .await
            .map_err(HarborError::internal)?
            .ok_or_else(HarborError::unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let token = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_matches(token) || foreign_origin(parts) {
                return Err(HarborError::new(
                    StatusCode::FORBIDDEN,
                    "CSRF token invalid: send the session's X-Harbor-CSRF-Token",
                ));
            }
        }
        Ok(Ctx {
            services: services.clone(),
            who: Requester::new(&Caller::Account(session.account), client),
            params: Params::parse(parts.uri.query()),
            by_name: by_name(parts),
        })
    }
}

/// Whether `Origin` names another host than the request's.
fn foreign_origin(parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    origin.split_once("://").map(|(_, h)| h) != Some(host)
}

/// Whether `X-Is-Resource-Name` says a numeric path parameter is a name.
fn by_name(parts: &Parts) -> bool {
    parts
        .headers
        .get("x-is-resource-name")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

impl FromRequestParts<Arc<Services>> for Ctx {
    type Rejection = HarborError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts.extensions.get::<crate::ClientAddr>().map(|c| c.0);
        let creds = credentials(&parts.headers).map_err(|_| HarborError::unauthorized())?;
        if creds == Credentials::None
            && let Some(id) = cookie(&parts.headers, SESSION_COOKIE)
        {
            return Self::from_session(parts, services, id, client).await;
        }
        let caller = match creds {
            creds @ Credentials::Basic { .. } => services
                .identity
                .access
                .caller(&creds, client)
                .await
                .map_err(|e| match e {
                    CallerError::Login(AuthError::Throttled { retry_after_secs }) => {
                        HarborError::throttled(retry_after_secs)
                    }
                    CallerError::Login(AuthError::Meta(e)) => HarborError::internal(e),
                    _ => HarborError::unauthorized(),
                })?,
            Credentials::None => Caller::Anonymous,
            // Registry tokens are for `/v2/` only.
            Credentials::Bearer(_) => return Err(HarborError::unauthorized()),
        };
        Ok(Ctx {
            services: services.clone(),
            who: Requester::new(&caller, client),
            params: Params::parse(parts.uri.query()),
            by_name: by_name(parts),
        })
    }
}
