//! The audit log.

use async_trait::async_trait;
use berth_meta::{AuditEntry, AuditField, AuditRecord, AuditStore, ListQuery, Listed, MetaError};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};

use crate::listing::{Clauses, Column, Columns, list};
use crate::{SqliteMetaStore, db_err};

const AUDIT_COLUMNS: &str =
    "id, project_id, username, operation, resource_type, resource, success, client_ip, op_time";

impl Columns for AuditField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            AuditField::Operation => ("operation", false),
            AuditField::ResourceType => ("resource_type", false),
            AuditField::Resource => ("resource", false),
            AuditField::Username => ("username", false),
            AuditField::OpTime => ("op_time", true),
            AuditField::Id => ("id", true),
        };
        Column { sql, numeric }
    }
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        entry: AuditEntry {
            project_id: r.get(1)?,
            username: r.get(2)?,
            operation: r.get(3)?,
            resource_type: r.get(4)?,
            resource: r.get(5)?,
            success: r.get(6)?,
            client_ip: r.get(7)?,
            op_time: r.get(8)?,
        },
    })
}

/// Writes an audit entry in the caller's transaction.
pub fn insert_audit(c: &Connection, entry: &AuditEntry) -> Result<(), MetaError> {
    c.prepare_cached(
        "INSERT INTO audit_log (project_id, username, operation, resource_type, resource,
                                success, client_ip, op_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            entry.project_id,
            entry.username,
            entry.operation,
            entry.resource_type,
            entry.resource,
            entry.success,
            entry.client_ip,
            entry.op_time
        ])
    })
    .map(drop)
    .map_err(db_err)
}

/// Writes an audit entry about `repository` in the caller's transaction, naming the
/// repository's project when the entry names none.
pub fn insert_for_repository(
    c: &Connection,
    mut entry: AuditEntry,
    repository: &berth_oci::RepositoryName,
) -> Result<(), MetaError> {
    if entry.project_id.is_none() {
        entry.project_id = c
            .prepare_cached("SELECT id FROM projects WHERE name = ?1")
            .and_then(|mut s| {
                rusqlite::OptionalExtension::optional(
                    s.query_row(params![repository.project()], |r| r.get(0)),
                )
            })
            .map_err(db_err)?;
    }
    insert_audit(c, &entry)
}

/// Records `entry` when `changed`, in the caller's transaction; passes `changed` on.
pub fn audited(c: &Connection, changed: bool, entry: &AuditEntry) -> Result<bool, MetaError> {
    if changed {
        insert_audit(c, entry)?;
    }
    Ok(changed)
}

#[async_trait]
impl AuditStore for SqliteMetaStore {
    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), MetaError> {
        let entries = entries.to_vec();
        self.writer
            .run(move |c| entries.iter().try_for_each(|e| insert_audit(c, e)))
            .await
    }

    async fn list_audit(
        &self,
        projects: Option<&[i64]>,
        query: &ListQuery<AuditField>,
    ) -> Result<Listed<AuditRecord>, MetaError> {
        let clauses = match projects {
            Some(ids) => {
                let slots: Vec<String> = (1..=ids.len()).map(|i| format!("?{i}")).collect();
                Clauses::new(
                    query,
                    &format!("project_id IN ({})", slots.join(", ")),
                    ids.iter().map(|&id| Value::Integer(id)).collect(),
                    "id",
                )
            }
            None => Clauses::new(query, "1", Vec::new(), "id"),
        };
        self.readers
            .with(|c| list(c, "audit_log", AUDIT_COLUMNS, &clauses, query, audit_row))
    }

    async fn purge_audit(&self, before: i64) -> Result<u64, MetaError> {
        self.writer
            .run(move |c| {
                c.execute("DELETE FROM audit_log WHERE op_time < ?1", params![before])
                    .map(|n| n as u64)
                    .map_err(db_err)
            })
            .await
    }

    /// The newest entry's id: one writer commits in id order, so every commit that
    /// records an entry raises it.
    async fn change_mark(&self) -> Result<i64, MetaError> {
        self.readers.with(|c| {
            c.query_row("SELECT coalesce(max(id), 0) FROM audit_log", [], |r| {
                r.get(0)
            })
        })
    }
}
