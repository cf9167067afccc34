//! A sweep's bytes on the blob store: retired under the sweep's token, then discarded
//! or restored (`docs/design/gc.md`); the recovery of sweeps cut short between the two,
//! which every collection runs; and the restore of a live blob's retired bytes that a
//! read found missing.

use async_trait::async_trait;
use berth_blob::{BlobError, BlobRead, BlobStore, RetiredBlob};
use berth_meta::{Moved, SweepBytes, SweepFailed};
use berth_oci::{ByteRange, Digest};

use super::unix_ms;
use crate::error::RegistryError;
use crate::registry::Registry;

/// How many retired copies the recovery settles per listing.
const RETIRED_PAGE: usize = 1000;

/// The byte operations of a sweep, on a blob store.
pub(super) struct StoreBytes<'a>(pub(super) &'a dyn BlobStore);

fn failed(e: BlobError) -> SweepFailed {
    SweepFailed(e.to_string())
}

/// A read's blob, `None` when it is absent.
fn found(read: Result<BlobRead, BlobError>) -> Result<Option<BlobRead>, BlobError> {
    match read {
        Err(BlobError::NotFound) => Ok(None),
        read => read.map(Some),
    }
}

#[async_trait]
impl SweepBytes for StoreBytes<'_> {
    async fn retire(
        &self,
        digest: &Digest,
        token: &str,
        moved: Moved<'_>,
    ) -> Result<(), SweepFailed> {
        self.0.retire(digest, token, moved).await.map_err(failed)
    }

    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        self.0.discard_retired(digest, token).await.map_err(failed)
    }

    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        (self.0.restore_retired(digest, token).await)
            .map(drop)
            .map_err(failed)
    }
}

impl Registry {
    /// Settles the retired copies that sweeps left (cut between their retire and their
    /// discard or restore, or a retire given up on that landed later), and those that
    /// restores keep: a copy of a blob whose row is live, of the blob's recorded size, is
    /// kept, and goes back if the blob's bytes are missing, for a request may need them;
    /// a copy retired before `before` of a blob with no row, of a marked one, or of
    /// another size than the live blob's (cut short) is discarded. A younger copy may
    /// belong to a sweep still under way, and is left to it.
    pub(super) async fn recover_retired(&self, before: i64) -> Result<(), RegistryError> {
        let mut after = None;
        loop {
            let page = (self.blobs)
                .list_retired(after.as_ref(), RETIRED_PAGE)
                .await?;
            let mut digests: Vec<Digest> = page.iter().map(|r| r.digest.clone()).collect();
            digests.dedup();
            let live = self.meta.live_blobs(&digests).await?;
            for copy in &page {
                let recorded = live.iter().find(|b| b.digest == copy.digest);
                self.settle_copy(copy, recorded.map(|b| b.size), before)
                    .await;
            }
            if page.len() < RETIRED_PAGE {
                return Ok(());
            }
            after = page.into_iter().last();
        }
    }

    /// Settles one retired copy (see [`Self::recover_retired`]), given the recorded size
    /// of its blob if the blob is live. Only a copy of that size goes back: one of
    /// another size (cut short) is not the blob, and is discarded like a dead blob's.
    /// A copy that cannot be settled holds up no collection: it is logged, and tried
    /// again by the next one.
    async fn settle_copy(&self, copy: &RetiredBlob, live_size: Option<u64>, before: i64) {
        let outcome = if live_size == Some(copy.size) {
            self.restore_from(&copy.digest, vec![copy.token.clone()])
                .await
                .map(drop)
        } else if unix_ms(copy.retired) < before {
            self.blobs.discard_retired(&copy.digest, &copy.token).await
        } else {
            return;
        };
        if let Err(e) = outcome {
            tracing::error!(digest = %copy.digest, token = %copy.token,
                error = %e, "could not settle a retired copy");
        }
    }

    /// Opens a live blob's bytes, or a range of them; when they are missing (a retire
    /// that landed after the blob was pushed again), puts a retired copy of the blob's
    /// recorded `size` back first (a copy of another size, cut short, is not the blob).
    /// `None` when they are gone with no such copy left.
    pub(crate) async fn read_live(
        &self,
        digest: &Digest,
        size: u64,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobRead>, BlobError> {
        if let Some(read) = found(self.blobs.read(digest, range).await)? {
            return Ok(Some(read));
        }
        let tokens: Vec<String> = (self.blobs.retired_copies(digest).await?)
            .into_iter()
            .filter(|c| c.size == size)
            .map(|c| c.token)
            .collect();
        if tokens.is_empty() {
            return Ok(None);
        }
        self.restore_from(digest, tokens).await?;
        found(self.blobs.read(digest, range).await)
    }

    /// Puts the first of the copies retired under `tokens` that goes back as the live
    /// blob's bytes, unless they are there (kept, see [`BlobStore::restore_retired`]);
    /// returns whether some went back. One restore of a digest runs at a time in this
    /// process, in a task of its own holding the digest's restore lock: reads that find
    /// the bytes missing together wait for one restore (which may stream a blob of many
    /// GiB) and find the bytes there after it, and a read given up on stops no restore
    /// that others wait for.
    async fn restore_from(&self, digest: &Digest, tokens: Vec<String>) -> Result<bool, BlobError> {
        let (blobs, locks) = (self.blobs.clone(), self.restore_locks.clone());
        let digest = digest.clone();
        let restore = tokio::spawn(async move {
            let _restoring = locks.lock(&digest).await;
            for token in tokens {
                if blobs.restore_retired(&digest, &token).await? {
                    tracing::warn!(%digest, %token, "restored the retired bytes of a live blob");
                    return Ok(true);
                }
            }
            Ok(false)
        });
        (restore.await).map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }
}
