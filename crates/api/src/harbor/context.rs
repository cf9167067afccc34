//! What every Harbor API handler starts from: the services, who calls (Basic
//! credentials, a browser session, or nobody), and the query parameters.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use berth_app::identity::{AuthError, Caller, CallerError, Credentials};
use berth_app::manage::Requester;
use http::request::Parts;

use super::error::HarborError;
use super::params::Params;
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

impl FromRequestParts<Arc<Services>> for Ctx {
    type Rejection = HarborError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts.extensions.get::<crate::ClientAddr>().map(|c| c.0);
        let caller = match credentials(&parts.headers).map_err(|_| HarborError::unauthorized())? {
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
        let by_name = parts
            .headers
            .get("x-is-resource-name")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        Ok(Ctx {
            services: services.clone(),
            who: Requester::new(&caller, client),
            params: Params::parse(parts.uri.query()),
            by_name,
        })
    }
}
