//! Garbage collection's steps (migrations 0006, 0007): the pin and the mark each take the
//! digest's advisory lock and check after it; a sweep holds the marked row's lock while
//! the bytes are deleted, so two sweeps of one blob never both delete.

use async_trait::async_trait;
use berth_meta::{
    BytesDeleter, CollectionStore, MarkedBlob, MetaError, PinOutcome, SweepError, UnlinkBatch,
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
        delete_bytes: BytesDeleter<'_>,
    ) -> Result<bool, SweepError> {
        let mut tx = self.durable().await?;
        let marked: Option<i64> = sqlx::query_scalar(
            "SELECT size FROM blobs WHERE digest = $1 AND status = 'deleting' FOR UPDATE",
        )
        .bind(digest.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if marked.is_none() {
            return Ok(false);
        }
        delete_bytes().await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
}
