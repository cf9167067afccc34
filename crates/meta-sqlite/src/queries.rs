//! Every SQL statement of the SQLite adapter, one function per operation.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_meta::{
    CreateUploadError, Deletion, GrantedUpload, MetaError, NewManifest, PullRecord,
    PutManifestError, Referrer, ReferrerLimit, ReferrerPage, SWEPT_BLOBS_KEPT_FOR, SessionLimits,
    StoredManifest, TagPage, UploadAdvance, UploadLease, UploadSession, Visibility,
};
use berth_oci::{Algorithm, Digest, Reference, RepositoryName, UploadId};
use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db_err;

fn page(mut names: Vec<String>, limit: u32) -> TagPage {
    let more = names.len() > limit as usize;
    names.truncate(limit as usize);
    TagPage::new(names, more)
}

pub(crate) fn digest_col(text: String) -> rusqlite::Result<Digest> {
    Digest::parse(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub fn catalog(
    c: &Connection,
    visibility: &Visibility,
    last: &str,
    limit: u32,
) -> rusqlite::Result<TagPage> {
    let (condition, mut values) = crate::projects::visibility_condition(visibility, 3);
    let mut stmt = c.prepare_cached(&format!(
        "SELECT r.name FROM repositories r JOIN projects p ON p.id = r.project_id
         WHERE r.name > ?1 AND {condition} ORDER BY r.name LIMIT ?2"
    ))?;
    values.splice(
        0..0,
        [
            Value::Text(last.to_owned()),
            Value::Integer(i64::from(limit) + 1),
        ],
    );
    let names = stmt
        .query_map(rusqlite::params_from_iter(values), |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(page(names, limit))
}

/// A repository's id and tag-list version.
pub fn repository_tag_version(
    c: &Connection,
    repository: &str,
) -> rusqlite::Result<Option<(i64, i64)>> {
    c.prepare_cached("SELECT id, tag_version FROM repositories WHERE name = ?1")?
        .query_row([repository], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Up to `limit` tags of a repository after `last`, in `berth_oci::tag_listing_order`:
/// case-insensitively, then by bytes. The first condition bounds the walk of the
/// `tags_listing` index (migration 0004); the second skips the names equal to `last` but
/// for case that sort before it, and `last` itself.
pub fn tags(c: &Connection, repo_id: i64, last: &str, limit: u32) -> rusqlite::Result<TagPage> {
    let mut stmt = c.prepare_cached(TAGS_AFTER)?;
    let names = stmt
        .query_map(params![repo_id, last, i64::from(limit) + 1], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(page(names, limit))
}

pub(crate) const TAGS_AFTER: &str = "SELECT name FROM tags
     WHERE repository_id = ?1 AND name COLLATE NOCASE >= ?2
       AND (name COLLATE NOCASE > ?2 OR name > ?2)
     ORDER BY name COLLATE NOCASE, name LIMIT ?3";

/// Creates the project and repository on first use; returns the repository id.
pub fn ensure_repository(
    c: &Connection,
    repository: &RepositoryName,
    now: i64,
) -> Result<i64, MetaError> {
    // A project made by a push (open mode) belongs to the first administrator.
    let exists = c
        .prepare_cached("SELECT 1 FROM projects WHERE name = ?1")
        .and_then(|mut s| s.exists(params![repository.project()]))
        .map_err(db_err)?;
    if !exists {
        let id = crate::next_id(c, crate::Sequence::Projects)?;
        c.prepare_cached(
            "INSERT INTO projects (id, name, created_at, updated_at, owner_id)
             VALUES (?3, ?1, ?2, ?2, (SELECT min(id) FROM users WHERE sysadmin))",
        )
        .and_then(|mut s| s.execute(params![repository.project(), now, id]))
        .map_err(db_err)?;
    }
    c.prepare_cached(
        "INSERT INTO repositories (project_id, name, created_at, updated_at)
         SELECT id, ?2, ?3, ?3 FROM projects WHERE name = ?1
         ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at
         RETURNING id",
    )
    .and_then(|mut s| {
        s.query_row(
            params![repository.project(), repository.as_str(), now],
            |r| r.get(0),
        )
    })
    .map_err(db_err)
}

pub fn linked_blob(
    c: &Connection,
    repository: &str,
    digest: &str,
) -> rusqlite::Result<Option<u64>> {
    c.prepare_cached(
        "SELECT b.size FROM repositories r
         JOIN repository_blobs rb ON rb.repository_id = r.id
         JOIN blobs b ON b.digest = rb.digest
         WHERE r.name = ?1 AND rb.digest = ?2 AND b.status = 'present'",
    )?
    .query_row([repository, digest], |r| r.get(0))
    .optional()
}

pub fn blob_repositories(
    c: &Connection,
    digest: &str,
    limit: u32,
) -> rusqlite::Result<Vec<RepositoryName>> {
    c.prepare_cached(
        "SELECT r.name FROM repository_blobs rb
         JOIN repositories r ON r.id = rb.repository_id
         JOIN blobs b ON b.digest = rb.digest
         WHERE rb.digest = ?1 AND b.status = 'present'
         ORDER BY r.name LIMIT ?2",
    )?
    .query_map(params![digest, limit], |r| r.get::<_, String>(0))?
    .map(|name| {
        let name = name?;
        RepositoryName::parse(&name).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .collect()
}

/// Whether blob `digest` is marked for deletion: it may not be linked again.
pub fn blob_deleting(c: &Connection, digest: &str) -> Result<bool, MetaError> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = ?1 AND status = 'deleting')",
    )
    .and_then(|mut s| s.query_row(params![digest], |r| r.get(0)))
    .map_err(db_err)
}

/// Records a blob and links it to the repository; callers check [`blob_deleting`] first,
/// in the same transaction. A link made again is set to `now` (never back): the blob
/// was acknowledged anew, and garbage collection counts its grace period from then.
pub fn link_blob(
    c: &Connection,
    repo_id: i64,
    digest: &str,
    size: u64,
    now: i64,
) -> Result<(), MetaError> {
    c.prepare_cached(
        "INSERT INTO blobs (digest, size, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (digest) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![digest, size as i64, now]))
    .map_err(db_err)?;
    link_recorded_blob(c, repo_id, digest, now)
}

/// Whether blob `digest` is recorded and not marked for deletion: its bytes are stored.
pub fn blob_present(c: &Connection, digest: &str) -> Result<bool, MetaError> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = ?1 AND status = 'present')")
        .and_then(|mut s| s.query_row(params![digest], |r| r.get(0)))
        .map_err(db_err)
}

/// Links a recorded blob to the repository; a link made again is set to `now` (never
/// back).
pub fn link_recorded_blob(
    c: &Connection,
    repo_id: i64,
    digest: &str,
    now: i64,
) -> Result<(), MetaError> {
    c.prepare_cached(
        "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO UPDATE SET created_at = max(created_at, excluded.created_at)",
    )
    .and_then(|mut s| s.execute(params![repo_id, digest, now]))
    .map_err(db_err)?;
    Ok(())
}

/// The first manifest of the repository that references `digest` as `kind` (`blob` for a
/// config or layer, `manifest` for an index child).
fn referrer_in_repository(
    c: &Connection,
    repo_id: i64,
    kind: &str,
    digest: &str,
) -> Result<Option<Digest>, MetaError> {
    c.prepare_cached(
        "SELECT m.digest FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
         WHERE mr.digest = ?1 AND mr.kind = ?2 AND m.repository_id = ?3
         ORDER BY m.id LIMIT 1",
    )
    .and_then(|mut s| {
        s.query_row(params![digest, kind, repo_id], |r| digest_col(r.get(0)?))
            .optional()
    })
    .map_err(db_err)
}

fn repository_id(c: &Connection, repository: &str) -> Result<Option<i64>, MetaError> {
    c.prepare_cached("SELECT id FROM repositories WHERE name = ?1")
        .and_then(|mut s| s.query_row([repository], |r| r.get(0)).optional())
        .map_err(db_err)
}

/// Unlinks a blob unless a manifest of the repository references it; the check and the
/// delete run in the caller's transaction, so no manifest push can slip between them.
pub fn unlink_blob(c: &Connection, repository: &str, digest: &str) -> Result<Deletion, MetaError> {
    let Some(repo_id) = repository_id(c, repository)? else {
        return Ok(Deletion::NotFound);
    };
    let linked = c
        .prepare_cached("SELECT 1 FROM repository_blobs WHERE repository_id = ?1 AND digest = ?2")
        .and_then(|mut s| s.exists(params![repo_id, digest]))
        .map_err(db_err)?;
    if !linked {
        return Ok(Deletion::NotFound);
    }
    if let Some(referrer) = referrer_in_repository(c, repo_id, "blob", digest)? {
        return Ok(Deletion::ReferencedBy(referrer));
    }
    c.prepare_cached("DELETE FROM repository_blobs WHERE repository_id = ?1 AND digest = ?2")
        .and_then(|mut s| s.execute(params![repo_id, digest]))
        .map_err(db_err)?;
    Ok(Deletion::Deleted)
}

/// Counts the open sessions and inserts the new one in the caller's transaction, so no
/// other creation can slip between the count and the insert; an id that is taken (it
/// has a session or was ended) is refused first.
pub fn create_upload(
    c: &Connection,
    s: &UploadSession,
    limits: SessionLimits,
) -> Result<(), CreateUploadError> {
    if upload_id_state(c, s.id.as_str())? != UploadIdState::Free {
        return Err(CreateUploadError::Taken);
    }
    let open: i64 = c
        .prepare_cached("SELECT count(*) FROM uploads")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(db_err)?;
    if open as u64 >= limits.total {
        return Err(CreateUploadError::TooManySessions { open: open as u64 });
    }
    let in_repository: i64 = c
        .prepare_cached("SELECT count(*) FROM uploads WHERE repository = ?1")
        .and_then(|mut st| st.query_row([s.repository.as_str()], |r| r.get(0)))
        .map_err(db_err)?;
    if in_repository as u64 >= limits.per_repository {
        return Err(CreateUploadError::TooManyInRepository {
            open: in_repository as u64,
        });
    }
    insert_upload(c, s, None)?;
    Ok(())
}

/// What a new session is recorded with besides its fields, when it is recorded as it
/// completes: the digest it pins, the holder of its claim and until when it holds.
pub struct PinnedAs<'a> {
    /// The digest the session publishes.
    pub digest: &'a str,
    /// The claim's holder…
    pub holder: i64,
    /// … and its end.
    pub until: i64,
}

/// Inserts the row of session `s`, pinned and claimed as `pinned` says (if at all).
pub fn insert_upload(
    c: &Connection,
    s: &UploadSession,
    pinned: Option<PinnedAs<'_>>,
) -> Result<(), MetaError> {
    c.prepare_cached(
        "INSERT INTO uploads
             (id, repository, algorithm, offset, hash_state, verified_by, verified_digest,
              created_at, updated_at, completing, lease_holder, lease_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.id.as_str(),
            s.repository.as_str(),
            s.algorithm.as_str(),
            s.offset as i64,
            s.hash_state,
            s.verified_by,
            s.verified_digest.as_ref().map(Digest::as_str),
            s.created_at,
            s.updated_at,
            pinned.as_ref().map(|p| p.digest),
            pinned.as_ref().map(|p| p.holder),
            pinned.as_ref().map(|p| p.until),
        ])
    })
    .map(drop)
    .map_err(db_err)
}

/// Where an upload id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadIdState {
    /// Neither open with a row nor ended: a new session may take it.
    Free,
    /// It has a session.
    Open,
    /// It was ended (and not purged yet).
    Ended,
}

/// Where upload id `id` stands.
pub fn upload_id_state(c: &Connection, id: &str) -> Result<UploadIdState, MetaError> {
    Ok(if upload_exists(c, id)? {
        UploadIdState::Open
    } else if upload_ended(c, id).map_err(db_err)? {
        UploadIdState::Ended
    } else {
        UploadIdState::Free
    })
}

/// The columns [`upload_row`] reads, in its order.
const UPLOAD_COLUMNS: &str = "id, repository, algorithm, offset, hash_state, verified_by, \
                              verified_digest, created_at, updated_at";

pub fn upload(c: &Connection, id: &str) -> rusqlite::Result<Option<UploadSession>> {
    c.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?1"
    ))?
    .query_row([id], upload_row)
    .optional()
}

/// A session from a row of [`UPLOAD_COLUMNS`].
fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadSession> {
    let conv = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let id: String = r.get(0)?;
    let repository: String = r.get(1)?;
    let algorithm: String = r.get(2)?;
    let offset: i64 = r.get(3)?;
    Ok(UploadSession {
        id: UploadId::parse(&id).map_err(|e| conv(0, e.to_string()))?,
        repository: RepositoryName::parse(&repository).map_err(|e| conv(1, e.to_string()))?,
        algorithm: Algorithm::parse(&algorithm).map_err(|e| conv(2, e.to_string()))?,
        offset: offset as u64,
        hash_state: r.get(4)?,
        verified_by: r.get(5)?,
        verified_digest: r.get::<_, Option<String>>(6)?.map(digest_col).transpose()?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub fn advance_upload(
    c: &Connection,
    id: &str,
    advance: &UploadAdvance,
) -> Result<bool, MetaError> {
    c.prepare_cached(
        "UPDATE uploads SET offset = ?3, hash_state = ?4, verified_digest = NULL, updated_at = ?5,
                verified_by = CASE WHEN verified_by = ?6 THEN verified_by END
         WHERE id = ?1 AND offset = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            advance.from as i64,
            advance.to as i64,
            advance.hash_state,
            advance.now,
            advance.writer
        ])
    })
    .map(|n| n == 1)
    .map_err(db_err)
}

/// Claims session `id` for `holder` until `until` unless another claim holds at `now`;
/// a granted claim comes with the bytes of all open sessions.
pub fn lease_upload(
    c: &Connection,
    id: &str,
    holder: i64,
    now: i64,
    until: i64,
) -> Result<UploadLease, MetaError> {
    let granted = c
        .prepare_cached(&format!(
            "UPDATE uploads SET lease_holder = ?2, lease_until = ?4
             WHERE id = ?1 AND (lease_holder IS NULL OR lease_holder = ?2 OR lease_until <= ?3)
             RETURNING {UPLOAD_COLUMNS}"
        ))
        .and_then(|mut s| {
            s.query_row(params![id, holder, now, until], upload_row)
                .optional()
        })
        .map_err(db_err)?;
    if let Some(session) = granted {
        return Ok(UploadLease::Granted(Box::new(GrantedUpload {
            session,
            open_bytes: upload_bytes(c).map_err(db_err)?,
        })));
    }
    Ok(if upload_exists(c, id)? {
        UploadLease::Held
    } else {
        UploadLease::Missing
    })
}

/// Extends `holder`'s claim on session `id` to `until` if it still holds it.
pub fn renew_upload_lease(
    c: &Connection,
    id: &str,
    holder: i64,
    until: i64,
) -> Result<bool, MetaError> {
    c.prepare_cached("UPDATE uploads SET lease_until = ?3 WHERE id = ?1 AND lease_holder = ?2")
        .and_then(|mut s| s.execute(params![id, holder, until]))
        .map(|n| n == 1)
        .map_err(db_err)
}

/// Ends `holder`'s claim on session `id`.
pub fn release_upload(c: &Connection, id: &str, holder: i64) -> Result<(), MetaError> {
    c.prepare_cached(
        "UPDATE uploads SET lease_holder = NULL, lease_until = NULL
         WHERE id = ?1 AND lease_holder = ?2",
    )
    .and_then(|mut s| s.execute(params![id, holder]))
    .map(drop)
    .map_err(db_err)
}

pub fn record_upload_digest(
    c: &Connection,
    id: &str,
    size: u64,
    digest: &str,
) -> Result<bool, MetaError> {
    c.prepare_cached("UPDATE uploads SET verified_digest = ?3 WHERE id = ?1 AND offset = ?2")
        .and_then(|mut s| s.execute(params![id, size as i64, digest]))
        .map(|n| n == 1)
        .map_err(db_err)
}

/// Ends session `id`: deletes its row, if any, and records the id as ended at `now`
/// unless it already is. Returns whether the id was open: it had a row, or it had none
/// and was not ended yet.
pub fn delete_upload(c: &Connection, id: &str, now: i64) -> Result<bool, MetaError> {
    let deleted = c
        .prepare_cached("DELETE FROM uploads WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db_err)?;
    let ended = c
        .prepare_cached(
            "INSERT INTO ended_uploads (id, ended_at) VALUES (?1, ?2)
             ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![id, now]))
        .map_err(db_err)?;
    Ok(deleted > 0 || ended > 0)
}

/// Whether upload id `id` was ended and not yet purged.
pub fn upload_ended(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM ended_uploads WHERE id = ?1")?
        .exists([id])
}

/// Milliseconds since the Unix epoch by the system clock, which the tombstones of swept
/// blobs are written by (migration 0022).
pub fn system_now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Forgets the upload ids ended before `before`, and the tombstones of blobs swept
/// longer ago than [`SWEPT_BLOBS_KEPT_FOR`] by the system clock; returns how many ids.
pub fn purge_ended_uploads(c: &Connection, before: i64) -> Result<u64, MetaError> {
    let kept_from = system_now_ms().saturating_sub(SWEPT_BLOBS_KEPT_FOR.as_millis() as i64);
    c.prepare_cached("DELETE FROM swept_blobs WHERE swept_at < ?1")
        .and_then(|mut s| s.execute([kept_from]))
        .map_err(db_err)?;
    c.prepare_cached("DELETE FROM ended_uploads WHERE ended_at < ?1")
        .and_then(|mut s| s.execute([before]))
        .map(|n| n as u64)
        .map_err(db_err)
}

/// Whether session `id` exists.
pub fn upload_exists(c: &Connection, id: &str) -> Result<bool, MetaError> {
    c.prepare_cached("SELECT 1 FROM uploads WHERE id = ?1")
        .and_then(|mut s| s.exists([id]))
        .map_err(db_err)
}

fn upload_bytes(c: &Connection) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT coalesce(sum(offset), 0) FROM uploads")?
        .query_row([], |r| Ok(r.get::<_, i64>(0)? as u64))
}

pub fn stale_uploads(c: &Connection, before: i64) -> rusqlite::Result<Vec<UploadId>> {
    let mut stmt = c.prepare_cached("SELECT id FROM uploads WHERE updated_at < ?1")?;
    let ids = stmt
        .query_map([before], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids
        .iter()
        .filter_map(|id| UploadId::parse(id).ok())
        .collect())
}

pub fn put_manifest(c: &Connection, m: &NewManifest) -> Result<(), PutManifestError> {
    let repo_id = ensure_repository(c, &m.repository, m.pushed_at)?;
    let mut blob_size = c
        .prepare_cached(
            "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository_id = ?1 AND rb.digest = ?2 AND b.status = 'present'",
        )
        .map_err(db_err)?;
    for (digest, declared) in &m.blobs {
        let actual: Option<i64> = blob_size
            .query_row(params![repo_id, digest.as_str()], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        match actual {
            None => return Err(PutManifestError::BlobUnknown(digest.clone())),
            Some(a) if a as u64 != *declared => {
                return Err(PutManifestError::SizeMismatch {
                    digest: digest.clone(),
                    declared: *declared,
                    actual: a as u64,
                });
            }
            Some(_) => {}
        }
    }
    let mut child_size = c
        .prepare_cached("SELECT size FROM manifests WHERE repository_id = ?1 AND digest = ?2")
        .map_err(db_err)?;
    for (digest, declared) in &m.children {
        let actual: Option<i64> = child_size
            .query_row(params![repo_id, digest.as_str()], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        match actual {
            None => return Err(PutManifestError::ManifestUnknown(digest.clone())),
            Some(a) if a as u64 != *declared => {
                return Err(PutManifestError::ManifestSizeMismatch {
                    digest: digest.clone(),
                    declared: *declared,
                    actual: a as u64,
                });
            }
            Some(_) => {}
        }
    }
    // One digest is served with one media type: a re-push of the same bytes under another
    // type would otherwise be acknowledged while its tags keep serving the first type.
    let stored: Option<String> = c
        .prepare_cached("SELECT media_type FROM manifests WHERE repository_id = ?1 AND digest = ?2")
        .and_then(|mut s| {
            s.query_row(params![repo_id, m.digest.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    if let Some(stored) = stored
        && stored != m.media_type
    {
        return Err(PutManifestError::MediaTypeConflict { stored });
    }
    crate::quotas::check_push(c, m)?;
    let manifest_id: i64 = c
        .prepare_cached(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, annotations,
                                    subject, size, content, pushed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at
             RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    repo_id,
                    m.digest.as_str(),
                    m.media_type,
                    m.artifact_type,
                    m.annotations,
                    m.subject.as_ref().map(Digest::as_str),
                    m.content.len() as i64,
                    &m.content[..],
                    m.pushed_at
                ],
                |r| r.get(0),
            )
        })
        .map_err(db_err)?;
    let mut reference = c
        .prepare_cached(
            "INSERT INTO manifest_references (manifest_id, kind, digest) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )
        .map_err(db_err)?;
    for (digest, _) in &m.blobs {
        reference
            .execute(params![manifest_id, "blob", digest.as_str()])
            .map_err(db_err)?;
    }
    for (digest, _) in &m.children {
        reference
            .execute(params![manifest_id, "manifest", digest.as_str()])
            .map_err(db_err)?;
    }
    let mut tag = c
        .prepare_cached(
            "INSERT INTO tags (repository_id, name, manifest_id, pushed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (repository_id, name)
             DO UPDATE SET manifest_id = excluded.manifest_id, pushed_at = excluded.pushed_at",
        )
        .map_err(db_err)?;
    for t in &m.tags {
        tag.execute(params![repo_id, t.as_str(), manifest_id, m.pushed_at])
            .map_err(db_err)?;
    }
    Ok(())
}

/// Resolves a reference to its manifest row: digest, media type and row id.
pub fn manifest_row(
    c: &Connection,
    repository: &str,
    reference: &Reference,
) -> rusqlite::Result<Option<StoredManifest>> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(StoredManifest {
            digest: digest_col(r.get(0)?)?,
            media_type: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            cached: None,
        })
    };
    match reference {
        Reference::Tag(tag) => c
            .prepare_cached(
                "SELECT m.digest, m.media_type, m.size FROM repositories r
                 JOIN tags t ON t.repository_id = r.id
                 JOIN manifests m ON m.id = t.manifest_id
                 WHERE r.name = ?1 AND t.name = ?2",
            )?
            .query_row([repository, tag.as_str()], row)
            .optional(),
        Reference::Digest(digest) => c
            .prepare_cached(
                "SELECT m.digest, m.media_type, m.size FROM repositories r
                 JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name = ?1 AND m.digest = ?2",
            )?
            .query_row([repository, digest.as_str()], row)
            .optional(),
    }
}

/// The row id of manifest `digest` in `repository`.
pub fn manifest_id(
    c: &Connection,
    repository: &str,
    digest: &str,
) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached(
        "SELECT m.id FROM repositories r JOIN manifests m ON m.repository_id = r.id
         WHERE r.name = ?1 AND m.digest = ?2",
    )?
    .query_row([repository, digest], |r| r.get(0))
    .optional()
}

/// The stored bytes of the manifest row `id`.
pub fn manifest_content(c: &Connection, id: i64) -> rusqlite::Result<Bytes> {
    c.prepare_cached("SELECT content FROM manifests WHERE id = ?1")?
        .query_row([id], |r| Ok(Bytes::from(r.get::<_, Vec<u8>>(0)?)))
}

/// Deletes a manifest (its tags and references cascade) unless an index of the repository
/// lists it; the check and the delete run in the caller's transaction. The repository's
/// links to the blobs it referenced are set to `now`, from when garbage collection
/// counts their grace period.
pub fn delete_manifest(
    c: &Connection,
    repository: &str,
    digest: &str,
    now: i64,
) -> Result<Deletion, MetaError> {
    let Some(repo_id) = repository_id(c, repository)? else {
        return Ok(Deletion::NotFound);
    };
    let exists = c
        .prepare_cached("SELECT 1 FROM manifests WHERE repository_id = ?1 AND digest = ?2")
        .and_then(|mut s| s.exists(params![repo_id, digest]))
        .map_err(db_err)?;
    if !exists {
        return Ok(Deletion::NotFound);
    }
    if let Some(referrer) = referrer_in_repository(c, repo_id, "manifest", digest)? {
        return Ok(Deletion::ReferencedBy(referrer));
    }
    c.prepare_cached(
        "UPDATE repository_blobs SET created_at = ?3
         WHERE repository_id = ?1
           AND digest IN (SELECT mr.digest FROM manifest_references mr
                          JOIN manifests m ON m.id = mr.manifest_id
                          WHERE m.repository_id = ?1 AND m.digest = ?2 AND mr.kind = 'blob')",
    )
    .and_then(|mut s| s.execute(params![repo_id, digest, now]))
    .map_err(db_err)?;
    c.prepare_cached("DELETE FROM manifests WHERE repository_id = ?1 AND digest = ?2")
        .and_then(|mut s| s.execute(params![repo_id, digest]))
        .map_err(db_err)?;
    Ok(Deletion::Deleted)
}

/// Deletes one tag and records the manifest it named as untagged at `now`.
pub fn delete_tag(
    c: &Connection,
    repository: &str,
    tag: &str,
    now: i64,
) -> Result<bool, MetaError> {
    const TAG: &str = "repository_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2";
    c.prepare_cached(&format!(
        "UPDATE manifests SET untagged_at = ?3 WHERE id = (SELECT manifest_id FROM tags WHERE {TAG})"
    ))
    .and_then(|mut s| s.execute(params![repository, tag, now]))
    .map_err(db_err)?;
    c.prepare_cached(&format!("DELETE FROM tags WHERE {TAG}"))
        .and_then(|mut s| s.execute([repository, tag]))
        .map(|n| n > 0)
        .map_err(db_err)
}

/// One page of referrers in digest order, after `after` (`""` for the first page).
///
/// Each form of the query (with or without an artifact type) walks an index of its own in
/// digest order, and rows are read one at a time, so a page stops at its byte budget
/// without loading the rows past it.
pub fn referrers(
    c: &Connection,
    repository: &str,
    subject: &str,
    artifact_type: Option<&str>,
    after: &str,
    limit: ReferrerLimit,
) -> rusqlite::Result<ReferrerPage> {
    let sql = match artifact_type {
        Some(_) => REFERRERS_OF_TYPE,
        None => REFERRERS,
    };
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params![
        repository,
        subject,
        artifact_type,
        after,
        i64::from(limit.count) + 1
    ])?;
    let mut page = ReferrerPage {
        referrers: Vec::new(),
        more: false,
    };
    let mut bytes = 0_u64;
    while let Some(r) = rows.next()? {
        let referrer = Referrer {
            digest: digest_col(r.get(0)?)?,
            media_type: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            artifact_type: r.get(3)?,
            annotations: r.get(4)?,
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

/// A page of all the referrers of a subject; it walks `manifests_subject` (migration
/// 0005). The parameters are numbered as in [`REFERRERS_OF_TYPE`], whose `?3`, the
/// artifact type, this one does not use.
pub(crate) const REFERRERS: &str =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
     FROM repositories r JOIN manifests m ON m.repository_id = r.id
     WHERE r.name = ?1 AND m.subject = ?2 AND m.digest > ?4
     ORDER BY m.digest
     LIMIT ?5";

/// A page of the referrers of a subject with one artifact type; it walks
/// `manifests_subject_type` (migration 0007), so it reads no referrer of another type.
pub(crate) const REFERRERS_OF_TYPE: &str =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
     FROM repositories r JOIN manifests m ON m.repository_id = r.id
     WHERE r.name = ?1 AND m.subject = ?2 AND m.artifact_type = ?3 AND m.digest > ?4
     ORDER BY m.digest
     LIMIT ?5";

pub fn record_pulls(c: &Connection, pulls: &[PullRecord], at: i64) -> Result<(), MetaError> {
    let mut artifact = c
        .prepare_cached(
            "UPDATE manifests SET pulled_at = ?3
             WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
        )
        .map_err(db_err)?;
    let mut tag = c
        .prepare_cached(
            "UPDATE tags SET pulled_at = ?3
             WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2",
        )
        .map_err(db_err)?;
    let mut count = c
        .prepare_cached("UPDATE repositories SET pull_count = pull_count + ?2 WHERE name = ?1")
        .map_err(db_err)?;
    for p in pulls {
        artifact
            .execute(params![p.repository.as_str(), p.digest.as_str(), at])
            .map_err(db_err)?;
        count
            .execute(params![p.repository.as_str(), p.count])
            .map_err(db_err)?;
        if let Some(t) = &p.tag {
            tag.execute(params![p.repository.as_str(), t.as_str(), at])
                .map_err(db_err)?;
        }
    }
    Ok(())
}
