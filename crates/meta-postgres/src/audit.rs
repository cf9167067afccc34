//! The audit log.

use async_trait::async_trait;
use berth_meta::{AuditEntry, AuditField, AuditRecord, AuditStore, ListQuery, Listed, MetaError};
use berth_oci::RepositoryName;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::listing::{Clauses, Column, Columns, Value, list};
use crate::{PgMetaStore, columns, db_err};

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

fn audit_row(r: &PgRow) -> Result<AuditRecord, MetaError> {
    let (id, project_id, username, operation, resource_type, resource, success, client_ip, op_time) =
        columns(r)?;
    Ok(AuditRecord {
        id,
        entry: AuditEntry {
            project_id,
            username,
            operation,
            resource_type,
            resource,
            success,
            client_ip,
            op_time,
        },
    })
}

/// Writes audit entries in the caller's transaction, in one statement and in order.
/// An entry that names no project gets the project named beside it (the project of
/// the repository it is about), if that exists.
async fn insert_all<'a>(
    c: &mut PgConnection,
    entries: impl Iterator<Item = (Option<&'a str>, &'a AuditEntry)>,
) -> Result<(), MetaError> {
    let (mut projects, mut ids, mut users, mut operations) = (vec![], vec![], vec![], vec![]);
    let (mut types, mut resources, mut successes, mut ips, mut times) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (project, e) in entries {
        projects.push(project);
        ids.push(e.project_id);
        users.push(e.username.as_str());
        operations.push(e.operation.as_str());
        types.push(e.resource_type.as_str());
        resources.push(e.resource.as_str());
        successes.push(e.success);
        ips.push(e.client_ip.as_str());
        times.push(e.op_time);
    }
    if times.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_log (project_id, username, operation, resource_type, resource,
                                success, client_ip, op_time)
         SELECT coalesce(e.project_id, (SELECT p.id FROM projects p WHERE p.name = e.project)),
                e.username, e.operation, e.resource_type, e.resource, e.success, e.client_ip,
                e.op_time
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::boolean[], $8::text[], $9::bigint[])
              WITH ORDINALITY AS e(project, project_id, username, operation, resource_type,
                                   resource, success, client_ip, op_time, n)
         ORDER BY e.n",
    )
    .bind(&projects[..])
    .bind(&ids[..])
    .bind(&users[..])
    .bind(&operations[..])
    .bind(&types[..])
    .bind(&resources[..])
    .bind(&successes[..])
    .bind(&ips[..])
    .bind(&times[..])
    .execute(c)
    .await
    .map(drop)
    .map_err(db_err)
}

/// Writes the audit entry of a management change in the caller's transaction, and
/// moves the change mark in it, so that other nodes learn of the change when it commits.
pub async fn insert_audit(c: &mut PgConnection, entry: &AuditEntry) -> Result<(), MetaError> {
    insert_all(&mut *c, [(None, entry)].into_iter()).await?;
    sqlx::query("UPDATE change_mark SET mark = mark + 1")
        .execute(c)
        .await
        .map(drop)
        .map_err(db_err)
}

/// Writes an audit entry about `repository` in the caller's transaction, naming the
/// repository's project when the entry names none.
pub async fn insert_for_repository(
    c: &mut PgConnection,
    entry: &AuditEntry,
    repository: &RepositoryName,
) -> Result<(), MetaError> {
    insert_all(c, [(Some(repository.project()), entry)].into_iter()).await
}

/// Writes audit entries each about a repository, as [`insert_for_repository`] does.
pub async fn insert_for_repositories(
    c: &mut PgConnection,
    entries: &[(RepositoryName, AuditEntry)],
) -> Result<(), MetaError> {
    insert_all(c, entries.iter().map(|(r, e)| (Some(r.project()), e))).await
}

/// Records `entry` when `changed`, in the caller's transaction; passes `changed` on.
pub async fn audited(
    c: &mut PgConnection,
    changed: bool,
    entry: &AuditEntry,
) -> Result<bool, MetaError> {
    if changed {
        insert_audit(c, entry).await?;
    }
    Ok(changed)
}

#[async_trait]
impl AuditStore for PgMetaStore {
    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), MetaError> {
        let mut c = self.pool.acquire().await.map_err(db_err)?;
        insert_all(&mut c, entries.iter().map(|e| (None, e))).await
    }

    async fn list_audit(
        &self,
        projects: Option<&[i64]>,
        query: &ListQuery<AuditField>,
    ) -> Result<Listed<AuditRecord>, MetaError> {
        let clauses = match projects {
            Some(ids) => Clauses::new(
                query,
                "project_id = ANY($1)",
                vec![Value::Ints(ids.to_vec())],
                "id",
            ),
            None => Clauses::new(query, "TRUE", Vec::new(), "id"),
        };
        list(
            &self.pool,
            "audit_log",
            AUDIT_COLUMNS,
            &clauses,
            query,
            audit_row,
        )
        .await
    }

    async fn purge_audit(&self, before: i64) -> Result<u64, MetaError> {
        sqlx::query("DELETE FROM audit_log WHERE op_time < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(db_err)
    }

    async fn change_mark(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar("SELECT mark FROM change_mark")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}
