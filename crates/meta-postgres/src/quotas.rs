//! Quotas: the message of a refused push, the warning mark, Harbor's listing and
//! `berth fsck`'s recomputation. Usage itself is kept, and limits enforced, by the
//! triggers of migrations 0013 and 0014, in the transaction of each change; a project's
//! whole usage is read through the view `quota_totals`.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, BlobQuota, ListQuery, Listed, MetaError, NewManifest, Quota, QuotaExceeded,
    QuotaField, QuotaStore, UsageDrift,
};
use berth_oci::{Digest, RepositoryName};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Row};

use crate::audit::{audited, insert_for_repository};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{PgMetaStore, db_err};

/// The SQLSTATE the quota triggers raise when a count would pass a limit.
pub const QUOTA_EXCEEDED: &str = "BQ001";

pub(crate) const QUOTA_FROM: &str = "quota_totals q JOIN projects p ON p.id = q.project_id
     LEFT JOIN users u ON u.id = p.owner_id";
pub(crate) const QUOTA_COLUMNS: &str =
    "q.project_id, p.name, u.username, q.hard, q.used, q.created_at, q.updated_at";

impl Columns for QuotaField {
    fn column(self) -> Column {
        let sql = match self {
            QuotaField::Id | QuotaField::ProjectId => "q.project_id",
            QuotaField::Hard => "q.hard",
            QuotaField::Used => "q.used",
            QuotaField::CreationTime => "q.created_at",
            QuotaField::UpdateTime => "q.updated_at",
        };
        Column { sql, numeric: true }
    }
}

fn quota_row(r: &PgRow) -> Result<Quota, MetaError> {
    Ok(Quota {
        id: r.try_get(0).map_err(db_err)?,
        project_id: r.try_get(0).map_err(db_err)?,
        project_name: r.try_get(1).map_err(db_err)?,
        owner_name: r.try_get(2).map_err(db_err)?,
        hard: r.try_get(3).map_err(db_err)?,
        used: r.try_get::<i64, _>(4).map_err(db_err)? as u64,
        created_at: r.try_get(5).map_err(db_err)?,
        updated_at: r.try_get(6).map_err(db_err)?,
    })
}

/// Whether the project of a row of [`QUOTA_FROM`] already counts the digest bound to
/// `$2`: the column [`blob_quota_row`] reads after [`QUOTA_COLUMNS`].
pub(crate) const COUNTED: &str =
    "EXISTS (SELECT 1 FROM project_blobs pb WHERE pb.project_id = q.project_id AND pb.digest = $2)";

/// A project's quota for one more blob, from the first columns of a row of
/// [`QUOTA_COLUMNS`] and [`COUNTED`]; `None` when they are null (no such project, in an outer join).
pub(crate) fn blob_quota_row(r: &PgRow) -> Result<Option<BlobQuota>, MetaError> {
    if r.try_get::<Option<i64>, _>(0).map_err(db_err)?.is_none() {
        return Ok(None);
    }
    Ok(Some(BlobQuota {
        quota: quota_row(r)?,
        counted: r.try_get(7).map_err(db_err)?,
    }))
}

/// The quota of the project named `project`.
async fn project_quota(c: impl PgExecutor<'_>, project: &str) -> Result<Option<Quota>, MetaError> {
    sqlx::query(&format!(
        "SELECT {QUOTA_COLUMNS} FROM {QUOTA_FROM} WHERE p.name = $1"
    ))
    .bind(project)
    .fetch_optional(c)
    .await
    .map_err(db_err)?
    .as_ref()
    .map(quota_row)
    .transpose()
}

/// Whether a failed statement was refused by a quota trigger.
pub fn is_quota_refusal(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(QUOTA_EXCEEDED))
}

/// What a refused push would have needed, as the project stands now (read after the
/// refusal rolled back, for its message).
pub async fn exceeded(pool: &PgPool, m: &NewManifest) -> Result<QuotaExceeded, MetaError> {
    let counted = m.counted();
    let digests: Vec<&str> = counted.iter().map(|(d, _)| d.as_str()).collect();
    let sizes: Vec<i64> = counted.iter().map(|(_, s)| *s as i64).collect();
    let (project, used, hard, needed): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT p.name, q.used, q.hard,
                coalesce((SELECT sum(c.size) FROM unnest($2::TEXT[], $3::BIGINT[]) AS c(digest, size)
                          WHERE NOT EXISTS (SELECT 1 FROM project_blobs pb
                                            WHERE pb.project_id = p.id
                                              AND pb.digest = c.digest)), 0)::BIGINT
         FROM projects p JOIN quota_totals q ON q.project_id = p.id WHERE p.name = $1",
    )
    .bind(m.repository.project())
    .bind(&digests)
    .bind(&sizes)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(QuotaExceeded {
        project,
        used: used as u64,
        limit: hard.max(0) as u64,
        needed: needed as u64,
    })
}

fn drift_row(r: &PgRow) -> Result<UsageDrift, MetaError> {
    let get = |i: usize| r.try_get::<Option<i64>, _>(i).map_err(db_err);
    let pair = |size: usize, refs: usize| -> Result<Option<(i64, i64)>, MetaError> {
        Ok(get(size)?.zip(get(refs)?))
    };
    let kind: String = r.try_get(0).map_err(db_err)?;
    let project: String = r.try_get(1).map_err(db_err)?;
    Ok(match kind.as_str() {
        "missing" => UsageDrift::Missing { project },
        "used" => UsageDrift::Used {
            project,
            stored: get(3)?.unwrap_or(0),
            recomputed: get(5)?.unwrap_or(0),
        },
        _ => UsageDrift::References {
            project,
            digest: r.try_get(2).map_err(db_err)?,
            stored: pair(3, 4)?,
            recomputed: pair(5, 6)?,
        },
    })
}

/// Whether the warning mark of `project` would change at `percent` % of its limit as its
/// usage stands, and what the mark would become.
async fn mark_change(
    c: impl PgExecutor<'_>,
    project: &str,
    percent: u8,
) -> Result<(bool, bool), MetaError> {
    let row: Option<(bool, bool)> = sqlx::query_as(
        "SELECT q.warned, q.hard >= 0 AND q.used >= quota_warn_at(q.hard, $2)
         FROM quota_totals q JOIN projects p ON p.id = q.project_id WHERE p.name = $1",
    )
    .bind(project)
    .bind(i64::from(percent))
    .fetch_optional(c)
    .await
    .map_err(db_err)?;
    Ok(row.map_or((false, false), |(warned, marks)| (warned != marks, marks)))
}

#[async_trait]
impl QuotaStore for PgMetaStore {
    async fn blob_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobQuota>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {QUOTA_COLUMNS}, {COUNTED} FROM {QUOTA_FROM} WHERE p.name = $1"
        ))
        .bind(repository.project())
        .bind(digest.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref()
            .map(blob_quota_row)
            .transpose()
            .map(Option::flatten)
    }

    async fn warn_quota(
        &self,
        repository: &RepositoryName,
        percent: u8,
        audit: &AuditEntry,
    ) -> Result<Option<Quota>, MetaError> {
        let project = repository.project();
        // Most pushes change no mark: an unlocked look settles them without a lock.
        let mut lease = self.leased.lease().await?;
        let (changes, _) = mark_change(lease.connection(), project, percent).await?;
        lease.finish();
        if !changes {
            return Ok(None);
        }
        let mut tx = self.durable().await?;
        sqlx::query(
            "SELECT 1 FROM quotas WHERE project_id = (SELECT id FROM projects WHERE name = $1)
             FOR UPDATE",
        )
        .bind(project)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Under the row's lock, in a statement that sees every count committed before it.
        let (changes, marks) = mark_change(&mut *tx, project, percent).await?;
        if changes {
            sqlx::query(
                "UPDATE quotas SET warned = $2, warn_percent = $3
                 WHERE project_id = (SELECT id FROM projects WHERE name = $1)",
            )
            .bind(project)
            .bind(marks)
            .bind(i64::from(percent))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if !(changes && marks) {
            tx.commit().await.map_err(db_err)?;
            return Ok(None);
        }
        insert_for_repository(&mut tx, audit, repository).await?;
        let quota = project_quota(&mut *tx, project).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(quota)
    }

    async fn quotas(&self, query: &ListQuery<QuotaField>) -> Result<Listed<Quota>, MetaError> {
        let clauses = Clauses::new(query, "TRUE", Vec::new(), "q.project_id");
        list(
            &self.pool,
            QUOTA_FROM,
            QUOTA_COLUMNS,
            &clauses,
            query,
            quota_row,
        )
        .await
    }

    async fn quota(&self, id: i64) -> Result<Option<Quota>, MetaError> {
        sqlx::query(&format!(
            "SELECT {QUOTA_COLUMNS} FROM {QUOTA_FROM} WHERE q.project_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(quota_row)
        .transpose()
    }

    async fn set_quota_limit(
        &self,
        id: i64,
        hard: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        // The usage lock waits for the pushes counting without a limit (migrations 0014,
        // 0016), so the next statement sees their counts and every later push the new
        // limit.
        for lock in [
            "SELECT quota_usage_lock($1, TRUE)",
            "SELECT 1 FROM quotas WHERE project_id = $1 FOR UPDATE",
        ] {
            sqlx::query(lock)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let found =
            // A limit that puts usage below the mark's share of it clears the mark.
            sqlx::query(
                "UPDATE quotas
                 SET hard = $2, updated_at = $3,
                     warned = warned AND $2 >= 0
                              AND quota_used($1) >= quota_warn_at($2, warn_percent)
                 WHERE project_id = $1",
            )
                .bind(id)
                .bind(hard)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0;
        audited(&mut tx, found, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(found)
    }

    async fn usage_drift(&self) -> Result<Vec<UsageDrift>, MetaError> {
        sqlx::query(
            "SELECT kind, project, digest, stored_size, stored_refs, recomputed_size,
                    recomputed_refs
             FROM usage_drift ORDER BY project, kind, digest",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(drift_row)
        .collect()
    }
}
