//! Quotas: the check of a push against its project's limit, the warning mark, Harbor's
//! listing and `berth fsck`'s recomputation. Usage itself is kept by the triggers of
//! migration 0019, in the transaction of each change.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, BlobQuota, ListQuery, Listed, MetaError, NewManifest, PutManifestError, Quota,
    QuotaExceeded, QuotaField, QuotaStore, UsageDrift, WarningMark,
};
use berth_oci::{Digest, RepositoryName};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::{audited, insert_for_repository};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{SqliteMetaStore, db_err};

const QUOTA_FROM: &str = "quotas q JOIN projects p ON p.id = q.project_id
     LEFT JOIN users u ON u.id = p.owner_id";
const QUOTA_COLUMNS: &str =
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

fn quota_row(r: &Row<'_>) -> rusqlite::Result<Quota> {
    Ok(Quota {
        id: r.get(0)?,
        project_id: r.get(0)?,
        project_name: r.get(1)?,
        owner_name: r.get(2)?,
        hard: r.get(3)?,
        used: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// The quota of the project named `project`.
fn project_quota(c: &Connection, project: &str) -> rusqlite::Result<Option<Quota>> {
    c.prepare_cached(&format!(
        "SELECT {QUOTA_COLUMNS} FROM {QUOTA_FROM} WHERE p.name = ?1"
    ))?
    .query_row(params![project], quota_row)
    .optional()
}

/// Where `project` stands for one more blob of `digest`; `None` without such a project.
pub(crate) fn blob_quota(
    c: &Connection,
    project: &str,
    digest: &str,
) -> rusqlite::Result<Option<BlobQuota>> {
    let Some(quota) = project_quota(c, project)? else {
        return Ok(None);
    };
    let counted = counts(c, quota.project_id, digest)?;
    Ok(Some(BlobQuota { quota, counted }))
}

/// Whether the manifests of the project with id `project_id` hold `digest`.
fn counts(c: &Connection, project_id: i64, digest: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM project_blobs WHERE project_id = ?1 AND digest = ?2")?
        .exists(params![project_id, digest])
}

/// Whether the warning mark of the project named `project` may have to change after a
/// push ([`berth_meta::WarningMark`]): not when it has neither a limit nor a mark.
pub fn warning_mark(c: &Connection, project: &str) -> Result<WarningMark, MetaError> {
    let unwatched = c
        .prepare_cached(
            "SELECT 1 FROM quotas
             WHERE project_id = (SELECT id FROM projects WHERE name = ?1)
               AND hard < 0 AND NOT warned",
        )
        .and_then(|mut s| s.exists(params![project]))
        .map_err(db_err)?;
    Ok(if unwatched {
        WarningMark::Unwatched
    } else {
        WarningMark::Watched
    })
}

/// Refuses a push whose new digests would take its project past its limit. Run in the
/// writer's transaction before the push writes anything, so the check and the count the
/// triggers make next see the same state.
pub fn check_push(c: &Connection, m: &NewManifest) -> Result<(), PutManifestError> {
    let Some(quota) = project_quota(c, m.repository.project()).map_err(db_err)? else {
        return Ok(());
    };
    let mut needed = 0u64;
    for (digest, size) in m.counted() {
        if !counts(c, quota.project_id, digest.as_str()).map_err(db_err)? {
            needed += size;
        }
    }
    if needed > 0 && quota.refuses(needed) {
        return Err(PutManifestError::QuotaExceeded(QuotaExceeded {
            project: quota.project_name,
            used: quota.used,
            limit: quota.hard as u64,
            needed,
        }));
    }
    Ok(())
}

fn drift_row(r: &Row<'_>) -> rusqlite::Result<UsageDrift> {
    let kind: String = r.get(0)?;
    let project: String = r.get(1)?;
    let pair = |size: usize, refs: usize| -> rusqlite::Result<Option<(i64, i64)>> {
        Ok(r.get::<_, Option<i64>>(size)?
            .zip(r.get::<_, Option<i64>>(refs)?))
    };
    Ok(match kind.as_str() {
        "missing" => UsageDrift::Missing { project },
        "used" => UsageDrift::Used {
            project,
            stored: r.get(3)?,
            recomputed: r.get(5)?,
        },
        _ => UsageDrift::References {
            project,
            digest: r.get(2)?,
            stored: pair(3, 4)?,
            recomputed: pair(5, 6)?,
        },
    })
}

#[async_trait]
impl QuotaStore for SqliteMetaStore {
    async fn blob_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobQuota>, MetaError> {
        self.readers
            .with(|c| blob_quota(c, repository.project(), digest.as_str()))
    }

    async fn warn_quota(
        &self,
        repository: &RepositoryName,
        percent: u8,
        audit: &AuditEntry,
    ) -> Result<Option<Quota>, MetaError> {
        // Most pushes change no mark: they cost no write.
        let changes = self.readers.with(|c| {
            c.prepare_cached(
                "SELECT 1 FROM quotas
                 WHERE project_id = (SELECT id FROM projects WHERE name = ?1)
                   AND warned <> (hard >= 0 AND used >= (hard / 100) * ?2 + ((hard % 100) * ?2 + 99) / 100)",
            )?
            .exists(params![repository.project(), percent])
        })?;
        if !changes {
            return Ok(None);
        }
        let (repository, audit) = (repository.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let project = repository.project();
                c.prepare_cached(
                    "UPDATE quotas SET warned = 0
                     WHERE project_id = (SELECT id FROM projects WHERE name = ?1)
                       AND warned AND (hard < 0 OR used < (hard / 100) * ?2 + ((hard % 100) * ?2 + 99) / 100)",
                )
                .and_then(|mut s| s.execute(params![project, percent]))
                .map_err(db_err)?;
                let marked = c
                    .prepare_cached(
                        "UPDATE quotas SET warned = 1, warn_percent = ?2
                         WHERE project_id = (SELECT id FROM projects WHERE name = ?1)
                           AND NOT warned AND hard >= 0 AND used >= (hard / 100) * ?2 + ((hard % 100) * ?2 + 99) / 100",
                    )
                    .and_then(|mut s| s.execute(params![project, percent]))
                    .map_err(db_err)?;
                if marked == 0 {
                    return Ok(None);
                }
                insert_for_repository(c, audit, &repository)?;
                project_quota(c, project).map_err(db_err)
            })
            .await
    }

    async fn quotas(&self, query: &ListQuery<QuotaField>) -> Result<Listed<Quota>, MetaError> {
        let clauses = Clauses::new(query, "1", Vec::new(), "q.project_id");
        self.readers
            .with(|c| list(c, QUOTA_FROM, QUOTA_COLUMNS, &clauses, query, quota_row))
    }

    async fn quota(&self, id: i64) -> Result<Option<Quota>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {QUOTA_COLUMNS} FROM {QUOTA_FROM} WHERE q.project_id = ?1"
            ))?
            .query_row(params![id], quota_row)
            .optional()
        })
    }

    async fn set_quota_limit(
        &self,
        id: i64,
        hard: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let changed = c
                    // A limit that puts usage below the mark's share of it clears the mark.
                    .execute(
                        "UPDATE quotas
                         SET hard = ?2, updated_at = ?3,
                             warned = warned AND ?2 >= 0
                                 AND used >= (?2 / 100) * warn_percent
                                     + ((?2 % 100) * warn_percent + 99) / 100
                         WHERE project_id = ?1",
                        params![id, hard, now],
                    )
                    .map_err(db_err)?;
                audited(c, changed == 1, &audit)
            })
            .await
    }

    async fn usage_drift(&self) -> Result<Vec<UsageDrift>, MetaError> {
        self.readers.with(|c| {
            c.prepare(
                "SELECT kind, project, digest, stored_size, stored_refs, recomputed_size,
                        recomputed_refs
                 FROM usage_drift ORDER BY project, kind, digest",
            )?
            .query_map([], drift_row)?
            .collect()
        })
    }
}
