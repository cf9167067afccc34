//! Local user accounts.

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::listing::{ListQuery, Listed};
use crate::store::MetaError;

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id (Harbor's `user_id`).
    pub id: i64,
    /// Login name, unique.
    pub username: String,
    /// E-mail address, unique when not empty.
    pub email: String,
    /// Full name.
    pub realname: String,
    /// Free text.
    pub comment: String,
    /// The PHC string of the password's hash.
    pub password_hash: String,
    /// A system administrator.
    pub sysadmin: bool,
    /// When the account was created (Unix milliseconds).
    pub created_at: i64,
    /// When the account last changed.
    pub updated_at: i64,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Full name.
    pub realname: String,
    /// Free text.
    pub comment: String,
    /// The PHC string of the password's hash.
    pub password_hash: String,
    /// A system administrator.
    pub sysadmin: bool,
}

/// The profile fields a user may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// New e-mail address.
    pub email: Option<String>,
    /// New full name.
    pub realname: Option<String>,
    /// New comment.
    pub comment: Option<String>,
}

/// The fields users can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// `username`
    Username,
    /// `email`
    Email,
    /// `creation_time`
    CreationTime,
    /// `update_time`
    UpdateTime,
}

/// Why a user change was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserError {
    /// Another user has the name.
    #[error("a user named {0:?} already exists")]
    NameTaken(String),
    /// Another user has the e-mail address.
    #[error("another user has the e-mail address {0:?}")]
    EmailTaken(String),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Local user accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user and records `audit`, in one transaction; returns its id, which no
    /// user ever had, deleted ones included.
    async fn create_user(
        &self,
        user: &NewUser,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, UserError>;
    /// Creates the user only when no system administrator exists yet, and makes them the
    /// owner of every project without one; returns whether it was created. Checked and
    /// written in one transaction, so concurrent first starts create one administrator.
    async fn create_first_admin(&self, user: &NewUser, now: i64) -> Result<bool, UserError>;
    /// The user with this id.
    async fn user(&self, id: i64) -> Result<Option<User>, MetaError>;
    /// The user with this login name.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, MetaError>;
    /// A page of users.
    async fn list_users(&self, query: &ListQuery<UserField>) -> Result<Listed<User>, MetaError>;
    /// Changes profile fields; returns whether the user exists. Each change below
    /// records `audit` in its own transaction, when it changed something.
    async fn update_profile(
        &self,
        id: i64,
        update: &ProfileUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, UserError>;
    /// Replaces the password hash; returns whether the user exists.
    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Grants or revokes system administration; returns whether the user exists.
    async fn set_sysadmin(
        &self,
        id: i64,
        sysadmin: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Deletes the user and their memberships; returns whether the user existed. The
    /// projects they owned stay, without an owner.
    async fn delete_user(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError>;
}
