//! Projects, their settings and their members.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::listing::{ListQuery, Listed};
use crate::store::MetaError;

/// A stored project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Stable id (Harbor's `project_id`).
    pub id: i64,
    /// Name, the first component of its repositories' names.
    pub name: String,
    /// The user who owns it, if they still exist.
    pub owner_id: Option<i64>,
    /// That user's login name, or empty.
    pub owner_name: String,
    /// Anyone, anonymous callers included, may pull from it.
    pub public: bool,
    /// Harbor's project metadata other than `public` (`auto_scan`, `severity`, …), as
    /// the strings Harbor stores.
    pub metadata: BTreeMap<String, String>,
    /// Repositories in it.
    pub repo_count: u64,
    /// When it was created (Unix milliseconds).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A project to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Name.
    pub name: String,
    /// Owner, who becomes its project administrator; `None` for projects Berth makes.
    pub owner_id: Option<i64>,
    /// Anyone may pull.
    pub public: bool,
    /// Other metadata.
    pub metadata: BTreeMap<String, String>,
    /// Storage limit in bytes (`-1`: none); `None` gives the `storage_per_project`
    /// setting's.
    pub storage_limit: Option<i64>,
}

/// What an update changes; `None` leaves `public` as it is, and only the metadata keys
/// given are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectUpdate {
    /// New visibility.
    pub public: Option<bool>,
    /// Metadata keys to set.
    pub metadata: BTreeMap<String, String>,
}

/// The fields projects can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectField {
    /// `name`
    Name,
    /// `public`
    Public,
    /// `owner` (the owner's login name)
    Owner,
    /// `creation_time`
    CreationTime,
    /// `update_time`
    UpdateTime,
    /// `project_id`
    Id,
}

/// Which projects a listing may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every project (system administrators).
    All,
    /// Public projects and those the user is a member of.
    PublicOrMemberOf(i64),
    /// Public projects only (anonymous callers).
    PublicOnly,
    /// The projects a robot may reach: public ones, and those with these ids.
    PublicOr(Vec<i64>),
}

/// Why a project change was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProjectError {
    /// Another project has the name.
    #[error("a project named {0:?} already exists")]
    NameTaken(String),
    /// The project still holds repositories.
    #[error("the project still holds {0} repositories")]
    NotEmpty(u64),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// The kind of a member (Harbor's `entity_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A user (`u`).
    User,
    /// A user group (`g`), for LDAP and OIDC groups.
    Group,
}

/// A project member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Membership id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// User or group.
    pub kind: MemberKind,
    /// The user's or group's id.
    pub entity_id: i64,
    /// The user's or group's name.
    pub entity_name: String,
    /// The role.
    pub role_id: i64,
    /// The role's name.
    pub role_name: String,
}

/// Why a membership change was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MemberError {
    /// The user or group is already a member.
    #[error("already a member of the project")]
    AlreadyMember,
    /// The role does not exist.
    #[error("no role has id {0}")]
    UnknownRole(i64),
    /// The user or group does not exist.
    #[error("no such user or group")]
    UnknownEntity,
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// A project's visibility, as access checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectAccessInfo {
    /// Project id.
    pub id: i64,
    /// Anyone may pull.
    pub public: bool,
}

/// A role: a named set of `(resource, action)` permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Role id (Harbor's `role_id`).
    pub id: i64,
    /// Name (Harbor's `role_name`).
    pub name: String,
    /// `(resource, action)` pairs.
    pub permissions: Vec<(String, String)>,
}

/// Projects, members and roles. A new store holds one project, `library`: public and
/// without an owner until the first administrator exists.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates a project, makes its owner (if any) its project administrator
    /// (`owner_role`) and records `audit` naming the new project, in one transaction;
    /// returns its id, which no project ever had, deleted ones included. Every change
    /// below likewise records its `audit` entry in its own transaction, when it changed
    /// something.
    async fn create_project(
        &self,
        project: &NewProject,
        owner_role: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ProjectError>;
    /// The project with this id.
    async fn project(&self, id: i64) -> Result<Option<Project>, MetaError>;
    /// The project with this name.
    async fn project_by_name(&self, name: &str) -> Result<Option<Project>, MetaError>;
    /// Id and visibility of the project with this name (the access check's lookup).
    async fn project_access(&self, name: &str) -> Result<Option<ProjectAccessInfo>, MetaError>;
    /// A page of the projects `visibility` allows.
    async fn list_projects(
        &self,
        visibility: &Visibility,
        query: &ListQuery<ProjectField>,
    ) -> Result<Listed<Project>, MetaError>;
    /// Changes visibility and metadata; returns whether the project exists.
    async fn update_project(
        &self,
        id: i64,
        update: &ProjectUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Removes one metadata key; returns whether it was set.
    async fn delete_project_metadata(
        &self,
        id: i64,
        key: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Deletes an empty project with its members, its metadata, its project robots and
    /// its project labels, and removes the robots' permissions naming it, so that a later project of the same
    /// name inherits none of them; returns whether it existed.
    async fn delete_project(&self, id: i64, audit: &AuditEntry) -> Result<bool, ProjectError>;

    /// Adds a member with an existing role; returns the membership id.
    async fn add_member(
        &self,
        project_id: i64,
        kind: MemberKind,
        entity_id: i64,
        role_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, MemberError>;
    /// A page of a project's members, optionally those whose name contains `name`.
    async fn list_members(
        &self,
        project_id: i64,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<Member>, MetaError>;
    /// One membership of a project.
    async fn member(&self, project_id: i64, member_id: i64) -> Result<Option<Member>, MetaError>;
    /// Changes a member's role; returns whether the membership exists.
    async fn set_member_role(
        &self,
        project_id: i64,
        member_id: i64,
        role_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MemberError>;
    /// Removes a member; returns whether the membership existed.
    async fn remove_member(
        &self,
        project_id: i64,
        member_id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// The roles a user holds in each project they are a member of, as
    /// `(project id, role id)` pairs.
    async fn user_roles(&self, user_id: i64) -> Result<Vec<(i64, i64)>, MetaError>;

    /// Stores the built-in roles, replacing the permissions of roles with these ids.
    async fn seed_roles(&self, roles: &[Role]) -> Result<(), MetaError>;
    /// Every role and its permissions.
    async fn roles(&self) -> Result<Vec<Role>, MetaError>;
}
