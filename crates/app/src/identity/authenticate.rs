//! Checking credentials and resolving accounts with their grants.
//!
//! A verified password or secret is remembered for [`REMEMBER`] under a keyed hash of
//! the name and password (never the password itself), so that Basic auth on every
//! `/v2/` request does not run argon2 each time. Every change to accounts, robots or
//! memberships on this node forgets what was remembered.
//!
//! Concurrent requests with the same credentials wait for one verification instead of
//! each running argon2, and at most one verification per core runs at a time (each
//! takes tens of megabytes), so a burst of logins neither stalls the server nor
//! grows its memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_authz::{Permission, PermissionSet, Principal, RobotGrants, UserGrants};
use berth_meta::{MetaError, NewUser, Robot, RobotStore, User, UserError, UserStore};
use ring::hmac;

use super::actor::Actor;
use super::caller::Account;
use super::directory::Directory;
use super::htpasswd::Htpasswd;
use super::passwords::Passwords;
use super::settings::Settings;
use super::throttle::LoginThrottle;
use crate::Clock;

/// How long a verified credential is remembered.
const REMEMBER: Duration = Duration::from_secs(10);
/// Credentials remembered at most.
const MAX_REMEMBERED: usize = 16_384;
/// The stored hash of users whose password lives in the htpasswd file.
pub(crate) const HTPASSWD_HASH: &str = "!htpasswd";

/// Why a login failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Unknown name, wrong password, disabled or expired account: deliberately one
    /// answer.
    #[error("invalid credentials")]
    BadCredentials,
    /// Too many failed logins from this address.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until logins are accepted again.
        retry_after_secs: u64,
    },
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Verified credentials by keyed hash, with when they were verified.
type Remembered = HashMap<[u8; 32], (Arc<Account>, Instant)>;

/// Checks credentials.
pub struct Authenticator {
    users: Arc<dyn UserStore>,
    robots: Arc<dyn RobotStore>,
    directory: Arc<Directory>,
    settings: Arc<Settings>,
    passwords: Arc<Passwords>,
    htpasswd: Option<Htpasswd>,
    clock: Arc<dyn Clock>,
    throttle: LoginThrottle,
    remember_key: hmac::Key,
    remembered: Mutex<Remembered>,
    /// Verifications in progress, by keyed hash of the credentials.
    in_flight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the hash verifications running at once.
    hashing: tokio::sync::Semaphore,
}

/// What an [`Authenticator`] reads.
pub struct AuthenticatorParts {
    /// User accounts.
    pub users: Arc<dyn UserStore>,
    /// Robot accounts.
    pub robots: Arc<dyn RobotStore>,
    /// Projects and roles.
    pub directory: Arc<Directory>,
    /// System settings (the robot name prefix).
    pub settings: Arc<Settings>,
    /// Hashing.
    pub passwords: Arc<Passwords>,
    /// Extra users from an htpasswd file.
    pub htpasswd: Option<Htpasswd>,
    /// Time, for robot expiry.
    pub clock: Arc<dyn Clock>,
}

impl Authenticator {
    /// An authenticator over `parts`.
    pub fn new(parts: AuthenticatorParts) -> Self {
        let secret: [u8; 32] = rand::random();
        Authenticator {
            users: parts.users,
            robots: parts.robots,
            directory: parts.directory,
            settings: parts.settings,
            passwords: parts.passwords,
            htpasswd: parts.htpasswd,
            clock: parts.clock,
            throttle: LoginThrottle::default(),
            remember_key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            remembered: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        }
    }

    /// Checks a name and password (or robot secret).
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<Account>, AuthError> {
        let key = self.remember_key(name, password);
        if let Some(account) = self.remembered(&key) {
            return Ok(account);
        }
        if let Some(c) = client
            && let Err(retry_after_secs) = self.throttle.begin(c)
        {
            return Err(AuthError::Throttled { retry_after_secs });
        }
        let flight = self
            .in_flight
            .lock()
            .expect("login flights lock")
            .entry(key)
            .or_default()
            .clone();
        let outcome = {
            let _turn = flight.lock().await;
            // Whoever went first may have verified these very credentials.
            match self.remembered(&key) {
                Some(account) => Ok(Some(account)),
                None => self.check(name, password).await,
            }
        };
        {
            let mut flights = self.in_flight.lock().expect("login flights lock");
            if Arc::strong_count(&flight) <= 2 {
                flights.remove(&key);
            }
        }
        let found = outcome?;
        if let (Some(_), Some(c)) = (&found, client) {
            self.throttle.succeeded(c);
        }
        match found {
            Some(account) => {
                self.remember(key, account.clone());
                Ok(account)
            }
            None => Err(AuthError::BadCredentials),
        }
    }

    /// The account named `name`, without checking a password (for refresh tokens and
    /// browser sessions, which were checked when issued); `None` when it no longer
    /// exists or may no longer log in.
    pub async fn account(&self, name: &str) -> Result<Option<Arc<Account>>, MetaError> {
        let prefix = self.settings.current().await?.robot_name_prefix.clone();
        if let Some(robot_name) = name.strip_prefix(prefix.as_str()) {
            let Some(robot) = self.robots.robot_by_name(robot_name).await? else {
                return Ok(None);
            };
            if !self.robot_usable(&robot) {
                return Ok(None);
            }
            return Ok(Some(Arc::new(self.robot_account(&robot, &prefix).await?)));
        }
        match self.users.user_by_name(name).await? {
            Some(user) => Ok(Some(Arc::new(self.user_account(&user).await?))),
            None => Ok(None),
        }
    }

    /// A stamp of the credentials account `name` has now (its id and stored hash,
    /// hashed): it changes when the password or secret does, or when the name is
    /// given to a new account. `None` when there is no such account.
    pub async fn stamp(&self, name: &str) -> Result<Option<String>, MetaError> {
        let prefix = self.settings.current().await?.robot_name_prefix.clone();
        let stored = match name.strip_prefix(prefix.as_str()) {
            Some(robot) => self
                .robots
                .robot_by_name(robot)
                .await?
                .map(|r| format!("robot:{}:{}", r.id, r.secret_hash)),
            None => self
                .users
                .user_by_name(name)
                .await?
                .map(|u| format!("user:{}:{}", u.id, u.password_hash)),
        };
        Ok(stored.map(|s| {
            use sha2::Digest as _;
            hex::encode(&sha2::Sha256::digest(s.as_bytes())[..16])
        }))
    }

    /// Forgets every remembered credential (after accounts, robots or memberships
    /// changed).
    pub fn forget_all(&self) {
        self.remembered
            .lock()
            .expect("credential cache lock")
            .clear();
    }

    async fn check(&self, name: &str, password: &str) -> Result<Option<Arc<Account>>, AuthError> {
        let prefix = self.settings.current().await?.robot_name_prefix.clone();
        if let Some(robot_name) = name.strip_prefix(prefix.as_str()) {
            let robot = self.robots.robot_by_name(robot_name).await?;
            let hash = robot.as_ref().map(|r| r.secret_hash.clone());
            if !self.verify(password, hash).await {
                return Ok(None);
            }
            let robot = robot.expect("a verified secret belongs to a robot");
            if !self.robot_usable(&robot) {
                return Ok(None);
            }
            return Ok(Some(Arc::new(self.robot_account(&robot, &prefix).await?)));
        }
        let user = self.users.user_by_name(name).await?;
        let from_file = self.htpasswd.as_ref().and_then(|h| h.hash(name));
        let stored = match (&user, from_file) {
            (Some(u), _) if u.password_hash != HTPASSWD_HASH => Some(u.password_hash.clone()),
            (_, Some(hash)) => Some(hash.to_owned()),
            _ => None,
        };
        if !self.verify(password, stored).await {
            return Ok(None);
        }
        let user = match user {
            Some(user) => user,
            None => self.onboard(name).await?,
        };
        Ok(Some(Arc::new(self.user_account(&user).await?)))
    }

    /// Verifies on a blocking thread (argon2 takes tens of milliseconds), one per core
    /// at most.
    async fn verify(&self, password: &str, stored: Option<String>) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let passwords = self.passwords.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || passwords.verify(&password, stored.as_deref()))
            .await
            .unwrap_or(false)
    }

    /// Gives an htpasswd user a row, so that it can be made a project member.
    async fn onboard(&self, name: &str) -> Result<User, AuthError> {
        let new = NewUser {
            username: name.to_owned(),
            email: String::new(),
            realname: name.to_owned(),
            comment: "from the htpasswd file".into(),
            password_hash: HTPASSWD_HASH.into(),
            sysadmin: false,
        };
        let now = self.clock.now_ms();
        let audit = Actor::new(name, None).audit("create", "user", name, None, now);
        match self.users.create_user(&new, now, &audit).await {
            Ok(_) | Err(UserError::NameTaken(_)) => {}
            Err(UserError::EmailTaken(_)) => return Err(AuthError::BadCredentials),
            Err(UserError::Meta(e)) => return Err(e.into()),
        }
        self.users
            .user_by_name(name)
            .await?
            .ok_or(AuthError::BadCredentials)
    }

    fn robot_usable(&self, robot: &Robot) -> bool {
        !robot.disabled && (robot.expires_at < 0 || robot.expires_at > self.clock.now_ms())
    }

    async fn user_account(&self, user: &User) -> Result<Account, MetaError> {
        let roles = self.directory.roles().await?;
        let mut projects: HashMap<i64, PermissionSet> = HashMap::new();
        for (project, role) in self.directory.user_roles(user.id).await? {
            let set = roles.get(&role).copied().unwrap_or_default();
            let entry = projects.entry(project).or_default();
            *entry = entry.union(&set);
        }
        Ok(Account {
            name: user.username.clone(),
            principal: Principal::User(UserGrants {
                user_id: user.id,
                sysadmin: user.sysadmin,
                projects,
            }),
        })
    }

    async fn robot_account(&self, robot: &Robot, prefix: &str) -> Result<Account, MetaError> {
        let mut grants = RobotGrants {
            robot_id: robot.id,
            ..RobotGrants::default()
        };
        for grant in &robot.grants {
            let set: PermissionSet = grant
                .access
                .iter()
                .filter_map(|(resource, action)| {
                    Some(Permission::new(
                        resource.parse().ok()?,
                        action.parse().ok()?,
                    ))
                })
                .collect();
            match (grant.kind.as_str(), grant.namespace.as_str()) {
                ("system", _) => grants.system = grants.system.union(&set),
                ("project", "*") => grants.all_projects = grants.all_projects.union(&set),
                ("project", name) => {
                    if let Some(project) = self.directory.project(name).await? {
                        let entry = grants.projects.entry(project.id).or_default();
                        *entry = entry.union(&set);
                    }
                }
                _ => {}
            }
        }
        Ok(Account {
            name: format!("{prefix}{}", robot.name),
            principal: Principal::Robot(grants),
        })
    }

    fn remember_key(&self, name: &str, password: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.remember_key);
        ctx.update(&(name.len() as u64).to_be_bytes());
        ctx.update(name.as_bytes());
        ctx.update(password.as_bytes());
        let tag = ctx.sign();
        tag.as_ref()
            .try_into()
            .expect("HMAC-SHA256 tags are 32 bytes")
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<Arc<Account>> {
        let remembered = self.remembered.lock().expect("credential cache lock");
        let (account, at) = remembered.get(key)?;
        (at.elapsed() < REMEMBER).then(|| account.clone())
    }

    fn remember(&self, key: [u8; 32], account: Arc<Account>) {
        let mut remembered = self.remembered.lock().expect("credential cache lock");
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, (_, at)| at.elapsed() < REMEMBER);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(key, (account, Instant::now()));
    }
}
