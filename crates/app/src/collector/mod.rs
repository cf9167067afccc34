//! Garbage collection, online: a run deletes, when asked, the untagged manifests nothing
//! needs, removes the blob links no manifest references, marks the blobs nothing links
//! or pins any more, and sweeps them, bytes then row (`docs/design/gc.md`). A run goes
//! in steps of one batch each, from a [`CollectionProgress`] that can be saved between
//! them; every step is idempotent, so a run cut short is finished by the next, which
//! also sweeps what the earlier one marked.

mod progress;
mod retired;

use std::time::Duration;

use berth_meta::{MarkedBlob, SweepError, UntaggedManifest};
use berth_oci::Digest;
use futures_util::{StreamExt, stream};

use crate::error::RegistryError;
use crate::registry::Registry;
use retired::StoreBytes;

pub use progress::{CollectionPhase, CollectionProgress, CollectionTotals};

/// Repositories whose links one transaction checks.
const REPOSITORY_BATCH: u32 = 100;
/// Blobs one statement marks, or one page of marked blobs lists.
const BLOB_BATCH: u32 = 500;
/// Untagged manifests one page lists.
const MANIFEST_BATCH: u32 = 500;
/// How long a sweep holds a blob against every other: renewed for as long again while a
/// retire moves bytes (a blob streamed through the node), a retire is given up on a
/// quarter of it after the claim's last renewal, the rest a margin for a retire that
/// was given up on but still lands.
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
    /// Untagged manifests deleted (in a dry run: that would be, over all the run's
    /// passes, see [`Registry::collect_garbage`]).
    pub manifests: Vec<UntaggedManifest>,
    /// Blobs deleted (in a dry run: that would be).
    pub blobs: Vec<MarkedBlob>,
    /// The bytes those blobs held.
    pub bytes: u64,
    /// Blobs whose deletion failed, and why: they stay marked, for the next run.
    pub failed: Vec<FailedSweep>,
}

/// A marked blob a sweep could not delete; it stays marked, and the next collection
/// tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSweep {
    /// The blob.
    pub digest: Digest,
    /// Why.
    pub error: String,
}

impl CollectionReport {
    fn add(&mut self, blob: MarkedBlob) {
        self.bytes += blob.size;
        self.blobs.push(blob);
    }
}

/// The digest a cursor names, or `None` for an empty cursor (the start).
fn digest_after(cursor: &str) -> Result<Option<Digest>, RegistryError> {
    match cursor {
        "" => Ok(None),
        text => Digest::parse(text)
            .map(Some)
            .map_err(|e| RegistryError::Internal(format!("a collection's cursor {text:?}: {e}"))),
    }
}

/// `at` in Unix milliseconds (0 before 1970).
fn unix_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What one step of a collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionStep {
    /// Deleted these untagged manifests (none: a pass ended).
    Manifests(Vec<UntaggedManifest>),
    /// Removed this many blob links.
    Unlinked(u64),
    /// Marked this many blobs (or bytes no row knew) for deletion.
    Marked(usize),
    /// Deleted these blobs, and failed to delete those (they stay marked).
    Swept {
        /// Blobs deleted.
        swept: Vec<MarkedBlob>,
        /// Blobs not deleted.
        failed: Vec<FailedSweep>,
    },
    /// The collection is over.
    Done,
}

impl Registry {
    /// Collects garbage once, beside whatever else runs (see the module's documentation).
    ///
    /// A dry run lists exactly what a run would delete now: with `delete_untagged`,
    /// every untagged manifest its passes would delete (those that are needed by
    /// nothing, then the index children and referrers only those held up), and the
    /// blobs that only such manifests, or nothing, reference.
    pub async fn collect_garbage(
        &self,
        options: CollectionOptions,
    ) -> Result<CollectionReport, RegistryError> {
        let mut progress = self.start_collection(&options);
        if options.dry_run {
            let mut report = self
                .collectable(progress.before, options.delete_untagged)
                .await?;
            if options.delete_untagged {
                report.manifests = self.doomed_untagged(progress.before).await?;
            }
            return Ok(report);
        }
        let mut report = CollectionReport::default();
        loop {
            match self.collection_step(&mut progress, options.workers).await? {
                CollectionStep::Manifests(deleted) => report.manifests.extend(deleted),
                CollectionStep::Unlinked(n) => report.links_removed += n,
                CollectionStep::Marked(_) => {}
                CollectionStep::Swept { swept, failed } => {
                    swept.into_iter().for_each(|b| report.add(b));
                    report.failed.extend(failed);
                }
                CollectionStep::Done => return Ok(report),
            }
        }
    }

    /// A collection from the start: of what is older than the grace period now.
    pub fn start_collection(&self, options: &CollectionOptions) -> CollectionProgress {
        let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
        let before = self.clock.now_ms().saturating_sub(grace_ms);
        CollectionProgress::start(before, options.delete_untagged)
    }

    /// Takes the next step of the collection at `progress` (one batch), with `workers`
    /// sweeps at once, and moves `progress` past it.
    pub async fn collection_step(
        &self,
        progress: &mut CollectionProgress,
        workers: usize,
    ) -> Result<CollectionStep, RegistryError> {
        let before = progress.before;
        match progress.phase {
            CollectionPhase::Untagged => {
                let after = (progress.after_repository, progress.after_digest.as_str());
                let page = (self.meta)
                    .untagged_manifests(after, MANIFEST_BATCH, before)
                    .await?;
                let Some(last) = page.last() else {
                    // A pass that deleted something may have freed others: walk again.
                    let another_pass = progress.pass_deleted;
                    progress.enter(CollectionPhase::Untagged);
                    if !another_pass {
                        progress.enter(CollectionPhase::Unlink);
                    }
                    return Ok(CollectionStep::Manifests(Vec::new()));
                };
                (progress.after_repository, progress.after_digest) =
                    (last.repository_id, last.digest.to_string());
                let mut deleted = Vec::new();
                for manifest in page {
                    if (self.meta)
                        .delete_untagged_manifest(&manifest.repository, &manifest.digest, before)
                        .await?
                    {
                        deleted.push(manifest);
                    }
                }
                progress.pass_deleted |= !deleted.is_empty();
                progress.totals.manifests += deleted.len() as u64;
                Ok(CollectionStep::Manifests(deleted))
            }
            CollectionPhase::Unlink => {
                let batch = (self.meta)
                    .unlink_unreferenced(progress.after_repository, REPOSITORY_BATCH, before)
                    .await?;
                progress.totals.links_removed += batch.unlinked;
                match batch.last_repository {
                    Some(last) => progress.after_repository = last,
                    None => progress.enter(CollectionPhase::Mark),
                }
                Ok(CollectionStep::Unlinked(batch.unlinked))
            }
            CollectionPhase::Mark => {
                let marked = (self.meta)
                    .mark_unlinked_blobs(&progress.after_digest, BLOB_BATCH, before)
                    .await?;
                match marked.last() {
                    Some(last) => progress.after_digest = last.digest.to_string(),
                    None => progress.enter(CollectionPhase::Orphans),
                }
                Ok(CollectionStep::Marked(marked.len()))
            }
            CollectionPhase::Orphans => {
                let after = digest_after(&progress.after_digest)?;
                let Some((last, old)) = self.old_stored_blobs(after.as_ref(), before).await? else {
                    // Past the last blob: settle what sweeps cut short left retired.
                    self.recover_retired(before).await?;
                    progress.enter(CollectionPhase::Sweep);
                    return Ok(CollectionStep::Marked(0));
                };
                progress.after_digest = last.to_string();
                let claimed = match old.is_empty() {
                    true => Vec::new(),
                    false => {
                        (self.meta)
                            .claim_orphan_blobs(&old, self.clock.now_ms())
                            .await?
                    }
                };
                Ok(CollectionStep::Marked(claimed.len()))
            }
            CollectionPhase::Sweep => {
                let page = self
                    .meta
                    .marked_blobs(&progress.after_digest, BLOB_BATCH)
                    .await?;
                let Some(last) = page.last() else {
                    progress.enter(CollectionPhase::Done);
                    return Ok(CollectionStep::Done);
                };
                progress.after_digest = last.digest.to_string();
                let (swept, failed) = self.sweep_page(page, workers.max(1)).await;
                progress.totals.blobs += swept.len() as u64;
                progress.totals.bytes += swept.iter().map(|b| b.size).sum::<u64>();
                progress.totals.failed += failed.len() as u64;
                Ok(CollectionStep::Swept { swept, failed })
            }
            CollectionPhase::Done => Ok(CollectionStep::Done),
        }
    }

    /// What a collection would delete now: blobs nothing needs (with
    /// `without_untagged`, nothing but the untagged manifests it would delete), blobs
    /// already marked for deletion (by a collection cut short, or whose sweep failed),
    /// which the sweep takes too, then bytes no row knows.
    async fn collectable(
        &self,
        before: i64,
        without_untagged: bool,
    ) -> Result<CollectionReport, RegistryError> {
        let mut report = CollectionReport::default();
        let mut after = String::new();
        loop {
            let page = self
                .meta
                .collectable_blobs(&after, BLOB_BATCH, before, without_untagged)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.digest.to_string();
            page.into_iter().for_each(|blob| report.add(blob));
        }
        let mut after = String::new();
        loop {
            let page = self.meta.marked_blobs(&after, BLOB_BATCH).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.digest.to_string();
            page.into_iter().for_each(|blob| report.add(blob));
        }
        let mut after = None;
        while let Some((last, old)) = self.old_stored_blobs(after.as_ref(), before).await? {
            let digests: Vec<Digest> = old.iter().map(|b| b.digest.clone()).collect();
            let unrecorded = self.meta.unrecorded_blobs(&digests).await?;
            (old.into_iter())
                .filter(|b| unrecorded.contains(&b.digest))
                .for_each(|b| report.add(b));
            after = Some(last);
        }
        Ok(report)
    }

    /// One page of the blob store's committed blobs after `after`: the last one listed,
    /// and those written before `before`; `None` past the last.
    async fn old_stored_blobs(
        &self,
        after: Option<&Digest>,
        before: i64,
    ) -> Result<Option<(Digest, Vec<MarkedBlob>)>, RegistryError> {
        let page = self.blobs.list_blobs(after, BLOB_BATCH as usize).await?;
        let Some(last) = page.last().map(|b| b.digest.clone()) else {
            return Ok(None);
        };
        let old = (page.into_iter())
            .filter(|b| unix_ms(b.written) < before)
            .map(|b| MarkedBlob {
                digest: b.digest,
                size: b.size,
            })
            .collect();
        Ok(Some((last, old)))
    }

    /// Every untagged manifest pushed before `before` that a collection's passes would
    /// delete now.
    async fn doomed_untagged(&self, before: i64) -> Result<Vec<UntaggedManifest>, RegistryError> {
        let (mut found, mut after) = (Vec::new(), (0, String::new()));
        loop {
            let page = (self.meta)
                .doomed_untagged_manifests((after.0, &after.1), MANIFEST_BATCH, before)
                .await?;
            let Some(last) = page.last() else {
                return Ok(found);
            };
            after = (last.repository_id, last.digest.to_string());
            found.extend(page);
        }
    }

    /// Sweeps the marked blobs of `page`, `workers` at once; returns those this run
    /// removed, and those it failed to (which stay marked: one blob that cannot be
    /// deleted holds up no other).
    async fn sweep_page(
        &self,
        page: Vec<MarkedBlob>,
        workers: usize,
    ) -> (Vec<MarkedBlob>, Vec<FailedSweep>) {
        let outcomes: Vec<_> = stream::iter(page)
            .map(|blob| async move { (self.sweep(&blob.digest).await, blob) })
            .buffer_unordered(workers)
            .collect()
            .await;
        let (mut swept, mut failed) = (Vec::new(), Vec::new());
        for (outcome, blob) in outcomes {
            match outcome {
                Ok(true) => swept.push(blob),
                Ok(false) => {}
                Err(e) => failed.push(FailedSweep {
                    digest: blob.digest,
                    error: e.to_string(),
                }),
            }
        }
        (swept, failed)
    }

    /// Deletes one marked blob: retires its bytes, deletes its row under the sweep's
    /// claim, then discards the bytes (or restores them, when the blob was taken over);
    /// `false` when another sweep did or is doing it.
    ///
    /// The sweep runs in a task of its own, which holds the blob's claims (the digest's
    /// lock in this process; on SQLite the sweep's file lock) until its work is over:
    /// a caller that stops waiting (a collection given up on) leaves no retire running
    /// that no claim covers.
    pub(crate) async fn sweep(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (locks, digest) = (self.digest_locks.clone(), digest.clone());
        let sweep = tokio::spawn(async move {
            let _sweeping = locks.lock(&digest).await;
            let bytes = StoreBytes(&*blobs);
            match meta.sweep_blob(&digest, SWEEP_LEASE, &bytes).await {
                Ok(removed) => Ok(removed),
                Err(SweepError::Meta(e)) => Err(e.into()),
                Err(SweepError::Bytes(e)) => Err(RegistryError::Internal(format!(
                    "garbage collection could not delete blob {digest}: {e}"
                ))),
            }
        });
        (sweep.await).map_err(|e| RegistryError::Internal(format!("a sweep's task failed: {e}")))?
    }
}
