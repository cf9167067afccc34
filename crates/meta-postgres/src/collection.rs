//! Garbage collection's steps (migrations 0006, 0007, 0009): the pin and the mark each
//! take the digest's advisory lock and check after it; a sweep claims the marked row for
//! a lease, by the database's clock, so two sweeps of one blob never delete at once, and
//! gives up on its deletion long before the lease lapses.

use std::time::Duration;

use async_trait::async_trait;
use berth_meta::{
    BytesDeleter, CollectionStore, MarkedBlob, MetaError, PinOutcome, SweepError, SweepFailed,
    UnlinkBatch,
};
use berth_oci::{Digest, UploadId};

use crate::queries::parse_digest;
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

#[async_trait]
impl CollectionStore for PgMetaStore {
    async fn pin_upload_digest(
        &self,
        id: &UploadId,
        digest: &Digest,
    ) -> Result<PinOutcome, MetaError> {
        // A session write: like the session's progress, it commits without a flush (a
        // pin lost with the database server leaves the session to be completed again).
        let outcome: String = sqlx::query_scalar("SELECT pin_upload_digest($1, $2)")
            .bind(id.as_str())
            .bind(digest.as_str())
            .fetch_one(&self.progress_pool)
            .await
            .map_err(db_err)?;
        match outcome.as_str() {
            "pinned" => Ok(PinOutcome::Pinned),
            "deleting" => Ok(PinOutcome::BlobDeleting),
            "no_session" => Ok(PinOutcome::NoSession),
            other => Err(MetaError(format!("pin_upload_digest answered {other:?}"))),
        }
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

    async fn collectable_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        let rows = sqlx::query_as(
            "SELECT b.digest, b.size FROM blobs b
             WHERE b.digest > $1 AND b.status = 'present' AND b.created_at < $3
               AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = b.digest)
               AND NOT EXISTS (
                   SELECT 1 FROM repository_blobs rb
                   WHERE rb.digest = b.digest
                     AND (rb.created_at >= $3 OR EXISTS (
                         SELECT 1 FROM manifest_references mr
                         JOIN manifests m ON m.id = mr.manifest_id
                         WHERE mr.kind = 'blob' AND mr.digest = rb.digest
                           AND m.repository_id = rb.repository_id)))
             ORDER BY b.digest LIMIT $2",
        )
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

    async fn marked_blobs(&self, after: &str, limit: u32) -> Result<Vec<MarkedBlob>, MetaError> {
        let rows = sqlx::query_as(
            "SELECT digest, size FROM blobs WHERE status = 'deleting' AND digest > $1
             ORDER BY digest LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        marked_blobs(rows)
    }

    async fn sweep_blob(
        &self,
        digest: &Digest,
        lease: Duration,
        delete_bytes: BytesDeleter<'_>,
    ) -> Result<bool, SweepError> {
        let claimed: Option<String> = sqlx::query_scalar(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)
             UPDATE blobs SET sweep_token = gen_random_uuid()::text,
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
        let budget = lease / 4;
        tokio::time::timeout(budget, delete_bytes())
            .await
            .map_err(|_| SweepFailed(format!("the deletion took longer than {budget:?}")))??;
        let removed = sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 AND status = 'deleting' AND sweep_token = $2",
        )
        .bind(digest.as_str())
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(removed.rows_affected() == 1)
    }
}
