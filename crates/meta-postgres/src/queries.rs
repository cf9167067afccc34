//! The registry's SQL, one function per operation. Writes run in the caller's
//! transaction; see the crate's documentation for the locks that order them between
//! nodes.

use std::collections::HashMap;

use berth_meta::{
    CreateUploadError, Deletion, GrantedUpload, GuardFailure, MetaError, NewManifest, PullRecord,
    PutManifestError, Referrer, ReferrerLimit, ReferrerPage, SWEPT_BLOBS_KEPT_FOR, SessionLimits,
    StoredManifest, TagPage, UploadAdvance, UploadLease, UploadSession, Visibility, WarningMark,
};
use berth_oci::{Algorithm, Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, Row};

use crate::listing::{Value, arguments};
use crate::versions::RepositoryVersion;
use crate::{Lock, corrupt, db_err};

fn page(mut names: Vec<String>, limit: u32) -> TagPage {
    let more = names.len() > limit as usize;
    names.truncate(limit as usize);
    TagPage::new(names, more)
}

/// A stored digest.
pub(crate) fn parse_digest(text: &str) -> Result<Digest, MetaError> {
    Digest::parse(text).map_err(|e| corrupt("digest", e))
}

/// A stored repository name.
pub(crate) fn parse_repository(text: &str) -> Result<RepositoryName, MetaError> {
    RepositoryName::parse(text).map_err(|e| corrupt("repository name", e))
}

pub async fn catalog(
    pool: &PgPool,
    visibility: &Visibility,
    last: &str,
    limit: u32,
) -> Result<TagPage, MetaError> {
    let (condition, mut values) = crate::projects::visibility_condition(visibility, 3);
    values.splice(
        0..0,
        [
            Value::Text(last.to_owned()),
            Value::Int(i64::from(limit) + 1),
        ],
    );
    let names = sqlx::query_scalar_with(
        &format!(
            "SELECT r.name FROM repositories r JOIN projects p ON p.id = r.project_id
             WHERE r.name > $1 AND {condition} ORDER BY r.name LIMIT $2"
        ),
        arguments(&values)?,
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(page(names, limit))
}

/// The ids and versions of those of `names` that exist, by name.
pub async fn repository_versions(
    c: impl PgExecutor<'_>,
    names: &[&str],
) -> Result<HashMap<String, RepositoryVersion>, MetaError> {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, id, tag_version FROM repositories WHERE name = ANY($1)")
            .bind(names)
            .fetch_all(c)
            .await
            .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(name, id, version)| (name, RepositoryVersion { id, version }))
        .collect())
}

/// Up to `limit` tags of a repository after `last`, in `berth_oci::tag_listing_order`:
/// case-insensitively, then by bytes. The first condition bounds the walk of the
/// `tags_listing` index; the second skips the names equal to `last` but for case that
/// sort before it, and `last` itself.
pub async fn tags(
    pool: &PgPool,
    repo_id: i64,
    last: &str,
    limit: u32,
) -> Result<TagPage, MetaError> {
    let names = sqlx::query_scalar(TAGS_AFTER)
        .bind(repo_id)
        .bind(last)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    Ok(page(names, limit))
}

pub(crate) const TAGS_AFTER: &str = "SELECT name FROM tags
     WHERE repository_id = $1 AND lower(name) >= lower($2 COLLATE \"C\")
       AND (lower(name) > lower($2 COLLATE \"C\") OR name > $2)
     ORDER BY lower(name), name LIMIT $3";

/// Creates the project and repository on first use and locks the repository's row
/// until the transaction ends; returns the repository id.
pub async fn ensure_repository(
    c: &mut PgConnection,
    repository: &RepositoryName,
    now: i64,
) -> Result<i64, MetaError> {
    // Most writes go to a repository that exists: one update finds and locks it, and
    // takes no value from the id sequence (an upsert takes one even when the row exists).
    let existing: Option<i64> =
        sqlx::query_scalar("UPDATE repositories SET updated_at = $2 WHERE name = $1 RETURNING id")
            .bind(repository.as_str())
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    // A project deleted between the creation and the upsert is created again: each
    // round sees what was committed before it, so this ends unless projects of this
    // name are deleted as fast as they are created.
    for _ in 0..3 {
        // The project is locked against a delete (which checks it holds no repository)
        // until the repository exists.
        let id: Option<i64> = sqlx::query_scalar(
            "WITH p AS (SELECT id FROM projects WHERE name = $1 FOR KEY SHARE)
             INSERT INTO repositories (project_id, name, created_at, updated_at)
             SELECT id, $2, $3, $3 FROM p
             ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at
             RETURNING id",
        )
        .bind(repository.project())
        .bind(repository.as_str())
        .bind(now)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        if let Some(id) = id {
            return Ok(id);
        }
        // A project made by a push (open mode) belongs to the first administrator.
        Lock::FirstAdmin.shared(c).await?;
        sqlx::query(
            "INSERT INTO projects (name, created_at, updated_at, owner_id)
             VALUES ($1, $2, $2, (SELECT min(id) FROM users WHERE sysadmin))
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(repository.project())
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    }
    Err(MetaError(format!(
        "project {:?} keeps being deleted while {repository} is created",
        repository.project()
    )))
}

pub async fn linked_blob(
    pool: &PgPool,
    repository: &str,
    digest: &str,
) -> Result<Option<(u64, RepositoryVersion)>, MetaError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT b.size, r.id, r.tag_version FROM repositories r
         JOIN repository_blobs rb ON rb.repository_id = r.id
         JOIN blobs b ON b.digest = rb.digest
         WHERE r.name = $1 AND rb.digest = $2 AND b.status = 'present'",
    )
    .bind(repository)
    .bind(digest)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    Ok(row.map(|(size, id, version)| (size as u64, RepositoryVersion { id, version })))
}

pub async fn blob_repositories(
    pool: &PgPool,
    digest: &str,
    limit: u32,
) -> Result<Vec<RepositoryName>, MetaError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT r.name FROM repository_blobs rb
         JOIN repositories r ON r.id = rb.repository_id
         JOIN blobs b ON b.digest = rb.digest
         WHERE rb.digest = $1 AND b.status = 'present'
         ORDER BY r.name LIMIT $2",
    )
    .bind(digest)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    names.iter().map(|n| parse_repository(n)).collect()
}

/// Records a blob and links it to the repository, in one statement, unless it is
/// marked for deletion: returns whether it linked. The blob's row is locked (`FOR
/// SHARE`) first, so a marker that holds it is waited for and its mark seen. A link
/// made again is set to `now` (never back): garbage collection counts the blob's grace
/// period from its latest acknowledgement.
pub async fn link_blob(
    c: &mut PgConnection,
    repo_id: i64,
    digest: &str,
    size: u64,
    now: i64,
) -> Result<bool, MetaError> {
    sqlx::query_scalar(
        "WITH existing AS (SELECT status FROM blobs WHERE digest = $2 FOR SHARE),
         blob AS (
             INSERT INTO blobs (digest, size, created_at)
             SELECT $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM existing)
             ON CONFLICT (digest) DO NOTHING),
         link AS (
             INSERT INTO repository_blobs AS rb (repository_id, digest, created_at)
             SELECT $1, $2, $4
             WHERE NOT EXISTS (SELECT 1 FROM existing WHERE status <> 'present')
             ON CONFLICT (repository_id, digest) DO UPDATE
             SET created_at = GREATEST(rb.created_at, excluded.created_at))
         SELECT NOT EXISTS (SELECT 1 FROM existing WHERE status <> 'present')",
    )
    .bind(repo_id)
    .bind(digest)
    .bind(size as i64)
    .bind(now)
    .fetch_one(c)
    .await
    .map_err(db_err)
}

/// Links a blob that is recorded and not marked for deletion to the repository, in one
/// statement: returns whether it linked. The blob's row is locked (`FOR SHARE`) first,
/// so a marker that holds it is waited for and its mark seen, and a sweep that deleted
/// it leaves nothing to link. A link made again is set to `now` (never back).
pub async fn link_present_blob(
    c: &mut PgConnection,
    repo_id: i64,
    digest: &str,
    now: i64,
) -> Result<bool, MetaError> {
    sqlx::query_scalar(
        "WITH present AS (
             SELECT digest FROM blobs WHERE digest = $2 AND status = 'present' FOR SHARE),
         link AS (
             INSERT INTO repository_blobs AS rb (repository_id, digest, created_at)
             SELECT $1, digest, $3 FROM present
             ON CONFLICT (repository_id, digest) DO UPDATE
             SET created_at = GREATEST(rb.created_at, excluded.created_at))
         SELECT EXISTS (SELECT 1 FROM present)",
    )
    .bind(repo_id)
    .bind(digest)
    .bind(now)
    .fetch_one(c)
    .await
    .map_err(db_err)
}

/// Links the blob of a finished upload and ends the session, in one statement (so in
/// one implicit transaction): the repository's row is locked and touched first, as
/// [`ensure_repository`] does, then the session row deleted (which ends its pin) and
/// its id recorded as ended at `now` (as [`delete_upload`] does), the blob linked (a
/// link made again set to `now`, as [`link_blob`] does) and recorded.
/// The session's pin kept the blob from being marked for deletion since before its
/// bytes were published.
/// Returns `false`, having changed nothing, when the repository does not exist yet.
pub async fn complete_upload_in_existing_repository(
    c: impl PgExecutor<'_>,
    id: &str,
    repository: &str,
    digest: &str,
    size: u64,
    now: i64,
) -> Result<bool, MetaError> {
    sqlx::query_scalar::<_, i64>(
        "WITH repo AS (
             UPDATE repositories SET updated_at = $3 WHERE name = $2 RETURNING id),
         blob AS (
             INSERT INTO blobs (digest, size, created_at) SELECT $4, $5, $3 FROM repo
             ON CONFLICT (digest) DO NOTHING),
         link AS (
             INSERT INTO repository_blobs AS rb (repository_id, digest, created_at)
             SELECT id, $4, $3 FROM repo
             ON CONFLICT (repository_id, digest) DO UPDATE
             SET created_at = GREATEST(rb.created_at, excluded.created_at)),
         ended AS (
             DELETE FROM uploads WHERE id = $1 AND EXISTS (SELECT 1 FROM repo)),
         tombstone AS (
             INSERT INTO ended_uploads (id, ended_at) SELECT $1, $3 FROM repo
             ON CONFLICT (id) DO NOTHING)
         SELECT id FROM repo",
    )
    .bind(id)
    .bind(repository)
    .bind(now)
    .bind(digest)
    .bind(size as i64)
    .fetch_optional(c)
    .await
    .map(|found| found.is_some())
    .map_err(db_err)
}

/// Locks the row of `repository` until the transaction ends; returns its id, or `None`
/// when there is no such repository.
pub async fn lock_repository(
    c: &mut PgConnection,
    repository: &str,
) -> Result<Option<i64>, MetaError> {
    sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1 FOR UPDATE")
        .bind(repository)
        .fetch_optional(c)
        .await
        .map_err(db_err)
}

/// Whether the repository holds `digest` (as a blob link for `kind` `blob`, as a
/// manifest for `manifest`), and the first of its manifests that references `digest` as
/// `kind` (`blob` for a config or layer, `manifest` for an index child).
async fn held_and_referrer(
    c: &mut PgConnection,
    repo_id: i64,
    kind: &str,
    digest: &str,
) -> Result<(bool, Option<Digest>), MetaError> {
    let (held, referrer): (bool, Option<String>) = sqlx::query_as(
        "SELECT CASE $2 WHEN 'blob'
                    THEN EXISTS (SELECT 1 FROM repository_blobs
                                 WHERE repository_id = $1 AND digest = $3)
                    ELSE EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $3)
                END,
                (SELECT m.digest FROM manifest_references mr
                 JOIN manifests m ON m.id = mr.manifest_id
                 WHERE mr.digest = $3 AND mr.kind = $2 AND m.repository_id = $1
                 ORDER BY m.id LIMIT 1)",
    )
    .bind(repo_id)
    .bind(kind)
    .bind(digest)
    .fetch_one(c)
    .await
    .map_err(db_err)?;
    Ok((held, referrer.as_deref().map(parse_digest).transpose()?))
}

/// Deletes `digest` of `kind` from the repository unless one of its manifests
/// references it. The repository is locked first, so no push into it can add a
/// reference between the check and the delete, which `delete` makes for the
/// repository's id.
async fn delete_unreferenced<'q>(
    c: &mut PgConnection,
    repository: &str,
    kind: &str,
    digest: &str,
    delete: impl FnOnce(i64) -> Query<'q, Postgres, PgArguments>,
) -> Result<Deletion, MetaError> {
    let Some(repo_id) = lock_repository(c, repository).await? else {
        return Ok(Deletion::NotFound);
    };
    match held_and_referrer(c, repo_id, kind, digest).await? {
        (false, _) => Ok(Deletion::NotFound),
        (true, Some(referrer)) => Ok(Deletion::ReferencedBy(referrer)),
        (true, None) => {
            delete(repo_id).execute(c).await.map_err(db_err)?;
            Ok(Deletion::Deleted)
        }
    }
}

/// Unlinks a blob unless a manifest of the repository references it.
pub async fn unlink_blob(
    c: &mut PgConnection,
    repository: &str,
    digest: &str,
) -> Result<Deletion, MetaError> {
    delete_unreferenced(c, repository, "blob", digest, |repo_id| {
        sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
    })
    .await
}

/// Deletes a manifest (its tags and references cascade) unless an index of the
/// repository lists it. The repository's links to the blobs it referenced are set to
/// `now`: garbage collection counts their grace period from the delete.
pub async fn delete_manifest(
    c: &mut PgConnection,
    repository: &str,
    digest: &str,
    now: i64,
) -> Result<Deletion, MetaError> {
    delete_unreferenced(c, repository, "manifest", digest, |repo_id| {
        sqlx::query(
            "WITH gone AS (
                 DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 RETURNING id)
             UPDATE repository_blobs SET created_at = $3
             WHERE repository_id = $1
               AND digest IN (SELECT mr.digest FROM manifest_references mr
                              JOIN gone ON gone.id = mr.manifest_id
                              WHERE mr.kind = 'blob')",
        )
        .bind(repo_id)
        .bind(digest)
        .bind(now)
    })
    .await
}

/// Counts the open sessions and inserts the new one when the limits allow and its id is
/// not taken (it has a session or was ended), in one round trip (`open_upload_session`,
/// migrations 0004 and 0021): under `lock` when given, so that no other creation counts
/// between this count and this insert.
pub async fn create_upload(
    c: impl PgExecutor<'_>,
    lock: Option<Lock>,
    s: &UploadSession,
    limits: SessionLimits,
) -> Result<(), CreateUploadError> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (taken, open, in_repository): (bool, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT taken, total, in_repository
         FROM open_upload_session($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(lock.map(Lock::key))
    .bind(s.id.as_str())
    .bind(s.repository.as_str())
    .bind(s.algorithm.as_str())
    .bind(s.offset as i64)
    .bind(&s.hash_state)
    .bind(s.verified_by)
    .bind(s.verified_digest.as_ref().map(Digest::as_str))
    .bind(s.created_at)
    .bind(s.updated_at)
    .bind(clamp(limits.total))
    .bind(clamp(limits.per_repository))
    .fetch_one(c)
    .await
    .map_err(db_err)?;
    if taken {
        return Err(CreateUploadError::Taken);
    }
    // An id not taken comes with both counts.
    let count = |n: Option<i64>| n.unwrap_or_default() as u64;
    let (open, in_repository) = (count(open), count(in_repository));
    if open >= limits.total {
        return Err(CreateUploadError::TooManySessions { open });
    }
    if in_repository >= limits.per_repository {
        return Err(CreateUploadError::TooManyInRepository {
            open: in_repository,
        });
    }
    Ok(())
}

/// A session from a row of [`UPLOAD_COLUMNS`].
fn upload_row(r: &PgRow) -> Result<UploadSession, MetaError> {
    let text = |i: usize| r.try_get::<&str, _>(i).map_err(db_err);
    Ok(UploadSession {
        id: UploadId::parse(text(0)?).map_err(|e| corrupt("upload id", e))?,
        repository: parse_repository(text(1)?)?,
        algorithm: Algorithm::parse(text(2)?).map_err(|e| corrupt("algorithm", e))?,
        offset: r.try_get::<i64, _>(3).map_err(db_err)? as u64,
        hash_state: r.try_get(4).map_err(db_err)?,
        verified_by: r.try_get(5).map_err(db_err)?,
        verified_digest: r
            .try_get::<Option<&str>, _>(6)
            .map_err(db_err)?
            .map(parse_digest)
            .transpose()?,
        created_at: r.try_get(7).map_err(db_err)?,
        updated_at: r.try_get(8).map_err(db_err)?,
    })
}

/// How many columns [`UPLOAD_COLUMNS`] names.
const UPLOAD_COLUMN_COUNT: usize = 9;

/// The columns [`upload_row`] reads, in its order.
const UPLOAD_COLUMNS: &str = "id, repository, algorithm, \"offset\", hash_state, verified_by, \
                              verified_digest, created_at, updated_at";

pub async fn upload(pool: &PgPool, id: &str) -> Result<Option<UploadSession>, MetaError> {
    sqlx::query(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?
    .as_ref()
    .map(upload_row)
    .transpose()
}

/// Moves a session over appended bytes, compare-and-set on the offset: of two nodes
/// moving it from the same offset, the second finds it moved (PostgreSQL re-checks the
/// condition on the row the first one committed) and changes nothing.
pub async fn advance_upload(
    c: impl PgExecutor<'_>,
    id: &str,
    advance: &UploadAdvance,
) -> Result<bool, MetaError> {
    sqlx::query(
        "UPDATE uploads
         SET \"offset\" = $3, hash_state = $4, verified_digest = NULL, updated_at = $5,
             verified_by = CASE WHEN verified_by = $6 THEN verified_by END
         WHERE id = $1 AND \"offset\" = $2",
    )
    .bind(id)
    .bind(advance.from as i64)
    .bind(advance.to as i64)
    .bind(&advance.hash_state)
    .bind(advance.now)
    .bind(advance.writer)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1)
    .map_err(db_err)
}

/// Claims session `id` for `holder` until `until` unless another claim holds at `now`;
/// a granted claim comes with the bytes of all open sessions, summed in the same
/// statement.
pub async fn lease_upload(
    pool: &PgPool,
    id: &str,
    holder: i64,
    now: i64,
    until: i64,
) -> Result<UploadLease, MetaError> {
    let granted = sqlx::query(&format!(
        "UPDATE uploads SET lease_holder = $2, lease_until = $4
         WHERE id = $1 AND (lease_holder IS NULL OR lease_holder = $2 OR lease_until <= $3)
         RETURNING {UPLOAD_COLUMNS},
                   (SELECT coalesce(sum(\"offset\"), 0)::BIGINT FROM uploads)"
    ))
    .bind(id)
    .bind(holder)
    .bind(now)
    .bind(until)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    if let Some(row) = granted {
        return Ok(UploadLease::Granted(Box::new(GrantedUpload {
            session: upload_row(&row)?,
            open_bytes: row.try_get::<i64, _>(UPLOAD_COLUMN_COUNT).map_err(db_err)? as u64,
        })));
    }
    let exists = sqlx::query("SELECT 1 FROM uploads WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(match exists {
        Some(_) => UploadLease::Held,
        None => UploadLease::Missing,
    })
}

/// Extends `holder`'s claim on session `id` to `until` if it still holds it.
pub async fn renew_upload_lease(
    c: impl PgExecutor<'_>,
    id: &str,
    holder: i64,
    until: i64,
) -> Result<bool, MetaError> {
    sqlx::query("UPDATE uploads SET lease_until = $3 WHERE id = $1 AND lease_holder = $2")
        .bind(id)
        .bind(holder)
        .bind(until)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(db_err)
}

/// Ends `holder`'s claim on session `id`.
pub async fn release_upload(
    c: impl PgExecutor<'_>,
    id: &str,
    holder: i64,
) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE uploads SET lease_holder = NULL, lease_until = NULL
         WHERE id = $1 AND lease_holder = $2",
    )
    .bind(id)
    .bind(holder)
    .execute(c)
    .await
    .map(drop)
    .map_err(db_err)
}

pub async fn record_upload_digest(
    c: impl PgExecutor<'_>,
    id: &str,
    size: u64,
    digest: &str,
) -> Result<bool, MetaError> {
    sqlx::query("UPDATE uploads SET verified_digest = $3 WHERE id = $1 AND \"offset\" = $2")
        .bind(id)
        .bind(size as i64)
        .bind(digest)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(db_err)
}

/// Ends session `id` in one statement: deletes its row, if any, and records the id as
/// ended at `now` unless it already is. Returns whether the id was open: it had a row,
/// or it had none and was not ended yet.
pub async fn delete_upload(c: impl PgExecutor<'_>, id: &str, now: i64) -> Result<bool, MetaError> {
    sqlx::query_scalar(
        "WITH deleted AS (
             DELETE FROM uploads WHERE id = $1 RETURNING id),
         ended AS (
             INSERT INTO ended_uploads (id, ended_at) VALUES ($1, $2)
             ON CONFLICT (id) DO NOTHING RETURNING id)
         SELECT EXISTS (SELECT 1 FROM deleted) OR EXISTS (SELECT 1 FROM ended)",
    )
    .bind(id)
    .bind(now)
    .fetch_one(c)
    .await
    .map_err(db_err)
}

/// Whether the id was ended and not yet purged.
pub async fn upload_ended(c: impl PgExecutor<'_>, id: &str) -> Result<bool, MetaError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ended_uploads WHERE id = $1)")
        .bind(id)
        .fetch_one(c)
        .await
        .map_err(db_err)
}

/// Forgets the ids ended before `before`, and the blobs swept longer ago than
/// [`SWEPT_BLOBS_KEPT_FOR`] (by the database's clock); returns how many ids.
pub async fn purge_ended_uploads(pool: &PgPool, before: i64) -> Result<u64, MetaError> {
    // The tombstones of swept blobs go by the database's clock, which wrote them.
    sqlx::query("DELETE FROM swept_blobs WHERE swept_at < clock_ms() - $1")
        .bind(SWEPT_BLOBS_KEPT_FOR.as_millis() as i64)
        .execute(pool)
        .await
        .map_err(db_err)?;
    sqlx::query("DELETE FROM ended_uploads WHERE ended_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err)
}

pub async fn stale_uploads(pool: &PgPool, before: i64) -> Result<Vec<UploadId>, MetaError> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
        .bind(before)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    Ok(ids
        .iter()
        .filter_map(|id| UploadId::parse(id).ok())
        .collect())
}

/// The columns `push_manifest` answers: its outcome, the 1-based position of what failed,
/// the failed reference's actual size, the stored manifest's media type and whether the
/// project's warning mark needs a look.
type Outcome = (
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<bool>,
);

/// What [`put_manifest`] did.
pub enum ManifestPut {
    /// The manifest was committed; whether its project's warning mark needs a look.
    Stored(WarningMark),
    /// There is no such repository; nothing was changed.
    RepositoryAbsent,
    /// A quota trigger refused the push (its project's limit); nothing was changed.
    OverQuota,
    /// A concurrent write made the push's transaction fail (a quota limit set while it
    /// counted, a deadlock); nothing was changed, and the push may be tried again.
    Conflicted,
}

/// Whether a statement failed on a concurrent transaction (SQLSTATE 40001, a
/// serialization failure, or 40P01, a deadlock), so that trying it again may succeed.
fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if matches!(d.code().as_deref(), Some("40001" | "40P01")))
}

/// Commits a manifest with its references, tags and audit entry, in one statement (the
/// `push_manifest` function): the repository's row is locked first, so no delete in the
/// repository runs between the checks and the commit, and nothing is changed unless
/// every check passes. The guard, if any, is checked first; then blobs before children,
/// each as the repository holds it and with its declared size; the first failure is the
/// error.
pub async fn put_manifest(
    c: impl PgExecutor<'_>,
    m: &NewManifest,
) -> Result<ManifestPut, PutManifestError> {
    let references: Vec<(&str, &Digest, u64)> = (m.blobs.iter().map(|(d, s)| ("blob", d, *s)))
        .chain(m.children.iter().map(|(d, s)| ("manifest", d, *s)))
        .collect();
    let kinds: Vec<&str> = references.iter().map(|r| r.0).collect();
    let digests: Vec<&str> = references.iter().map(|r| r.1.as_str()).collect();
    let sizes: Vec<i64> = references.iter().map(|r| r.2 as i64).collect();
    // A statement may not update one tag twice.
    let mut tags: Vec<&str> = m.tags.iter().map(|t| t.as_str()).collect();
    tags.sort_unstable();
    tags.dedup();
    let audit = m.audit.as_ref();
    let guard = m.guard.as_ref();
    let protected: Vec<&str> =
        guard.map_or(Vec::new(), |g| g.tags.iter().map(Tag::as_str).collect());
    let (outcome, failed_at, actual, stored, watched): Outcome = match sqlx::query_as(
        "SELECT outcome, failed_at, actual_size, stored_media_type, quota_watched
             FROM push_manifest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                               $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
    )
    .bind(m.repository.as_str())
    .bind(m.pushed_at)
    .bind(m.digest.as_str())
    .bind(&m.media_type)
    .bind(&m.artifact_type)
    .bind(&m.annotations)
    .bind(m.subject.as_ref().map(Digest::as_str))
    .bind(&m.content[..])
    .bind(&kinds)
    .bind(&digests)
    .bind(&sizes)
    .bind(&tags)
    .bind(guard.and_then(|g| g.project_id))
    .bind(guard.map(|g| g.revision))
    .bind(&protected)
    .bind(audit.and_then(|e| e.project_id))
    .bind(audit.map(|e| e.username.as_str()))
    .bind(audit.map(|e| e.operation.as_str()))
    .bind(audit.map(|e| e.resource_type.as_str()))
    .bind(audit.map(|e| e.resource.as_str()))
    .bind(audit.map(|e| e.success))
    .bind(audit.map(|e| e.client_ip.as_str()))
    .bind(audit.map(|e| e.op_time))
    .fetch_one(c)
    .await
    {
        Ok(row) => row,
        Err(e) if crate::quotas::is_quota_refusal(&e) => return Ok(ManifestPut::OverQuota),
        Err(e) if is_conflict(&e) => return Ok(ManifestPut::Conflicted),
        Err(e) => return Err(db_err(e).into()),
    };
    let failed = failed_at
        .and_then(|n| usize::try_from(n).ok()?.checked_sub(1))
        .and_then(|i| references.get(i));
    match (outcome.as_str(), failed, stored) {
        ("stored", _, _) => Ok(ManifestPut::Stored(if watched == Some(false) {
            WarningMark::Unwatched
        } else {
            WarningMark::Watched
        })),
        ("absent", _, _) => Ok(ManifestPut::RepositoryAbsent),
        ("media_type", _, Some(stored)) => Err(PutManifestError::MediaTypeConflict { stored }),
        ("rules_changed", _, _) => Err(PutManifestError::Stale(GuardFailure::RulesChanged)),
        ("immutable", _, _) => {
            match failed_at.and_then(|n| protected.get(usize::try_from(n).ok()?.checked_sub(1)?)) {
                Some(tag) => Err(PutManifestError::TagProtected(
                    Tag::parse(tag).map_err(|e| corrupt("tag", e))?,
                )),
                None => Err(MetaError(format!(
                    "push_manifest answered immutable at {failed_at:?}"
                ))
                .into()),
            }
        }
        ("reference", Some(failed), _) => Err(reference_error(failed, actual.map(|a| a as u64))),
        _ => Err(MetaError(format!(
            "push_manifest answered {outcome:?} at {failed_at:?}"
        ))
        .into()),
    }
}

/// Why a manifest's reference (its kind, digest and declared size) does not hold, given
/// the size the repository holds it with, if it holds it at all.
fn reference_error(
    (kind, digest, declared): &(&str, &Digest, u64),
    actual: Option<u64>,
) -> PutManifestError {
    let (digest, declared) = ((*digest).clone(), *declared);
    match (*kind == "blob", actual) {
        (true, None) => PutManifestError::BlobUnknown(digest),
        (false, None) => PutManifestError::ManifestUnknown(digest),
        (true, Some(actual)) => PutManifestError::SizeMismatch {
            digest,
            declared,
            actual,
        },
        (false, Some(actual)) => PutManifestError::ManifestSizeMismatch {
            digest,
            declared,
            actual,
        },
    }
}

fn stored_manifest(r: &PgRow) -> Result<StoredManifest, MetaError> {
    Ok(StoredManifest {
        digest: parse_digest(r.try_get(0).map_err(db_err)?)?,
        media_type: r.try_get(1).map_err(db_err)?,
        size: r.try_get::<i64, _>(2).map_err(db_err)? as u64,
        cached: None,
    })
}

/// Resolves a reference to its manifest row (digest, media type and size), with the
/// repository's version as the same statement read it.
pub async fn manifest_row(
    pool: &PgPool,
    repository: &str,
    reference: &Reference,
) -> Result<Option<(StoredManifest, RepositoryVersion)>, MetaError> {
    let (sql, key) = match reference {
        Reference::Tag(tag) => (
            "SELECT m.digest, m.media_type, m.size, r.id, r.tag_version FROM repositories r
             JOIN tags t ON t.repository_id = r.id
             JOIN manifests m ON m.id = t.manifest_id
             WHERE r.name = $1 AND t.name = $2",
            tag.as_str(),
        ),
        Reference::Digest(digest) => (
            "SELECT m.digest, m.media_type, m.size, r.id, r.tag_version FROM repositories r
             JOIN manifests m ON m.repository_id = r.id
             WHERE r.name = $1 AND m.digest = $2",
            digest.as_str(),
        ),
    };
    let Some(row) = sqlx::query(sql)
        .bind(repository)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?
    else {
        return Ok(None);
    };
    let version = RepositoryVersion {
        id: row.try_get(3).map_err(db_err)?,
        version: row.try_get(4).map_err(db_err)?,
    };
    Ok(Some((stored_manifest(&row)?, version)))
}

/// Whether manifest `digest` is in `repository`.
pub async fn manifest_exists(
    pool: &PgPool,
    repository: &str,
    digest: &str,
) -> Result<bool, MetaError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM repositories r JOIN manifests m ON m.repository_id = r.id
                        WHERE r.name = $1 AND m.digest = $2)",
    )
    .bind(repository)
    .bind(digest)
    .fetch_one(pool)
    .await
    .map_err(db_err)
}

/// The stored bytes of manifest `digest` in `repository`.
pub async fn manifest_content(
    pool: &PgPool,
    repository: &str,
    digest: &str,
) -> Result<Option<Bytes>, MetaError> {
    let content: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT m.content FROM repositories r JOIN manifests m ON m.repository_id = r.id
         WHERE r.name = $1 AND m.digest = $2",
    )
    .bind(repository)
    .bind(digest)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    Ok(content.map(Bytes::from))
}

/// Deletes one tag, the repository locked first (as by every write to its tags, so two
/// of them never wait on each other's rows in opposite orders), and records the
/// manifest it named as untagged at `now`.
pub async fn delete_tag(
    c: &mut PgConnection,
    repository: &str,
    tag: &str,
    now: i64,
) -> Result<bool, MetaError> {
    let Some(repo_id) = lock_repository(c, repository).await? else {
        return Ok(false);
    };
    sqlx::query_scalar::<_, bool>(
        "WITH gone AS (
             DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING manifest_id),
         untagged AS (
             UPDATE manifests SET untagged_at = $3 WHERE id IN (SELECT manifest_id FROM gone))
         SELECT EXISTS (SELECT 1 FROM gone)",
    )
    .bind(repo_id)
    .bind(tag)
    .bind(now)
    .fetch_one(c)
    .await
    .map_err(db_err)
}

/// One page of referrers in digest order, after `after` (`""` for the first page). Each
/// form of the query (with or without an artifact type) walks an index of its own in
/// digest order.
pub async fn referrers(
    pool: &PgPool,
    repository: &str,
    subject: &str,
    artifact_type: Option<&str>,
    after: &str,
    limit: ReferrerLimit,
) -> Result<ReferrerPage, MetaError> {
    let query = match artifact_type {
        Some(artifact_type) => sqlx::query(REFERRERS_OF_TYPE)
            .bind(repository)
            .bind(subject)
            .bind(artifact_type),
        None => sqlx::query(REFERRERS).bind(repository).bind(subject),
    };
    let rows = query
        .bind(after)
        .bind(i64::from(limit.count) + 1)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    let mut page = ReferrerPage {
        referrers: Vec::new(),
        more: false,
    };
    let mut bytes = 0_u64;
    for r in &rows {
        let referrer = Referrer {
            digest: parse_digest(r.try_get(0).map_err(db_err)?)?,
            media_type: r.try_get(1).map_err(db_err)?,
            size: r.try_get::<i64, _>(2).map_err(db_err)? as u64,
            artifact_type: r.try_get(3).map_err(db_err)?,
            annotations: r.try_get(4).map_err(db_err)?,
        };
        bytes = bytes.saturating_add(referrer.listed_size());
        let full = page.referrers.len() == limit.count as usize
            || (bytes > limit.bytes && !page.referrers.is_empty());
        if full {
            page.more = true;
            break;
        }
        page.referrers.push(referrer);
    }
    Ok(page)
}

/// A page of all the referrers of a subject; it walks `manifests_subject`. The
/// repository is looked up first, so that its id bounds the walk of the index (under a
/// join the rows would come in the repository's order, and need a sort).
pub(crate) const REFERRERS: &str =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
     FROM manifests m
     WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $1)
       AND m.subject = $2 AND m.digest > $3
     ORDER BY m.digest
     LIMIT $4";

/// A page of the referrers of a subject with one artifact type; it walks
/// `manifests_subject_type`, so it reads no referrer of another type.
pub(crate) const REFERRERS_OF_TYPE: &str =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
     FROM manifests m
     WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $1)
       AND m.subject = $2 AND m.artifact_type = $3 AND m.digest > $4
     ORDER BY m.digest
     LIMIT $5";

/// Stamps last-pull times and adds to pull counts. The repositories are locked first,
/// in id order: every other write locks its repository before its manifests and tags,
/// and batches from several nodes lock theirs in the same order, so none of them waits
/// on another in a cycle. Only the repositories so locked are written: one made again
/// since (a new row of the same name) is not the one pulled.
pub async fn record_pulls(
    c: &mut PgConnection,
    pulls: &[PullRecord],
    at: i64,
) -> Result<(), MetaError> {
    if pulls.is_empty() {
        return Ok(());
    }
    let repositories: Vec<&str> = pulls.iter().map(|p| p.repository.as_str()).collect();
    let digests: Vec<&str> = pulls.iter().map(|p| p.digest.as_str()).collect();
    let tags: Vec<Option<&str>> = pulls
        .iter()
        .map(|p| p.tag.as_ref().map(|t| t.as_str()))
        .collect();
    let counts: Vec<i64> = pulls
        .iter()
        .map(|p| i64::try_from(p.count).unwrap_or(i64::MAX))
        .collect();
    // Only the rows locked here are touched below: a repository made (again) after this
    // statement is a row the batch does not hold, and its pulls are dropped.
    let locked: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, name FROM repositories WHERE name = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&repositories)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    let (ids, names): (Vec<i64>, Vec<String>) = locked.into_iter().unzip();
    sqlx::query(
        "WITH pulls AS (
             SELECT r.id AS repository_id, p.digest, p.tag, p.count
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
                  AS p(repository, digest, tag, count)
             JOIN unnest($6::bigint[], $7::text[]) AS r(id, name) ON r.name = p.repository),
         counted AS (
             UPDATE repositories r SET pull_count = r.pull_count + n.count
             FROM (SELECT repository_id, sum(count)::BIGINT AS count FROM pulls
                   GROUP BY repository_id) AS n
             WHERE r.id = n.repository_id),
         artifacts AS (
             UPDATE manifests m SET pulled_at = $5
             FROM pulls WHERE m.repository_id = pulls.repository_id AND m.digest = pulls.digest)
         UPDATE tags t SET pulled_at = $5
         FROM pulls WHERE t.repository_id = pulls.repository_id AND t.name = pulls.tag",
    )
    .bind(&repositories)
    .bind(&digests)
    .bind(&tags)
    .bind(&counts)
    .bind(at)
    .bind(&ids)
    .bind(&names)
    .execute(c)
    .await
    .map(drop)
    .map_err(db_err)
}
