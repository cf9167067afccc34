//! Garbage collection's steps. The single writer runs each in a transaction of its own,
//! so a pin and a mark of one digest never interleave. Sweeps are kept apart by locks
//! on files beside the database (one per shard of digests), held from the check of a
//! marked blob to the delete of its row: `berth gc` may sweep from another process than
//! the server's, or twice at once, and a lock goes with a process that dies. The bytes
//! are retired under a token drawn for the sweep, then discarded once the row is gone.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use berth_meta::{
    BlobQuota, CollectionStore, MarkedBlob, MetaError, NewUploadPin, PinOutcome, PinnedUpload,
    QuotaExceeded, RecordedBlob, SWEPT_BLOBS_KEPT_FOR, SweepBytes, SweepError, UnlinkBatch,
    UntaggedManifest, UploadPin, settle_retired,
};
use berth_oci::{Digest, RepositoryName};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, params};

use crate::queries::{PinnedAs, UploadIdState, system_now_ms};
use crate::writer::Durability;
use crate::{SqliteMetaStore, db_err, queries, quotas};

/// Pins the digest in the session, after moving the session over the pin's append (if
/// any), unless the quota of its project has no room for the blob.
fn pin_in(c: &Connection, pin: &UploadPin) -> Result<PinnedUpload, MetaError> {
    let (id, digest) = (pin.id.as_str(), pin.digest.as_str());
    let quota = quotas::blob_quota(c, pin.repository.project(), digest).map_err(db_err)?;
    if let Some(refusal) = refused(c, pin, quota.as_ref())? {
        return Ok(PinnedUpload {
            outcome: PinOutcome::OverQuota,
            refusal: Some(refusal),
        });
    }
    let placed = match &pin.append {
        Some(advance) => queries::advance_upload(c, id, advance)?,
        None => true,
    };
    let pinned = placed
        && c.prepare_cached("UPDATE uploads SET completing = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, digest]))
            .map_err(db_err)?
            == 1;
    let outcome = if pinned {
        revive(c, digest)?
    } else if queries::upload_exists(c, id)? {
        PinOutcome::Moved
    } else {
        PinOutcome::NoSession
    };
    Ok(PinnedUpload {
        outcome,
        refusal: None,
    })
}

/// Completes the new session `pin.session`, whose bytes were published at
/// `pin.published_at`, at `now` (by the system clock, as the tombstones of swept blobs
/// are written): links the blob and ends the id when no sweep can have taken the bytes
/// since; else records the session pinned on its digest and claimed, as [`pin_in`] pins
/// an existing one. Unless its id is taken or ended or the quota of its project has no
/// room for the blob.
fn pin_new_in(c: &Connection, pin: &NewUploadPin, now: i64) -> Result<PinnedUpload, MetaError> {
    let (session, digest) = (&pin.session, pin.digest.as_str());
    let quota = quotas::blob_quota(c, session.repository.project(), digest).map_err(db_err)?;
    let refusal = refusal(quota.as_ref(), session.offset);
    let outcome = match queries::upload_id_state(c, session.id.as_str())? {
        UploadIdState::Open => PinOutcome::Taken,
        UploadIdState::Ended => PinOutcome::NoSession,
        UploadIdState::Free if refusal.is_some() => PinOutcome::OverQuota,
        UploadIdState::Free => match linkable_in(c, pin, now)? {
            Some(repo_id) => {
                let updated = session.updated_at;
                queries::link_blob(c, repo_id, digest, session.offset, updated)?;
                queries::delete_upload(c, session.id.as_str(), updated)?;
                PinOutcome::Linked
            }
            None => {
                let pinned = PinnedAs {
                    digest,
                    holder: pin.holder,
                    until: pin.until,
                };
                queries::insert_upload(c, session, Some(pinned))?;
                revive(c, digest)?
            }
        },
    };
    Ok(PinnedUpload {
        refusal: refusal.filter(|_| outcome == PinOutcome::OverQuota),
        outcome,
    })
}

/// The id of the repository `pin` may link its blob in at once, its update time set,
/// when no sweep can have taken the bytes published at `pin.published_at` (as of `now`):
/// they were published within half [`SWEPT_BLOBS_KEPT_FOR`], no sweep deleted the
/// blob's row since (no tombstone is left), and the row, if any, is not marked.
fn linkable_in(c: &Connection, pin: &NewUploadPin, now: i64) -> Result<Option<i64>, MetaError> {
    let fresh_for = (SWEPT_BLOBS_KEPT_FOR / 2).as_millis() as i64;
    let digest = pin.digest.as_str();
    let untouched = now.saturating_sub(pin.published_at) < fresh_for
        && !c
            .prepare_cached("SELECT 1 FROM swept_blobs WHERE digest = ?1")
            .and_then(|mut s| s.exists([digest]))
            .map_err(db_err)?
        && !queries::blob_deleting(c, digest)?;
    if !untouched {
        return Ok(None);
    }
    c.prepare_cached("UPDATE repositories SET updated_at = ?2 WHERE name = ?1 RETURNING id")
        .and_then(|mut s| {
            s.query_row(
                params![pin.session.repository.as_str(), pin.session.updated_at],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(db_err)
}

/// Revives the blob of `digest` a pin was just placed on, if it is marked for deletion
/// ([`PinOutcome::Revived`]; else [`PinOutcome::Pinned`]). A sweep under way deletes the
/// row only while it is marked: it finds it revived, and restores what it retired.
fn revive(c: &Connection, digest: &str) -> Result<PinOutcome, MetaError> {
    let revived = c
        .prepare_cached(
            "UPDATE blobs SET status = 'present' WHERE digest = ?1 AND status = 'deleting'",
        )
        .and_then(|mut s| s.execute(params![digest]))
        .map_err(db_err)?;
    Ok(match revived {
        0 => PinOutcome::Pinned,
        _ => PinOutcome::Revived,
    })
}

/// Why `quota` refuses the pinned blob, if it does: its size is the session's offset
/// after the pin's append (no session, no refusal: the pin finds none).
fn refused(
    c: &Connection,
    pin: &UploadPin,
    quota: Option<&BlobQuota>,
) -> Result<Option<QuotaExceeded>, MetaError> {
    let size = match &pin.append {
        Some(advance) => Some(advance.to),
        None => queries::upload(c, pin.id.as_str())
            .map_err(db_err)?
            .map(|s| s.offset),
    };
    Ok(size.and_then(|size| refusal(quota, size)))
}

/// Why `quota` (if any) has no room for a blob of `size` bytes its project does not
/// count yet, if it has none.
fn refusal(quota: Option<&BlobQuota>, size: u64) -> Option<QuotaExceeded> {
    quota.and_then(|q| q.refusal(size))
}

/// A blob row read as (digest, size).
fn marked_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MarkedBlob> {
    Ok(MarkedBlob {
        digest: queries::digest_col(r.get(0)?)?,
        size: r.get::<_, i64>(1)? as u64,
    })
}

fn mark(
    c: &Connection,
    after: &str,
    limit: u32,
    before: i64,
) -> Result<Vec<MarkedBlob>, MetaError> {
    let mut marked = c
        .prepare_cached(
            "UPDATE blobs SET status = 'deleting'
             WHERE digest IN (
                 SELECT b.digest FROM blobs b
                 WHERE b.digest > ?1 AND b.status = 'present' AND b.created_at < ?3
                   AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
                   AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = b.digest)
                 ORDER BY b.digest LIMIT ?2)
             RETURNING digest, size",
        )
        .and_then(|mut s| {
            s.query_map(params![after, limit, before], marked_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(db_err)?;
    marked.sort_unstable_by(|a, b| a.digest.as_str().cmp(b.digest.as_str()));
    Ok(marked)
}

fn unlink_unreferenced(
    c: &Connection,
    after: i64,
    limit: u32,
    before: i64,
) -> Result<UnlinkBatch, MetaError> {
    let repositories: Vec<i64> = c
        .prepare_cached("SELECT id FROM repositories WHERE id > ?1 ORDER BY id LIMIT ?2")
        .and_then(|mut s| {
            s.query_map(params![after, limit], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(db_err)?;
    let mut unlinked = 0;
    for repository in &repositories {
        unlinked += c
            .prepare_cached(
                "DELETE FROM repository_blobs
                 WHERE repository_id = ?1 AND created_at < ?2
                   AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                                   JOIN manifests m ON m.id = mr.manifest_id
                                   WHERE m.repository_id = ?1 AND mr.kind = 'blob'
                                     AND mr.digest = repository_blobs.digest)",
            )
            .and_then(|mut s| s.execute(params![repository, before]))
            .map_err(db_err)? as u64;
    }
    Ok(UnlinkBatch {
        last_repository: repositories.last().copied(),
        unlinked,
    })
}

/// The manifests a collection that deletes untagged manifests keeps, as the table
/// `kept(id)`: those tagged, pushed or untagged since `?3`, and whatever they need, however
/// indirectly, in their repository: the manifests an index lists, a subject's
/// referrers.
const KEPT: &str = "WITH RECURSIVE
    needs(parent, child) AS MATERIALIZED (
        SELECT p.id, c.id FROM manifest_references mr
        JOIN manifests p ON p.id = mr.manifest_id
        JOIN manifests c ON c.repository_id = p.repository_id AND c.digest = mr.digest
        WHERE mr.kind = 'manifest'
        UNION ALL
        SELECT s.id, c.id FROM manifests c
        JOIN manifests s ON s.repository_id = c.repository_id AND s.digest = c.subject
        WHERE c.subject IS NOT NULL),
    kept(id) AS (
        SELECT m.id FROM manifests m
        WHERE m.pushed_at >= ?3 OR m.untagged_at >= ?3
           OR EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
        UNION
        SELECT n.child FROM kept k JOIN needs n ON n.parent = k.id)";

fn collectable(
    c: &Connection,
    after: &str,
    limit: u32,
    before: i64,
    without_untagged: bool,
) -> rusqlite::Result<Vec<MarkedBlob>> {
    let (kept, referenced_by_kept) = match without_untagged {
        true => (KEPT, "AND m.id IN (SELECT id FROM kept)"),
        false => ("", ""),
    };
    c.prepare_cached(&format!(
        "{kept}
         SELECT b.digest, b.size FROM blobs b
         WHERE b.digest > ?1 AND b.status = 'present' AND b.created_at < ?3
           AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = b.digest)
           AND NOT EXISTS (
               SELECT 1 FROM repository_blobs rb
               WHERE rb.digest = b.digest
                 AND (rb.created_at >= ?3 OR EXISTS (
                     SELECT 1 FROM manifest_references mr
                     JOIN manifests m ON m.id = mr.manifest_id
                     WHERE mr.kind = 'blob' AND mr.digest = rb.digest
                       AND m.repository_id = rb.repository_id {referenced_by_kept})))
         ORDER BY b.digest LIMIT ?2"
    ))?
    .query_map(params![after, limit, before], marked_row)?
    .collect()
}

/// The manifest `m` is untagged, pushed and last untagged before `?3`, and needed by
/// nothing of its repository: no index lists it, and its subject, if any, is not there.
const UNTAGGED: &str = "m.pushed_at < ?3 AND m.untagged_at < ?3
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
    AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                    JOIN manifests p ON p.id = mr.manifest_id
                    WHERE mr.digest = m.digest AND mr.kind = 'manifest'
                      AND p.repository_id = m.repository_id)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                                          WHERE s.repository_id = m.repository_id
                                            AND s.digest = m.subject))";

/// Manifests `m` matching `condition` (on `?3`, the cutoff), in order of repository id
/// and digest after `after`, up to `limit`; `with` comes before the query.
fn untagged_where(
    c: &Connection,
    (with, condition): (&str, &str),
    after: (i64, &str),
    limit: u32,
    before: i64,
) -> rusqlite::Result<Vec<UntaggedManifest>> {
    c.prepare_cached(&format!(
        "{with}
         SELECT m.repository_id, r.name, m.digest, m.size
         FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE (m.repository_id, m.digest) > (?1, ?2) AND {condition}
         ORDER BY m.repository_id, m.digest LIMIT ?4"
    ))?
    .query_map(params![after.0, after.1, before, limit], |r| {
        let name: String = r.get(1)?;
        Ok(UntaggedManifest {
            repository_id: r.get(0)?,
            repository: RepositoryName::parse(&name).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(e))
            })?,
            digest: queries::digest_col(r.get(2)?)?,
            size: r.get::<_, i64>(3)? as u64,
        })
    })?
    .collect()
}

fn delete_untagged(
    c: &Connection,
    repository: &str,
    digest: &str,
    before: i64,
) -> rusqlite::Result<bool> {
    c.prepare_cached(&format!(
        "DELETE FROM manifests AS m
         WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?1)
           AND m.digest = ?2 AND {UNTAGGED}"
    ))?
    .execute(params![repository, digest, before])
    .map(|deleted| deleted == 1)
}

/// Whether no blob row knows `digest` and no session pins it.
fn unrecorded(c: &Connection, digest: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM blobs WHERE digest = ?1)
            AND NOT EXISTS (SELECT 1 FROM uploads WHERE completing = ?1)",
    )?
    .query_row(params![digest], |r| r.get(0))
}

/// Those of `digests` for which `holds` answers true.
fn digests_where(
    c: &Connection,
    digests: &[Digest],
    holds: fn(&Connection, &str) -> rusqlite::Result<bool>,
) -> rusqlite::Result<Vec<Digest>> {
    let mut found = Vec::new();
    for digest in digests {
        if holds(c, digest.as_str())? {
            found.push(digest.clone());
        }
    }
    Ok(found)
}

/// Records `orphan` as a blob marked for deletion if no row knows it and no session
/// pins it; returns whether it did.
fn claim_orphan(c: &Connection, orphan: &MarkedBlob, now: i64) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "INSERT INTO blobs (digest, size, created_at, status)
         SELECT ?1, ?2, ?3, 'deleting'
         WHERE NOT EXISTS (SELECT 1 FROM uploads WHERE completing = ?1)
         ON CONFLICT (digest) DO NOTHING",
    )?
    .execute(params![orphan.digest.as_str(), orphan.size as i64, now])
    .map(|inserted| inserted == 1)
}

fn marked(c: &Connection, after: &str, limit: u32) -> rusqlite::Result<Vec<MarkedBlob>> {
    c.prepare_cached(
        "SELECT digest, size FROM blobs WHERE status = 'deleting' AND digest > ?1
         ORDER BY digest LIMIT ?2",
    )?
    .query_map(params![after, limit], marked_row)?
    .collect()
}

/// Waits for the exclusive lock on `path` (created if need be); it is released when the
/// file is closed.
async fn lock_sweeps(path: &Path) -> Result<File, MetaError> {
    let path = path.to_owned();
    let locked = tokio::task::spawn_blocking(move || {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| MetaError(format!("locking sweeps: {e}")))?;
    locked.map_err(|e| MetaError(format!("locking sweeps: {e}")))
}

/// A fresh token for the sweep of `digest` when it is marked for deletion, `None` when
/// it is not.
fn sweep_token(c: &Connection, digest: &str) -> rusqlite::Result<Option<String>> {
    c.prepare_cached(
        "SELECT lower(hex(randomblob(16))) FROM blobs WHERE digest = ?1 AND status = 'deleting'",
    )?
    .query_row(params![digest], |r| r.get(0))
    .optional()
}

/// Those of `digests` recorded and not marked for deletion, with their recorded sizes,
/// in digest order.
fn live(c: &Connection, digests: &[Digest]) -> rusqlite::Result<Vec<RecordedBlob>> {
    let mut size =
        c.prepare_cached("SELECT size FROM blobs WHERE digest = ?1 AND status = 'present'")?;
    let mut found = Vec::new();
    for digest in digests {
        if let Some(size) = size
            .query_row(params![digest.as_str()], |r| r.get::<_, i64>(0))
            .optional()?
        {
            found.push(RecordedBlob {
                digest: digest.clone(),
                size: size as u64,
            });
        }
    }
    found.sort_by(|a, b| a.digest.as_str().cmp(b.digest.as_str()));
    found.dedup();
    Ok(found)
}

#[async_trait]
impl CollectionStore for SqliteMetaStore {
    async fn pin_upload_digest(&self, pin: &UploadPin) -> Result<PinnedUpload, MetaError> {
        let pin = pin.clone();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| pin_in(c, &pin))
            .await
    }

    async fn pin_new_upload(&self, pin: &NewUploadPin) -> Result<PinnedUpload, MetaError> {
        // One writer transaction, synced: it may link the blob.
        let pin = pin.clone();
        let now = system_now_ms();
        self.writer.run(move |c| pin_new_in(c, &pin, now)).await
    }

    async fn unlink_unreferenced(
        &self,
        after: i64,
        limit: u32,
        before: i64,
    ) -> Result<UnlinkBatch, MetaError> {
        self.writer
            .run(move |c| unlink_unreferenced(c, after, limit, before))
            .await
    }

    async fn untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        self.readers
            .with(|c| untagged_where(c, ("", UNTAGGED), after, limit, before))
    }

    async fn doomed_untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        let doomed = (KEPT, "m.id NOT IN (SELECT id FROM kept)");
        self.readers
            .with(|c| untagged_where(c, doomed, after, limit, before))
    }

    async fn delete_untagged_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        before: i64,
    ) -> Result<bool, MetaError> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.writer
            .run(move |c| {
                delete_untagged(c, repository.as_str(), digest.as_str(), before).map_err(db_err)
            })
            .await
    }

    async fn collectable_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
        without_untagged: bool,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        self.readers
            .with(|c| collectable(c, after, limit, before, without_untagged))
    }

    async fn mark_unlinked_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        let after = after.to_owned();
        self.writer
            .run(move |c| mark(c, &after, limit, before))
            .await
    }

    async fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>, MetaError> {
        self.readers.with(|c| digests_where(c, digests, unrecorded))
    }

    async fn claim_orphan_blobs(
        &self,
        orphans: &[MarkedBlob],
        now: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        let digests: Vec<Digest> = orphans.iter().map(|o| o.digest.clone()).collect();
        let unrecorded = self.unrecorded_blobs(&digests).await?;
        let candidates: Vec<MarkedBlob> = (orphans.iter())
            .filter(|o| unrecorded.contains(&o.digest))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .run(move |c| {
                let mut claimed = Vec::new();
                for orphan in candidates {
                    if claim_orphan(c, &orphan, now).map_err(db_err)? {
                        claimed.push(orphan);
                    }
                }
                Ok(claimed)
            })
            .await
    }

    async fn marked_blobs(&self, after: &str, limit: u32) -> Result<Vec<MarkedBlob>, MetaError> {
        self.readers.with(|c| marked(c, after, limit))
    }

    async fn present_blobs(&self, after: &str, limit: u32) -> Result<Vec<RecordedBlob>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(
                "SELECT digest, size FROM blobs WHERE status = 'present' AND digest > ?1
                 ORDER BY digest LIMIT ?2",
            )?
            .query_map(params![after, limit], |r| {
                Ok(RecordedBlob {
                    digest: queries::digest_col(r.get(0)?)?,
                    size: r.get::<_, i64>(1)? as u64,
                })
            })?
            .collect()
        })
    }

    async fn live_blobs(&self, digests: &[Digest]) -> Result<Vec<RecordedBlob>, MetaError> {
        self.readers.with(|c| live(c, digests))
    }

    async fn sweep_blob(
        &self,
        digest: &Digest,
        _lease: Duration,
        bytes: &dyn SweepBytes,
    ) -> Result<bool, SweepError> {
        // The file lock is the claim: it lasts as long as the process that holds it (an
        // open descriptor cannot lose it), and every process that could sweep the blob
        // takes it, so no lease is needed. The retire gets no time limit: giving up on
        // it would let another sweep, and a push after it, go ahead while it may still
        // land.
        let shard = &digest.encoded()[..2];
        let _sweeping = lock_sweeps(&self.sweep_locks.join(shard)).await?;
        let Some(token) = self.readers.with(|c| sweep_token(c, digest.as_str()))? else {
            return Ok(false);
        };
        bytes.retire(digest, &token, &|_| {}).await?;
        let row = digest.clone();
        let removed = self
            .writer
            .run(move |c| {
                c.prepare_cached("DELETE FROM blobs WHERE digest = ?1 AND status = 'deleting'")
                    .and_then(|mut s| s.execute(params![row.as_str()]))
                    .map_err(db_err)
            })
            .await?;
        settle_retired(bytes, digest, &token, removed == 1).await
    }
}
