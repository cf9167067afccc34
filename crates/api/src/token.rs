//! `/service/token`: the registry's token endpoint. `GET` with Basic credentials (or
//! none, for anonymous pulls) as the Docker token specification describes, and `POST`
//! with the OAuth2 password and refresh-token grants.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_app::identity::{Account, AuthError, CallerError, Credentials, TokenGrant};
use berth_authz::{Scope, parse_scope};
use http::{Method, StatusCode, header};
use serde_json::json;

use crate::Services;
use crate::credentials::credentials;
use crate::error::{ApiError, Kind};
use crate::time_format::rfc3339;

/// Largest OAuth2 form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// `GET` or `POST /service/token`.
pub async fn token(State(services): State<Arc<Services>>, req: Request) -> Response {
    let result = if req.method() == Method::POST {
        oauth(&services, req).await
    } else if req.method() == Method::GET {
        docker(&services, req).await
    } else {
        Err(ApiError::new(Kind::MethodNotAllowed, "use GET or POST")
            .with_header(header::ALLOW, "GET, POST"))
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The Docker token flow: Basic credentials or none, scopes in the query.
async fn docker(services: &Services, req: Request) -> Result<Response, ApiError> {
    let client = req.extensions().get::<crate::ClientAddr>().map(|c| c.0);
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let scopes = scopes(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let account = match credentials(req.headers()) {
        Ok(Credentials::None) => None,
        Ok(Credentials::Basic { name, password }) => {
            Some(login(services, &name, &password, client).await?)
        }
        Ok(Credentials::Bearer(_)) | Err(_) => {
            return Err(ApiError::new(
                Kind::Unauthorized,
                "send Basic credentials, or none for anonymous access",
            ));
        }
    };
    let offline = value("offline_token") == Some("true");
    let grant = issue(services, account.as_deref(), &scopes, offline).await?;
    let mut body = json!({
        "token": grant.token.token,
        "access_token": grant.token.token,
        "expires_in": grant.token.expires_in,
        "issued_at": rfc3339(grant.token.issued_at * 1000),
    });
    if let Some(refresh) = grant.refresh_token {
        body["refresh_token"] = refresh.into();
    }
    Ok(no_store(body))
}

/// The OAuth2 flow: `grant_type=password` or `refresh_token` in a form body.
async fn oauth(services: &Services, req: Request) -> Result<Response, ApiError> {
    let client = req.extensions().get::<crate::ClientAddr>().map(|c| c.0);
    let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::new(Kind::TooLarge, "the form is too large"))?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let scopes = scopes(value("scope").into_iter().flat_map(|s| s.split(' ')));
    let (account, offline, returned_refresh) = match value("grant_type") {
        Some("password") => {
            let (Some(name), Some(password)) = (value("username"), value("password")) else {
                return Ok(oauth_error(
                    "invalid_request",
                    "username and password are required",
                ));
            };
            let account = login(services, name, password, client).await?;
            (account, value("access_type") == Some("offline"), None)
        }
        Some("refresh_token") => {
            let Some(refresh) = value("refresh_token") else {
                return Ok(oauth_error("invalid_request", "refresh_token is required"));
            };
            let account = services
                .identity
                .access
                .refresh(refresh)
                .await
                .map_err(|e| match e {
                    CallerError::Login(AuthError::Meta(e)) => {
                        ApiError::new(Kind::Internal, e.to_string())
                    }
                    _ => ApiError::new(Kind::Unauthorized, "invalid refresh token"),
                })?;
            (account, false, Some(refresh.to_owned()))
        }
        _ => {
            return Ok(oauth_error(
                "unsupported_grant_type",
                "grant_type must be password or refresh_token",
            ));
        }
    };
    let grant = issue(services, Some(&account), &scopes, offline).await?;
    let granted: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    let mut body = json!({
        "access_token": grant.token.token,
        "scope": granted.join(" "),
        "expires_in": grant.token.expires_in,
        "issued_at": rfc3339(grant.token.issued_at * 1000),
    });
    if let Some(refresh) = grant.refresh_token.or(returned_refresh) {
        body["refresh_token"] = refresh.into();
    }
    Ok(no_store(body))
}

async fn login(
    services: &Services,
    name: &str,
    password: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Arc<Account>, ApiError> {
    services
        .identity
        .access
        .login(name, password, client)
        .await
        .map_err(|e| match e {
            AuthError::BadCredentials => {
                ApiError::new(Kind::Unauthorized, "invalid username or password")
            }
            AuthError::Throttled { retry_after_secs } => crate::v2::throttled(retry_after_secs),
            AuthError::Meta(e) => ApiError::new(Kind::Internal, e.to_string()),
        })
}

async fn issue(
    services: &Services,
    account: Option<&Account>,
    scopes: &[Scope],
    offline: bool,
) -> Result<TokenGrant, ApiError> {
    services
        .identity
        .access
        .issue(account, scopes, offline)
        .await
        .map_err(|e| ApiError::new(Kind::Internal, e.to_string()))
}

/// The scopes asked for; ones that do not parse are ignored (they grant nothing).
fn scopes<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<Scope> {
    raw.flat_map(|s| s.split(' '))
        .filter(|s| !s.is_empty())
        .filter_map(|s| parse_scope(s).ok())
        .collect()
}

/// An OAuth2 error answer (RFC 6749 §5.2).
fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}

fn no_store(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from(body.to_string()),
    )
        .into_response()
}
