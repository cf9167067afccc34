//! Access decisions for the registry API and the token endpoint.

use std::net::IpAddr;
use std::sync::Arc;

use berth_authz::{Principal, ProjectRef, RegistryAction, Scope, ScopeKind, effective_permissions};
use berth_meta::{MetaError, Visibility};
use berth_oci::RepositoryName;

use super::authenticate::{AuthError, Authenticator};
use super::caller::{Account, Caller};
use super::directory::Directory;
use super::settings::Settings;
use super::tokens::{GrantedAccess, IssuedToken, TokenError, Tokens};
use crate::Clock;

/// Refresh tokens live this long (seconds).
const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;

/// What a request carried to say who it comes from (a bearer token is borrowed from
/// the request: the hot path allocates nothing for it).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// Nothing.
    None,
    /// `Authorization: Basic`.
    Basic {
        /// Login or robot name.
        name: String,
        /// Password or secret.
        password: String,
    },
    /// `Authorization: Bearer`.
    Bearer(&'a str),
}

impl std::fmt::Debug for Credentials<'_> {
    /// Names the kind and the login, never a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { name, .. } => write!(f, "Basic({name:?}, <secret>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<token>)"),
        }
    }
}

/// The answer to "may this caller do that in this repository?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Not with these credentials.
    Denied,
    /// The repository's project does not exist.
    ProjectMissing,
}

/// Why a caller could not be established.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallerError {
    /// Bad password or secret, or throttled.
    #[error(transparent)]
    Login(#[from] AuthError),
    /// A bearer token that is not valid.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Tokens as the token endpoint hands them out.
/// Not `Debug`: it holds bearer tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The access token.
    pub token: IssuedToken,
    /// A refresh token, when one was asked for.
    pub refresh_token: Option<String>,
}

/// Decides who a caller is and what it may do in the registry.
pub struct AccessControl {
    open: bool,
    directory: Arc<Directory>,
    authenticator: Arc<Authenticator>,
    tokens: Arc<Tokens>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
}

impl AccessControl {
    /// Access control; in `open` mode every registry request is allowed.
    pub fn new(
        open: bool,
        directory: Arc<Directory>,
        authenticator: Arc<Authenticator>,
        tokens: Arc<Tokens>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        AccessControl {
            open,
            directory,
            authenticator,
            tokens,
            settings,
            clock,
        }
    }

    /// Whether every registry request is allowed (`auth.mode = "open"`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The token service.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Establishes the caller from its credentials.
    pub async fn caller(
        &self,
        credentials: &Credentials<'_>,
        client: Option<IpAddr>,
    ) -> Result<Caller, CallerError> {
        match credentials {
            Credentials::None => Ok(Caller::Anonymous),
            Credentials::Basic { name, password } => Ok(Caller::Account(
                self.authenticator.login(name, password, client).await?,
            )),
            Credentials::Bearer(token) => {
                Ok(Caller::Token(self.tokens.verify(token, self.now_secs())?))
            }
        }
    }

    /// Whether `caller` may perform `action` in `repository`.
    pub async fn registry(
        &self,
        caller: &Caller,
        repository: &RepositoryName,
        action: RegistryAction,
    ) -> Result<Decision, MetaError> {
        if self.open {
            return Ok(Decision::Allowed);
        }
        let principal = match caller {
            Caller::Token(token) => {
                return Ok(if token.allows(repository.as_str(), action.as_str()) {
                    Decision::Allowed
                } else {
                    Decision::Denied
                });
            }
            Caller::Anonymous => &Principal::Anonymous,
            Caller::Account(account) => &account.principal,
        };
        let Some(project) = self.directory.project(repository.project()).await? else {
            return Ok(Decision::ProjectMissing);
        };
        let project = ProjectRef {
            id: project.id,
            public: project.public,
        };
        Ok(
            if berth_authz::allowed(principal, Some(project), action.permission()) {
                Decision::Allowed
            } else {
                Decision::Denied
            },
        )
    }

    /// Which projects' repositories `caller` may see in the catalog.
    pub async fn catalog_visibility(&self, caller: &Caller) -> Result<Visibility, MetaError> {
        if self.open {
            return Ok(Visibility::All);
        }
        let account = match caller {
            Caller::Anonymous => return Ok(Visibility::PublicOnly),
            Caller::Token(token) if token.subject.is_empty() || !token.allows_catalog() => {
                return Ok(Visibility::PublicOnly);
            }
            Caller::Token(token) => match self.authenticator.account(&token.subject).await? {
                Some(account) => account,
                None => return Ok(Visibility::PublicOnly),
            },
            Caller::Account(account) => account.clone(),
        };
        Ok(visibility_of(&account))
    }

    /// Logs in for the token endpoint (Basic credentials, or none for anonymous).
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<Account>, AuthError> {
        self.authenticator.login(name, password, client).await
    }

    /// The account a refresh token was issued to, if it may still log in with the
    /// credentials it had then.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Arc<Account>, CallerError> {
        let (subject, stamp) = self.tokens.verify_refresh(refresh_token, self.now_secs())?;
        let current = self
            .authenticator
            .stamp(&subject)
            .await
            .map_err(AuthError::from)?;
        if current.as_deref() != Some(stamp.as_str()) {
            return Err(CallerError::Login(AuthError::BadCredentials));
        }
        self.authenticator
            .account(&subject)
            .await
            .map_err(AuthError::from)?
            .ok_or(CallerError::Login(AuthError::BadCredentials))
    }

    /// Issues a token granting the part of `scopes` that `account` (or an anonymous
    /// caller) may do, with a refresh token when `offline` is asked for.
    pub async fn issue(
        &self,
        account: Option<&Account>,
        scopes: &[Scope],
        offline: bool,
    ) -> Result<TokenGrant, MetaError> {
        let mut access = Vec::new();
        for scope in scopes {
            if let Some(granted) = self.grant(account, scope).await? {
                access.push(granted);
            }
        }
        let settings = self.settings.current().await?;
        let now = self.now_secs();
        let subject = account.map_or("", |a| a.name.as_str());
        let token = self
            .tokens
            .issue(subject, access, settings.token_expiration * 60, now);
        let refresh_token = match account {
            Some(account) if offline => {
                let stamp = self.authenticator.stamp(&account.name).await?;
                stamp.map(|s| {
                    self.tokens
                        .issue_refresh(subject, &s, REFRESH_TTL_SECS, now)
                })
            }
            _ => None,
        };
        Ok(TokenGrant {
            token,
            refresh_token,
        })
    }

    async fn grant(
        &self,
        account: Option<&Account>,
        scope: &Scope,
    ) -> Result<Option<GrantedAccess>, MetaError> {
        let principal = account.map_or(&Principal::Anonymous, |a| &a.principal);
        let actions: Vec<String> = match &scope.kind {
            ScopeKind::Registry if scope.name == "catalog" => vec!["*".into()],
            ScopeKind::Repository => {
                let Ok(repository) = RepositoryName::parse(&scope.name) else {
                    return Ok(None);
                };
                let held = match self.directory.project(repository.project()).await? {
                    _ if self.open => berth_authz::PermissionSet::all(),
                    Some(p) => effective_permissions(
                        principal,
                        Some(ProjectRef {
                            id: p.id,
                            public: p.public,
                        }),
                    ),
                    None => berth_authz::PermissionSet::empty(),
                };
                let mut granted: Vec<String> = Vec::new();
                for requested in &scope.actions {
                    for action in RegistryAction::from_scope_action(requested).unwrap_or(&[]) {
                        let name = action.as_str().to_owned();
                        if held.contains(action.permission()) && !granted.contains(&name) {
                            granted.push(name);
                        }
                    }
                }
                granted
            }
            _ => return Ok(None),
        };
        Ok((!actions.is_empty()).then(|| GrantedAccess {
            kind: scope.kind.as_str().to_owned(),
            name: scope.name.clone(),
            actions,
        }))
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_ms() / 1000
    }
}

/// The projects an account may list.
pub fn visibility_of(account: &Account) -> Visibility {
    match &account.principal {
        Principal::User(u) if u.sysadmin => Visibility::All,
        Principal::User(u) => Visibility::PublicOrMemberOf(u.user_id),
        Principal::Robot(r)
            if r.all_projects
                .contains(berth_authz::RegistryAction::Pull.permission()) =>
        {
            Visibility::All
        }
        Principal::Robot(r) => Visibility::PublicOr(r.projects.keys().copied().collect()),
        Principal::Anonymous => Visibility::PublicOnly,
    }
}
