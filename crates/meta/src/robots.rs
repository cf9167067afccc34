//! Robot accounts: named credentials with their own permissions.

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::listing::{ListQuery, Listed};
use crate::store::MetaError;

/// Whether a robot belongs to the system or to one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotLevel {
    /// System-level (Harbor's `system`): may hold permissions in any project.
    System,
    /// Project-level (Harbor's `project`): only in its own project.
    Project,
}

/// Permissions a robot holds in one namespace (Harbor's `RobotPermission`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotGrant {
    /// `project` or `system`.
    pub kind: String,
    /// A project name, `*` for every project, or `/` for the system.
    pub namespace: String,
    /// `(resource, action)` pairs.
    pub access: Vec<(String, String)>,
}

/// A stored robot account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Robot {
    /// Stable id.
    pub id: i64,
    /// Name without the configurable prefix: `<project>+<name>` or `<name>`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The PHC string of the secret's hash.
    pub secret_hash: String,
    /// System or project.
    pub level: RobotLevel,
    /// Its project, for a project-level robot.
    pub project_id: Option<i64>,
    /// Lifetime in days from creation, or -1 for never expiring.
    pub duration_days: i64,
    /// When it expires (Unix milliseconds), or -1.
    pub expires_at: i64,
    /// Refused logins while set.
    pub disabled: bool,
    /// Who created it (a login name).
    pub creator: String,
    /// What it may do: the permissions it was given, in no particular grouping or order.
    pub grants: Vec<RobotGrant>,
    /// When it was created (Unix milliseconds).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A robot to create (`id`, times, and `secret_hash` as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRobot {
    /// Name without the prefix.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The PHC string of the secret's hash.
    pub secret_hash: String,
    /// System or project.
    pub level: RobotLevel,
    /// Its project, for a project-level robot.
    pub project_id: Option<i64>,
    /// Lifetime in days, or -1.
    pub duration_days: i64,
    /// Expiry (Unix milliseconds), or -1.
    pub expires_at: i64,
    /// Disabled from the start.
    pub disabled: bool,
    /// Who creates it.
    pub creator: String,
    /// What it may do.
    pub grants: Vec<RobotGrant>,
}

/// What an update changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotUpdate {
    /// Free text.
    pub description: String,
    /// Lifetime in days, or -1.
    pub duration_days: i64,
    /// Expiry (Unix milliseconds), or -1.
    pub expires_at: i64,
    /// Refused logins while set.
    pub disabled: bool,
    /// What it may do.
    pub grants: Vec<RobotGrant>,
}

/// The fields robots can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotField {
    /// `name`
    Name,
    /// `Level` (`system` or `project`)
    Level,
    /// `ProjectID`
    ProjectId,
    /// `creation_time`
    CreationTime,
    /// `id`
    Id,
}

/// Why a robot change was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RobotError {
    /// Another robot has the name.
    #[error("a robot named {0:?} already exists")]
    NameTaken(String),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Robot accounts.
#[async_trait]
pub trait RobotStore: Send + Sync {
    /// Creates a robot and records `audit`, in one transaction; returns its id, which no
    /// robot ever had, deleted ones included. The changes below likewise record their
    /// `audit` entry, when they changed something.
    async fn create_robot(
        &self,
        robot: &NewRobot,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RobotError>;
    /// The robot with this id.
    async fn robot(&self, id: i64) -> Result<Option<Robot>, MetaError>;
    /// The robot with this name (without the prefix).
    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>, MetaError>;
    /// A page of robots.
    async fn list_robots(&self, query: &ListQuery<RobotField>) -> Result<Listed<Robot>, MetaError>;
    /// Replaces what an update may change; returns whether the robot exists.
    async fn update_robot(
        &self,
        id: i64,
        update: &RobotUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Replaces the secret's hash; returns whether the robot exists.
    async fn set_robot_secret(
        &self,
        id: i64,
        secret_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Deletes a robot; returns whether it existed.
    async fn delete_robot(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError>;
}
