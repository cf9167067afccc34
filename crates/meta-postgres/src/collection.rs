//! Garbage collection's steps (migrations 0006, 0007, 0009, 0018, 0021): the pin and the
//! mark each take the digest's advisory lock and check after it; a sweep claims the
//! marked row for a lease, by the database's clock, retires the bytes under the claim's
//! token, and deletes the row only while the claim is still its own (a retire that
//! landed after another sweep took the blob over is then undone).

use std::time::Duration;

use async_trait::async_trait;
use berth_meta::{
    CollectionStore, MarkedBlob, MetaError, NewUploadPin, PinOutcome, PinnedUpload, QuotaExceeded,
    RecordedBlob, SWEPT_BLOBS_KEPT_FOR, SweepBytes, SweepError, SweepFailed, UnlinkBatch,
    UntaggedManifest, UploadPin, settle_retired,
};
use berth_oci::{Digest, RepositoryName};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::queries::{lock_repository, parse_digest, parse_repository};
use crate::sweep_claim::Retired;
use crate::{PgMetaStore, db_err};

fn marked_blobs(rows: Vec<(String, i64)>) -> Result<Vec<MarkedBlob>, MetaError> {
    rows.into_iter()
        .map(|(digest, size)| {
            Ok(MarkedBlob {
                digest: parse_digest(&digest)?,
                size: size as u64,
            })
        })
        .collect()
}

/// The manifest `m` is untagged, pushed and last untagged before `$3`, and needed by
/// nothing of its repository: no index lists it, and its subject, if any, is not there.
const UNTAGGED: &str = "m.pushed_at < $3 AND m.untagged_at < $3
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
    AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                    JOIN manifests p ON p.id = mr.manifest_id
                    WHERE mr.digest = m.digest AND mr.kind = 'manifest'
                      AND p.repository_id = m.repository_id)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                                          WHERE s.repository_id = m.repository_id
                                            AND s.digest = m.subject))";

/// The manifests a collection that deletes untagged manifests keeps, as the table
/// `kept(id)`: those tagged, pushed or untagged since `$3`, and whatever they need, however
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
        WHERE m.pushed_at >= $3 OR m.untagged_at >= $3
           OR EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
        UNION
        SELECT n.child FROM kept k JOIN needs n ON n.parent = k.id)";

/// A pin statement whose quota check comes first: `SELECT {select}` over the column
/// `refusal`, which holds the usage, the limit and the size (an SQL expression) of a
/// blob of the digest `$2` that the quota of the project named by the parameter
/// `project` has no room for and does not count yet; NULL when it has room, counts the
/// digest, has no limit, or there is no such project. A scalar subquery on the quota's
/// row alone: joining the quota view cost a pin more to plan than to run. `OFFSET 0`
/// keeps the planner from copying it into each use of `refusal`, and the room is
/// compared as `size > hard - used`, which no size can overflow.
fn checked_pin(select: &str, size: &str, project: &str) -> String {
    format!(
        "SELECT {select}
         FROM (SELECT (SELECT ARRAY[quota_used(q.project_id), q.hard, {size}]
                       FROM quotas q JOIN projects p ON p.id = q.project_id
                       WHERE p.name = {project} AND q.hard >= 0
                         AND NOT EXISTS (SELECT 1 FROM project_blobs pb
                                         WHERE pb.project_id = q.project_id
                                           AND pb.digest = $2)
                         AND {size} > q.hard - quota_used(q.project_id)) AS refusal
               OFFSET 0) AS checked"
    )
}

/// How long after its bytes were published a new session may link its blob at once:
/// half the time tombstones are kept ([`SWEPT_BLOBS_KEPT_FOR`]), in milliseconds.
pub(crate) fn fresh_for_ms() -> i64 {
    (SWEPT_BLOBS_KEPT_FOR / 2).as_millis() as i64
}

/// What a pin in `repository` answered (from `function`), in a row of [`checked_pin`]
/// whose columns are the pin's answer and `refusal`.
fn pinned_upload(
    row: &PgRow,
    function: &str,
    repository: &RepositoryName,
) -> Result<PinnedUpload, MetaError> {
    let outcome = pin_outcome(row, function)?;
    let refusal = match row.try_get::<Option<Vec<i64>>, _>(1).map_err(db_err)? {
        Some(found) if outcome == PinOutcome::OverQuota => match found[..] {
            [used, hard, size] => Some(QuotaExceeded {
                project: repository.project().to_owned(),
                used: used as u64,
                limit: hard.max(0) as u64,
                needed: size as u64,
            }),
            _ => return Err(MetaError(format!("{function} refused with {found:?}"))),
        },
        _ => None,
    };
    Ok(PinnedUpload { outcome, refusal })
}

/// What a pin answered (from `function`).
fn pin_outcome(row: &PgRow, function: &str) -> Result<PinOutcome, MetaError> {
    Ok(match row.try_get::<&str, _>(0).map_err(db_err)? {
        "pinned" => PinOutcome::Pinned,
        "revived" => PinOutcome::Revived,
        "no_session" => PinOutcome::NoSession,
        "moved" => PinOutcome::Moved,
        "over_quota" => PinOutcome::OverQuota,
        "taken" => PinOutcome::Taken,
        "linked" => PinOutcome::Linked,
        other => return Err(MetaError(format!("{function} answered {other:?}"))),
    })
}

impl PgMetaStore {
    /// The blob rows in `status` after the digest `after`, in digest order, up to
    /// `limit`: digests and sizes as stored.
    async fn blobs_in_status(
        &self,
        status: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, MetaError> {
        sqlx::query_as(
            "SELECT digest, size FROM blobs WHERE status = $1 AND digest > $2
             ORDER BY digest LIMIT $3",
        )
        .bind(status)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    /// Those of `digests` (each `d` in `condition`) that meet `condition`, in order.
    async fn digests_where(
        &self,
        condition: &str,
        digests: &[Digest],
    ) -> Result<Vec<Digest>, MetaError> {
        let texts: Vec<&str> = digests.iter().map(Digest::as_str).collect();
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT d FROM unnest($1::text[]) AS d WHERE {condition} ORDER BY d"
        ))
        .bind(&texts)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(|d| parse_digest(d)).collect()
    }

    /// Manifests `m` matching `condition` (on `$3`, the cutoff), in order of repository
    /// id and digest after `after`, up to `limit`; `with` comes before the query.
    async fn untagged_where(
        &self,
        (with, condition): (&str, &str),
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(&format!(
            "{with}
             SELECT m.repository_id, r.name, m.digest, m.size
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE (m.repository_id, m.digest) > ($1, $2) AND {condition}
             ORDER BY m.repository_id, m.digest LIMIT $4"
        ))
        .bind(after.0)
        .bind(after.1)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(repository_id, repository, digest, size)| {
                Ok(UntaggedManifest {
                    repository_id,
                    repository: parse_repository(&repository)?,
                    digest: parse_digest(&digest)?,
                    size: size as u64,
                })
            })
            .collect()
    }
}

#[async_trait]
impl CollectionStore for PgMetaStore {
    async fn pin_upload_digest(&self, pin: &UploadPin) -> Result<PinnedUpload, MetaError> {
        let append = pin.append.as_ref();
        // A session write: like the session's progress, it commits without a flush (a
        // pin lost with the database server leaves the session to be completed again).
        // The quota is read beside it, from the statement's snapshot; a blob it refuses
        // (at the session's offset after the append) is not pinned: CASE calls the
        // function only when the quota has room.
        let size = "coalesce($4, (SELECT u.\"offset\" FROM uploads u WHERE u.id = $1))";
        let row = sqlx::query(&checked_pin(
            "CASE WHEN refusal IS NOT NULL
                  THEN 'over_quota'
                  ELSE pin_completing_upload($1, $2, $3, $4, $5, $6, $7)
             END, refusal",
            size,
            "$8",
        ))
        .bind(pin.id.as_str())
        .bind(pin.digest.as_str())
        .bind(append.map(|a| a.from as i64))
        .bind(append.map(|a| a.to as i64))
        .bind(append.map(|a| &a.hash_state))
        .bind(append.map(|a| a.writer))
        .bind(append.map(|a| a.now))
        .bind(pin.repository.project())
        .fetch_one(&self.progress_pool)
        .await
        .map_err(db_err)?;
        pinned_upload(&row, "pin_completing_upload", &pin.repository)
    }

    async fn pin_new_upload(&self, pin: &NewUploadPin) -> Result<PinnedUpload, MetaError> {
        let s = &pin.session;
        let mut lease = self.leased.lease().await?;
        // One round trip in place of a pin and a completion (migrations 0023, 0024): the
        // blob is linked at once when no sweep can have taken its bytes, else the session
        // is recorded pinned and claimed in place of a creation, a claim and a pin. The
        // quota (at the session's offset) is looked at inside, for a project with a
        // limit. Committed durably: it may link.
        let row = sqlx::query(
            "SELECT outcome, refusal
             FROM complete_whole_upload($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                                        $13, $14, $15)",
        )
        .bind(s.id.as_str())
        .bind(pin.digest.as_str())
        .bind(s.repository.as_str())
        .bind(s.algorithm.as_str())
        .bind(i64::try_from(s.offset).unwrap_or(i64::MAX))
        .bind(&s.hash_state)
        .bind(s.verified_by)
        .bind(s.verified_digest.as_ref().map(Digest::as_str))
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(pin.holder)
        .bind(pin.until)
        .bind(s.repository.project())
        .bind(pin.published_at)
        .bind(fresh_for_ms())
        .fetch_one(lease.connection())
        .await
        .map_err(db_err)?;
        lease.finish();
        pinned_upload(&row, "complete_whole_upload", &s.repository)
    }

    async fn unlink_unreferenced(
        &self,
        after: i64,
        limit: u32,
        before: i64,
    ) -> Result<UnlinkBatch, MetaError> {
        let (last_repository, unlinked): (Option<i64>, i64) =
            sqlx::query_as("SELECT last_repository, unlinked FROM unlink_unreferenced($1, $2, $3)")
                .bind(after)
                .bind(i32::try_from(limit).unwrap_or(i32::MAX))
                .bind(before)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(UnlinkBatch {
            last_repository,
            unlinked: unlinked as u64,
        })
    }

    async fn untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        self.untagged_where(("", UNTAGGED), after, limit, before)
            .await
    }

    async fn doomed_untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        let doomed = (KEPT, "m.id NOT IN (SELECT id FROM kept)");
        self.untagged_where(doomed, after, limit, before).await
    }

    async fn delete_untagged_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        before: i64,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let Some(repo_id) = lock_repository(&mut tx, repository.as_str()).await? else {
            return Ok(false);
        };
        let deleted = sqlx::query(&format!(
            "DELETE FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2 AND {UNTAGGED}"
        ))
        .bind(repo_id)
        .bind(digest.as_str())
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn collectable_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
        without_untagged: bool,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        let (kept, referenced_by_kept) = match without_untagged {
            true => (KEPT, "AND m.id IN (SELECT id FROM kept)"),
            false => ("", ""),
        };
        let rows = sqlx::query_as(&format!(
            "{kept}
             SELECT b.digest, b.size FROM blobs b
             WHERE b.digest > $1 AND b.status = 'present' AND b.created_at < $3
               AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = b.digest)
               AND NOT EXISTS (
                   SELECT 1 FROM repository_blobs rb
                   WHERE rb.digest = b.digest
                     AND (rb.created_at >= $3 OR EXISTS (
                         SELECT 1 FROM manifest_references mr
                         JOIN manifests m ON m.id = mr.manifest_id
                         WHERE mr.kind = 'blob' AND mr.digest = rb.digest
                           AND m.repository_id = rb.repository_id {referenced_by_kept})))
             ORDER BY b.digest LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        marked_blobs(rows)
    }

    async fn mark_unlinked_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        let mut rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT marked_digest, marked_size FROM mark_unlinked_blobs($1, $2, $3)",
        )
        .bind(after)
        .bind(i32::try_from(limit).unwrap_or(i32::MAX))
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.sort_unstable();
        marked_blobs(rows)
    }

    async fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>, MetaError> {
        self.digests_where(
            "NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = d)
             AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = d)",
            digests,
        )
        .await
    }

    async fn claim_orphan_blobs(
        &self,
        orphans: &[MarkedBlob],
        now: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        let digests: Vec<Digest> = orphans.iter().map(|o| o.digest.clone()).collect();
        let unrecorded = self.unrecorded_blobs(&digests).await?;
        let mut claimed = Vec::new();
        for orphan in orphans.iter().filter(|o| unrecorded.contains(&o.digest)) {
            // One transaction each, holding the digest's lock as a pin does.
            let mut tx = self.durable().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(digest_lock_key($1))")
                .bind(orphan.digest.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let inserted = sqlx::query(
                "INSERT INTO blobs (digest, size, created_at, status)
                 SELECT $1, $2, $3, 'deleting'
                 WHERE NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = $1)
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(orphan.digest.as_str())
            .bind(i64::try_from(orphan.size).unwrap_or(i64::MAX))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            if inserted.rows_affected() == 1 {
                claimed.push(orphan.clone());
            }
        }
        Ok(claimed)
    }

    async fn marked_blobs(&self, after: &str, limit: u32) -> Result<Vec<MarkedBlob>, MetaError> {
        marked_blobs(self.blobs_in_status("deleting", after, limit).await?)
    }

    async fn present_blobs(&self, after: &str, limit: u32) -> Result<Vec<RecordedBlob>, MetaError> {
        let rows = self.blobs_in_status("present", after, limit).await?;
        Ok((marked_blobs(rows)?.into_iter())
            .map(|b| RecordedBlob {
                digest: b.digest,
                size: b.size,
            })
            .collect())
    }

    async fn live_blobs(&self, digests: &[Digest]) -> Result<Vec<RecordedBlob>, MetaError> {
        let texts: Vec<&str> = digests.iter().map(Digest::as_str).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT digest, size FROM blobs WHERE digest = ANY($1) AND status = 'present'
             ORDER BY digest",
        )
        .bind(&texts)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(digest, size)| {
                Ok(RecordedBlob {
                    digest: parse_digest(&digest)?,
                    size: size as u64,
                })
            })
            .collect()
    }

    async fn sweep_blob(
        &self,
        digest: &Digest,
        lease: Duration,
        bytes: &dyn SweepBytes,
    ) -> Result<bool, SweepError> {
        let claimed: Option<String> = sqlx::query_scalar(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)
             UPDATE blobs SET sweep_token = replace(gen_random_uuid()::text, '-', ''),
                              sweep_until = (SELECT ms FROM now) + $2
             WHERE digest = $1 AND status = 'deleting'
               AND (sweep_until IS NULL OR sweep_until < (SELECT ms FROM now))
             RETURNING sweep_token",
        )
        .bind(digest.as_str())
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(token) = claimed else {
            return Ok(false);
        };
        match self.retire_claimed(digest, &token, lease, bytes).await {
            Ok(Retired::Done) => {}
            // Revived while the bytes moved: whatever the retire moved goes back.
            Ok(Retired::TakenOver) => return settle_retired(bytes, digest, &token, false).await,
            // Given up on, the retire may still land: the claim is left to lapse, and
            // the next collection's recovery restores or discards what it moved.
            Ok(Retired::GivenUp(budget)) => {
                let late = format!("retiring the bytes went {budget:?} without renewing its claim");
                return Err(SweepFailed(late).into());
            }
            // Answered with an error, the retire is over: the blob is free at once for
            // another sweep (the next run's, or a push's of the digest).
            Err(failed) => {
                sqlx::query(
                    "UPDATE blobs SET sweep_until = NULL, sweep_token = NULL
                     WHERE digest = $1 AND sweep_token = $2",
                )
                .bind(digest.as_str())
                .bind(&token)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                return Err(failed.into());
            }
        }
        // However late the retire landed, the row goes only under this claim; if it was
        // taken over, the bytes may be those of a push since, and go back.
        let removed = sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 AND status = 'deleting' AND sweep_token = $2",
        )
        .bind(digest.as_str())
        .bind(&token)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        settle_retired(bytes, digest, &token, removed.rows_affected() == 1).await
    }
}
