//! Who may do what on `/v2/`: the caller is established from its credentials, and
//! each endpoint's access is checked against it before any handler runs.

use berth_app::identity::{AuthError, Caller, CallerError, Decision};
use berth_authz::RegistryAction;
use berth_oci::RepositoryName;
use http::header;
use http::request::Parts;

use crate::Services;
use crate::credentials::{challenge, credentials};
use crate::endpoint::{Access, Endpoint};
use crate::error::{ApiError, Kind};

/// Establishes the caller and checks it may perform `endpoint`'s access; the error
/// is the answer to send.
pub async fn admit(
    services: &Services,
    endpoint: &Endpoint,
    parts: &Parts,
) -> Result<Caller, ApiError> {
    let access = &services.identity.access;
    if access.is_open() {
        return Ok(Caller::Anonymous);
    }
    let refuse = |scope: Option<String>, error: Option<&str>, message: &str| {
        ApiError::new(Kind::Unauthorized, message).with_header(
            header::WWW_AUTHENTICATE,
            challenge(
                services,
                &parts.headers,
                &parts.uri,
                scope.as_deref(),
                error,
            ),
        )
    };
    // Built only for a refusal: an allowed request pays nothing for it.
    let scope = || {
        endpoint
            .repository()
            .map(|r| scope_for(r, endpoint.access(&parts.method)))
    };
    let creds = credentials(&parts.headers)
        .map_err(|_| refuse(scope(), None, "malformed Authorization header"))?;
    let client = parts.extensions.get::<crate::ClientAddr>().map(|c| c.0);
    let caller = match access.caller(&creds, client).await {
        Ok(caller) => caller,
        Err(CallerError::Login(AuthError::Throttled { retry_after_secs })) => {
            return Err(throttled(retry_after_secs));
        }
        Err(CallerError::Login(AuthError::Meta(e))) => {
            return Err(ApiError::new(Kind::Internal, e.to_string()));
        }
        Err(CallerError::Login(AuthError::BadCredentials)) => {
            return Err(refuse(scope(), None, "authentication required"));
        }
        Err(CallerError::Token(e)) => {
            return Err(refuse(scope(), Some("invalid_token"), &e.to_string()));
        }
    };
    let (repository, action) = match (endpoint.repository(), endpoint.access(&parts.method)) {
        (Some(repository), access) => (repository, registry_action(access)),
        // The version check tells clients whether they must log in.
        (None, Access::None) if caller.is_anonymous() => {
            return Err(refuse(None, None, "authentication required"));
        }
        // The catalog shows each caller what it may read.
        (None, _) => return Ok(caller),
    };
    let decision = access
        .registry(&caller, repository, action)
        .await
        .map_err(|e| ApiError::new(Kind::Internal, e.to_string()))?;
    if decision == Decision::Allowed {
        return Ok(caller);
    }
    let denied = format!(
        "requested access to the resource is denied: {} on {repository} needs the project \
         {:?} to exist (create it first) and the permission to {} there",
        action.as_str(),
        repository.project(),
        action.as_str()
    );
    if missing_for_admin(services, &caller, repository, decision).await? {
        return Err(ApiError::new(
            Kind::NameUnknown,
            format!(
                "project {:?} not found: create it (Harbor API POST /api/v2.0/projects) \
                 before pushing to {repository}",
                repository.project()
            ),
        ));
    }
    Err(match caller {
        Caller::Anonymous => refuse(scope(), None, "authentication required"),
        Caller::Token(_) => refuse(scope(), Some("insufficient_scope"), &denied),
        Caller::Account(_) => ApiError::new(Kind::Denied, denied),
    })
}

/// Whether a system administrator is refused only because the project is missing:
/// only they learn that (others get the same answer whether it exists or not).
async fn missing_for_admin(
    services: &Services,
    caller: &Caller,
    repository: &RepositoryName,
    decision: Decision,
) -> Result<bool, ApiError> {
    let internal = |e: berth_meta::MetaError| ApiError::new(Kind::Internal, e.to_string());
    let admin = match caller {
        Caller::Anonymous => false,
        Caller::Account(a) => a.principal.is_sysadmin(),
        Caller::Token(t) if t.subject.is_empty() => false,
        Caller::Token(t) => services
            .identity
            .authenticator
            .account(&t.subject)
            .await
            .map_err(internal)?
            .is_some_and(|a| a.principal.is_sysadmin()),
    };
    if !admin {
        return Ok(false);
    }
    if decision == Decision::ProjectMissing {
        return Ok(true);
    }
    let project = services
        .identity
        .directory
        .project(repository.project())
        .await
        .map_err(internal)?;
    Ok(project.is_none())
}

/// The answer to a client that failed to log in too often.
pub fn throttled(retry_after_secs: u64) -> ApiError {
    ApiError::new(
        Kind::Overloaded,
        format!("too many failed logins; retry in {retry_after_secs} s"),
    )
    .with_header(header::RETRY_AFTER, retry_after_secs.to_string())
}

/// The registry action an endpoint's access needs.
fn registry_action(access: Access) -> RegistryAction {
    match access {
        Access::Push => RegistryAction::Push,
        Access::Delete => RegistryAction::Delete,
        Access::None | Access::Catalog | Access::Pull => RegistryAction::Pull,
    }
}

/// The scope a challenge names for `access` to `repository`.
fn scope_for(repository: &RepositoryName, access: Access) -> String {
    let actions = match access {
        Access::Push => "pull,push",
        Access::Delete => "delete",
        Access::None | Access::Catalog | Access::Pull => "pull",
    };
    format!("repository:{repository}:{actions}")
}

/// Whether `caller` may read `repository` (mount sources).
pub async fn may_pull(
    services: &Services,
    caller: &Caller,
    repository: &RepositoryName,
) -> Result<bool, ApiError> {
    services
        .identity
        .access
        .registry(caller, repository, RegistryAction::Pull)
        .await
        .map(|d| d == Decision::Allowed)
        .map_err(|e| ApiError::new(Kind::Internal, e.to_string()))
}
