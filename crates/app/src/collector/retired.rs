//! A sweep's bytes on the blob store: retired under the sweep's token, then discarded
//! or restored (`docs/design/gc.md`); and the recovery of sweeps cut short between the
//! two, which every collection runs.

use async_trait::async_trait;
use berth_blob::{BlobError, BlobStore};
use berth_meta::{SweepBytes, SweepFailed};
use berth_oci::Digest;

use super::unix_ms;
use crate::error::RegistryError;
use crate::registry::Registry;

/// The byte operations of a sweep, on a blob store.
pub(super) struct StoreBytes<'a>(pub(super) &'a dyn BlobStore);

fn failed(e: BlobError) -> SweepFailed {
    SweepFailed(e.to_string())
}

#[async_trait]
impl SweepBytes for StoreBytes<'_> {
    async fn retire(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        self.0.retire(digest, token).await.map_err(failed)
    }

    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        self.0.discard_retired(digest, token).await.map_err(failed)
    }

    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        self.0.restore_retired(digest, token).await.map_err(failed)
    }
}

impl Registry {
    /// Settles the retired copies that sweeps left (cut between their retire and their
    /// discard or restore, or a retire given up on that landed later): a copy of a blob
    /// whose row is live goes back, for a request may need it; a copy retired before
    /// `before` of a blob with no row, or a marked one, is discarded. A younger copy may
    /// belong to a sweep still under way, and is left to it. Returns the copies settled.
    pub(super) async fn recover_retired(&self, before: i64) -> Result<usize, RegistryError> {
        let retired = self.blobs.list_retired().await?;
        if retired.is_empty() {
            return Ok(0);
        }
        let mut digests: Vec<Digest> = retired.iter().map(|r| r.digest.clone()).collect();
        digests.dedup();
        let live = self.meta.live_blobs(&digests).await?;
        let mut settled = 0;
        for copy in retired {
            let outcome = if live.contains(&copy.digest) {
                tracing::warn!(digest = %copy.digest, token = %copy.token,
                    "restoring the retired bytes of a live blob");
                self.blobs.restore_retired(&copy.digest, &copy.token).await
            } else if unix_ms(copy.retired) < before {
                self.blobs.discard_retired(&copy.digest, &copy.token).await
            } else {
                continue;
            };
            // One copy that cannot be settled holds up no collection: it is tried again
            // by the next one.
            match outcome {
                Ok(()) => settled += 1,
                Err(e) => tracing::error!(digest = %copy.digest, token = %copy.token,
                    error = %e, "could not settle a retired copy"),
            }
        }
        Ok(settled)
    }
}
