//! Harbor's browser login: `POST /c/login` (form `principal`, `password`) opens a
//! session in an HttpOnly cookie and hands out its CSRF token; `GET /c/log_out` ends
//! it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_app::identity::AuthError;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::error::HarborError;
use crate::Services;

/// The session cookie.
pub const SESSION_COOKIE: &str = "sid";
/// The cookie and header carrying the CSRF token.
pub const CSRF_COOKIE: &str = "__csrf";
/// The header unsafe requests of a session must send the token in.
pub const CSRF_HEADER: &str = "x-harbor-csrf-token";
/// Largest login form accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `POST /c/login`
pub async fn login(State(services): State<Arc<Services>>, req: Request) -> Response {
    let client = req.extensions().get::<crate::ClientAddr>().map(|c| c.0);
    let secure = services.scheme == "https";
    let body: Bytes = match axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => return HarborError::bad_request("the form is too large").into_response(),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let (Some(principal), Some(password)) = (field("principal"), field("password")) else {
        return HarborError::bad_request("principal and password are required").into_response();
    };
    let (_, session) = match services
        .identity
        .sessions
        .login(principal, password, client)
        .await
    {
        Ok(s) => s,
        Err(AuthError::BadCredentials) => return HarborError::unauthorized().into_response(),
        Err(AuthError::Throttled { retry_after_secs }) => {
            return HarborError::throttled(retry_after_secs).into_response();
        }
        Err(AuthError::Meta(e)) => return HarborError::internal(e).into_response(),
    };
    let flags = if secure { "; Secure" } else { "" };
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for value in [
        format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{flags}",
            session.id, session.max_age_secs
        ),
        format!(
            "{CSRF_COOKIE}={}; Path=/; Max-Age={}; SameSite=Strict{flags}",
            session.csrf, session.max_age_secs
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&session.csrf) {
        headers.insert(CSRF_HEADER, v);
    }
    response
}

/// `GET /c/log_out`
pub async fn logout(State(services): State<Arc<Services>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = services.identity.sessions.logout(id).await
    {
        return HarborError::internal(e).into_response();
    }
    let mut response = StatusCode::OK.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0")) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}
