//! The audit log: who changed what, when, from where.

use async_trait::async_trait;

use crate::listing::{ListQuery, Listed};
use crate::store::MetaError;

/// One audited operation, written in the same transaction as the change it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The project the resource belongs to, if any.
    pub project_id: Option<i64>,
    /// Who: a login name, a robot's full name, or `anonymous`.
    pub username: String,
    /// What: `create`, `delete`, `update`, `pull`, `login`, …
    pub operation: String,
    /// The kind of resource: `artifact`, `tag`, `repository`, `project`, `user`, …
    pub resource_type: String,
    /// The resource: a repository with its reference, a project name, a user name, …
    pub resource: String,
    /// Whether the operation succeeded.
    pub success: bool,
    /// The client's address.
    pub client_ip: String,
    /// When (Unix milliseconds).
    pub op_time: i64,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Stable id.
    pub id: i64,
    /// What was recorded.
    pub entry: AuditEntry,
}

/// The fields audit entries can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditField {
    /// `operation`
    Operation,
    /// `resource_type`
    ResourceType,
    /// `resource`
    Resource,
    /// `username`
    Username,
    /// `op_time`
    OpTime,
    /// `id`
    Id,
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Records an entry on its own, for operations that change nothing else.
    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), MetaError>;
    /// A page of entries: of these projects (none for no project), or all of them
    /// (`None`).
    async fn list_audit(
        &self,
        projects: Option<&[i64]>,
        query: &ListQuery<AuditField>,
    ) -> Result<Listed<AuditRecord>, MetaError>;
    /// Deletes entries older than `before` (`op_time < before`); returns how many.
    async fn purge_audit(&self, before: i64) -> Result<u64, MetaError>;
    /// A mark that differs after every committed change to accounts, projects,
    /// members, robots or settings (each records an audit entry in its transaction),
    /// whichever node made it: a node that sees it change knows that what it cached of
    /// those may be stale. Other writes may change it too.
    async fn change_mark(&self) -> Result<i64, MetaError>;
}
