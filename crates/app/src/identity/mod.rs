//! Identity and access: accounts, robots, projects' members and roles, tokens, and
//! the decisions built on them. Each part is a service of its own; [`Identity`] wires
//! them together and bootstraps a fresh database (roles, settings, first admin).

mod access;
mod actor;
mod authenticate;
mod caller;
mod directory;
mod htpasswd;
mod passwords;
mod sessions;
mod settings;
mod throttle;
mod tokens;

use std::sync::Arc;

use berth_meta::{
    ArtifactStore, AuditStore, LabelStore, MetaError, NewUser, ProjectStore, RobotStore, Role,
    SessionStore, SettingsStore, UserError, UserStore,
};

pub use access::{AccessControl, CallerError, Credentials, Decision, TokenGrant, visibility_of};
pub use actor::Actor;
pub use authenticate::{AuthError, Authenticator, AuthenticatorParts};
pub use caller::{Account, Caller};
pub use directory::Directory;
pub use htpasswd::{Htpasswd, HtpasswdError};
pub use passwords::{HashCost, InvalidCost, Passwords, WeakPassword, check_policy, random_secret};
pub use sessions::{ActiveSession, NewSession, Sessions};
pub use settings::{Settings, SettingsError, SystemSettings};
pub use tokens::{
    GrantedAccess, IssuedToken, KeyError, SigningKey, TokenError, Tokens, VerifiedToken,
};

use crate::Clock;

/// The login name of the first administrator.
pub const FIRST_ADMIN: &str = "admin";

/// The stores identity works on, one per aggregate.
#[derive(Clone)]
pub struct IdentityStores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Projects, members, roles.
    pub projects: Arc<dyn ProjectStore>,
    /// Robots.
    pub robots: Arc<dyn RobotStore>,
    /// System settings.
    pub settings: Arc<dyn SettingsStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Repositories and artifacts as the management API shows them.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Labels and the labels artifacts carry.
    pub labels: Arc<dyn LabelStore>,
    /// Browser sessions.
    pub sessions: Arc<dyn SessionStore>,
}

/// How identity is set up.
pub struct IdentityConfig {
    /// Every registry request is allowed (`auth.mode = "open"`).
    pub open: bool,
    /// Cost of argon2id hashing.
    pub hash_cost: HashCost,
    /// The first administrator's password; generated when absent.
    pub admin_password: Option<String>,
    /// Extra users from an htpasswd file.
    pub htpasswd: Option<Htpasswd>,
    /// The token signing key (PEM).
    pub signing_key_pem: String,
    /// The token issuer name.
    pub issuer: String,
    /// The service name tokens are issued for.
    pub service: String,
    /// Settings stored at first start.
    pub initial_settings: SystemSettings,
}

/// Why identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The hashing cost is invalid.
    #[error(transparent)]
    Cost(#[from] InvalidCost),
    /// The signing key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The configured admin password breaks the password policy.
    #[error("admin_password: {0}")]
    WeakAdminPassword(WeakPassword),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What the first start did that its operator must learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// An administrator already existed.
    AdminExisted,
    /// The administrator was created with the configured password.
    AdminCreated,
    /// The administrator was created with this generated password, shown once.
    AdminCreatedWithPassword(String),
}

/// The identity services.
pub struct Identity {
    /// The stores.
    pub stores: IdentityStores,
    /// Hashing.
    pub passwords: Arc<Passwords>,
    /// System settings.
    pub settings: Arc<Settings>,
    /// Cached projects and roles.
    pub directory: Arc<Directory>,
    /// Credential checks.
    pub authenticator: Arc<Authenticator>,
    /// Registry access decisions and tokens.
    pub access: Arc<AccessControl>,
    /// Browser sessions.
    pub sessions: Arc<Sessions>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    initial_settings: SystemSettings,
    admin_password: Option<String>,
}

impl Identity {
    /// Identity over `stores`; [`Identity::bootstrap`] prepares a fresh database.
    pub fn new(
        stores: IdentityStores,
        config: IdentityConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IdentityError> {
        let passwords = Arc::new(Passwords::new(config.hash_cost)?);
        let settings = Arc::new(Settings::new(stores.settings.clone()));
        let directory = Arc::new(Directory::new(stores.projects.clone()));
        let authenticator = Arc::new(Authenticator::new(AuthenticatorParts {
            users: stores.users.clone(),
            robots: stores.robots.clone(),
            directory: directory.clone(),
            settings: settings.clone(),
            passwords: passwords.clone(),
            htpasswd: config.htpasswd,
            clock: clock.clone(),
        }));
        let key = SigningKey::from_pem(&config.signing_key_pem)?;
        let tokens = Arc::new(Tokens::new(key, &config.issuer, &config.service));
        let access = Arc::new(AccessControl::new(
            config.open,
            directory.clone(),
            authenticator.clone(),
            tokens,
            settings.clone(),
            clock.clone(),
        ));
        let sessions = Arc::new(Sessions::new(
            stores.sessions.clone(),
            authenticator.clone(),
            clock.clone(),
        ));
        Ok(Identity {
            sessions,
            stores,
            passwords,
            settings,
            directory,
            authenticator,
            access,
            clock,
            initial_settings: config.initial_settings,
            admin_password: config.admin_password,
        })
    }

    /// Drops what this node cached of accounts, projects, roles and settings when the
    /// store's change mark moved since `seen` (another node changed some), and keeps the
    /// new mark in `seen`. Run every second or so, it bounds how long a change made on
    /// another node (a password, a membership, a disabled robot) goes unseen here.
    pub async fn follow_changes(&self, seen: &mut Option<i64>) -> Result<(), MetaError> {
        let mark = self.stores.audit.change_mark().await?;
        if seen.is_some_and(|s| s != mark) {
            self.authenticator.forget_all();
            self.directory.forget_all();
            self.settings.expire();
        }
        *seen = Some(mark);
        Ok(())
    }

    /// Stores the built-in roles and the first settings, and creates the first
    /// administrator when there is none. Safe to run at every start.
    pub async fn bootstrap(&self) -> Result<Bootstrap, IdentityError> {
        self.stores.projects.seed_roles(&builtin_roles()).await?;
        self.settings.seed(&self.initial_settings).await?;
        create_first_admin(
            self.stores.users.as_ref(),
            &self.passwords,
            self.admin_password.as_deref(),
            self.clock.now_ms(),
        )
        .await
    }
}

/// Harbor's built-in roles, as the store keeps them.
fn builtin_roles() -> Vec<Role> {
    berth_authz::builtin_roles()
        .into_iter()
        .map(|role| Role {
            id: role.id,
            name: role.name.to_owned(),
            permissions: role
                .permissions
                .iter()
                .map(|p| (p.resource.as_str().to_owned(), p.action.as_str().to_owned()))
                .collect(),
        })
        .collect()
}

/// Creates the first administrator when there is none, with `password` or a
/// generated one.
async fn create_first_admin(
    users: &dyn UserStore,
    passwords: &Passwords,
    password: Option<&str>,
    now: i64,
) -> Result<Bootstrap, IdentityError> {
    if let Some(p) = password {
        check_policy(p).map_err(IdentityError::WeakAdminPassword)?;
    }
    let chosen = password.map_or_else(|| random_secret(20), str::to_owned);
    let admin = NewUser {
        username: FIRST_ADMIN.into(),
        email: String::new(),
        realname: "system admin".into(),
        comment: "the first administrator".into(),
        password_hash: passwords.hash(&chosen),
        sysadmin: true,
    };
    match users.create_first_admin(&admin, now).await {
        Ok(false) => Ok(Bootstrap::AdminExisted),
        Ok(true) if password.is_some() => Ok(Bootstrap::AdminCreated),
        Ok(true) => Ok(Bootstrap::AdminCreatedWithPassword(chosen)),
        Err(UserError::Meta(e)) => Err(e.into()),
        // A user named `admin` exists without being an administrator.
        Err(e) => Err(MetaError(e.to_string()).into()),
    }
}
