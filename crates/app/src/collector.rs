//! Garbage collection, online: a run deletes, when asked, the untagged manifests nothing
//! needs, removes the blob links no manifest references, marks the blobs nothing links
//! or pins any more, and sweeps them, bytes then row (`docs/design/gc.md`). Every step is idempotent, so a run cut short is finished by
//! the next, which also sweeps what the earlier one marked.

use std::time::Duration;

use berth_meta::{BoxedDelete, MarkedBlob, SweepError, SweepFailed, UntaggedManifest};
use berth_oci::Digest;
use futures_util::{StreamExt, stream};

use crate::error::RegistryError;
use crate::registry::Registry;

/// Repositories whose links one transaction checks.
const REPOSITORY_BATCH: u32 = 100;
/// Blobs one statement marks, or one page of marked blobs lists.
const BLOB_BATCH: u32 = 500;
/// Untagged manifests one page lists.
const MANIFEST_BATCH: u32 = 500;
/// How long a sweep holds a blob against every other: a quarter of it for deleting the
/// bytes, the rest a margin for a deletion that was given up on but still lands.
const SWEEP_LEASE: Duration = Duration::from_secs(120);

/// How a collection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionOptions {
    /// List what would be deleted, and change nothing.
    pub dry_run: bool,
    /// How long a blob may stay unreferenced before it is collected: the time a client
    /// has between uploading a blob and pushing the manifest that references it.
    pub grace: Duration,
    /// Sweeps run at once.
    pub workers: usize,
    /// Delete the manifests that no tag names and nothing needs (Harbor's "delete
    /// untagged artifacts"), pushed before the grace period, first.
    pub delete_untagged: bool,
}

/// What a collection did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionReport {
    /// Blob links removed from repositories.
    pub links_removed: u64,
    /// Untagged manifests deleted (in a dry run: the ones its first pass would delete,
    /// see [`Registry::collect_garbage`]).
    pub manifests: Vec<UntaggedManifest>,
    /// Blobs deleted (in a dry run: that would be).
    pub blobs: Vec<MarkedBlob>,
    /// The bytes those blobs held.
    pub bytes: u64,
}

impl CollectionReport {
    fn add(&mut self, blob: MarkedBlob) {
        self.bytes += blob.size;
        self.blobs.push(blob);
    }
}

impl Registry {
    /// Collects garbage once, beside whatever else runs (see the module's documentation).
    ///
    /// A dry run that deletes untagged manifests lists those that are untagged and
    /// needed by nothing now; the ones they hold up (an index's children, their
    /// referrers) and the blobs only they reference are listed by a dry run after them.
    pub async fn collect_garbage(
        &self,
        options: CollectionOptions,
    ) -> Result<CollectionReport, RegistryError> {
        let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
        let before = self.clock.now_ms().saturating_sub(grace_ms);
        if options.dry_run {
            let mut report = self.collectable(before).await?;
            if options.delete_untagged {
                report.manifests = self.untagged(before, |_| async { Ok(true) }).await?;
            }
            return Ok(report);
        }
        let mut report = CollectionReport::default();
        if options.delete_untagged {
            report.manifests = self.delete_untagged(before).await?;
        }
        report.links_removed = self.unlink_unreferenced(before).await?;
        self.mark_unlinked(before).await?;
        for blob in self.sweep_marked(options.workers.max(1)).await? {
            report.add(blob);
        }
        Ok(report)
    }

    /// What a collection would delete now.
    async fn collectable(&self, before: i64) -> Result<CollectionReport, RegistryError> {
        let mut report = CollectionReport::default();
        let mut after = String::new();
        loop {
            let page = self
                .meta
                .collectable_blobs(&after, BLOB_BATCH, before)
                .await?;
            let Some(last) = page.last() else {
                return Ok(report);
            };
            after = last.digest.to_string();
            page.into_iter().for_each(|blob| report.add(blob));
        }
    }

    /// Deletes untagged manifests pushed before `before` that nothing needs, pass after
    /// pass, until one deletes nothing: each pass deletes the tops of the manifest
    /// graphs, and the next the manifests those held up. Returns what was deleted.
    async fn delete_untagged(&self, before: i64) -> Result<Vec<UntaggedManifest>, RegistryError> {
        let mut deleted = Vec::new();
        loop {
            let pass = self
                .untagged(before, |m: UntaggedManifest| async move {
                    let gone = self
                        .meta
                        .delete_untagged_manifest(&m.repository, &m.digest, before)
                        .await?;
                    Ok(gone)
                })
                .await?;
            if pass.is_empty() {
                return Ok(deleted);
            }
            deleted.extend(pass);
        }
    }

    /// Walks the untagged manifests pushed before `before` that nothing needs, once,
    /// calling `take` on each; returns those it took.
    async fn untagged<F, Fut>(
        &self,
        before: i64,
        take: F,
    ) -> Result<Vec<UntaggedManifest>, RegistryError>
    where
        F: Fn(UntaggedManifest) -> Fut,
        Fut: Future<Output = Result<bool, RegistryError>>,
    {
        let (mut taken, mut after) = (Vec::new(), (0, String::new()));
        loop {
            let page = self
                .meta
                .untagged_manifests((after.0, &after.1), MANIFEST_BATCH, before)
                .await?;
            let Some(last) = page.last() else {
                return Ok(taken);
            };
            after = (last.repository_id, last.digest.to_string());
            for manifest in page {
                if take(manifest.clone()).await? {
                    taken.push(manifest);
                }
            }
        }
    }

    /// Removes every unreferenced link set before `before`; returns how many.
    async fn unlink_unreferenced(&self, before: i64) -> Result<u64, RegistryError> {
        let (mut after, mut unlinked) = (0, 0);
        loop {
            let batch = self
                .meta
                .unlink_unreferenced(after, REPOSITORY_BATCH, before)
                .await?;
            unlinked += batch.unlinked;
            match batch.last_repository {
                Some(last) => after = last,
                None => return Ok(unlinked),
            }
        }
    }

    /// Marks every blob recorded before `before` that nothing links or pins.
    async fn mark_unlinked(&self, before: i64) -> Result<(), RegistryError> {
        let mut after = String::new();
        loop {
            let marked = self
                .meta
                .mark_unlinked_blobs(&after, BLOB_BATCH, before)
                .await?;
            match marked.last() {
                Some(last) => after = last.digest.to_string(),
                None => return Ok(()),
            }
        }
    }

    /// Sweeps every marked blob, `workers` at once; returns those this run removed.
    async fn sweep_marked(&self, workers: usize) -> Result<Vec<MarkedBlob>, RegistryError> {
        let mut swept = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.meta.marked_blobs(&after, BLOB_BATCH).await?;
            let Some(last) = page.last() else {
                return Ok(swept);
            };
            after = last.digest.to_string();
            let outcomes: Vec<_> = stream::iter(page)
                .map(|blob| async move {
                    let removed = self.sweep(&blob.digest).await?;
                    Ok::<_, RegistryError>(removed.then_some(blob))
                })
                .buffer_unordered(workers)
                .collect()
                .await;
            for outcome in outcomes {
                swept.extend(outcome?);
            }
        }
    }

    /// Deletes one marked blob, bytes then row; `false` when another sweep did or is
    /// doing it. A completing upload that finds its digest marked calls it too, to
    /// finish a sweep that a collection cut short left undone.
    pub(crate) async fn sweep(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let _sweeping = self.digest_locks.lock(digest).await;
        let delete_bytes = || -> BoxedDelete<'_> {
            Box::pin(async move {
                self.blobs
                    .delete(digest)
                    .await
                    .map_err(|e| SweepFailed(e.to_string()))
            })
        };
        match self
            .meta
            .sweep_blob(digest, SWEEP_LEASE, &delete_bytes)
            .await
        {
            Ok(removed) => Ok(removed),
            Err(SweepError::Meta(e)) => Err(e.into()),
            Err(SweepError::Bytes(e)) => Err(RegistryError::Internal(format!(
                "garbage collection could not delete blob {digest}: {e}"
            ))),
        }
    }
}
