//! Failures a test can inject into the metadata store, at the steps where a crash, a
//! disconnect or a full disk would cut an operation in a real deployment.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, BlobLinkStore, CollectionStore, CreateUploadError, Deletion, ImmutableRule,
    ImmutableRuleError, ImmutableRuleStore, Listed, ManifestStore, MarkedBlob, MetaError,
    MetaStore, Moved, NewManifest, NewUploadPin, PinnedUpload, ProjectRules, PullRecord,
    PutManifestError, RecordedBlob, ReferrerLimit, ReferrerPage, RepositoryStore, SessionLimits,
    StoredManifest, SweepBytes, SweepError, SweepFailed, TagGuard, TagPage, UnlinkBatch,
    UntaggedManifest, UploadAdvance, UploadLease, UploadPin, UploadSession, UploadStore,
    Visibility,
};
use berth_meta::{BlobQuota, ListQuery, Quota, QuotaField, QuotaStore, UsageDrift, WarningMark};
use berth_meta::{
    ExecutionStart, ExecutionStatus, JobId, RetentionCandidate, RetentionExecution,
    RetentionPolicy, RetentionPolicyError, RetentionStore, RetentionTask, StartedExecution,
    TaskEnd,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;

/// The failures armed for the next operations.
#[derive(Debug, Default)]
pub struct MetaFaults {
    /// Upload completions still to cut before they link their blob.
    cut_completions: AtomicUsize,
    /// Whole blobs' one-step completions still to cut before they run.
    cut_one_step_completions: AtomicUsize,
    /// Sweeps still to cut before they start: what a collection that stops between
    /// marking and sweeping leaves behind.
    cut_sweeps: AtomicUsize,
    /// Marking batches still to fail: a database that fails a collection midway.
    cut_marks: AtomicUsize,
    /// Sweeps whose retire of the bytes still to fail, once the blob is claimed: an
    /// object store answering one request with an error.
    failed_deletions: AtomicUsize,
    /// Sweeps still to cut right after they retired the bytes, before the row's delete:
    /// what a crash between the two leaves.
    cut_after_retires: AtomicUsize,
    /// The next mount to hold before it links.
    held_link: Mutex<Option<HeldLink>>,
    /// The next upload completion to hold before it links and ends the session.
    held_completion: Mutex<Option<HeldLink>>,
    /// The next end of an upload id (`delete_upload`) to hold before it runs.
    held_upload_end: Mutex<Option<HeldLink>>,
    /// The next listing of retention executions to hold after it read them.
    held_execution_listing: Mutex<Option<HeldLink>>,
    /// The next sweep's retire, to run on this store after this long, in a task of its
    /// own: a rename stuck in a blocking thread, which dropping the sweep does not stop.
    stalled_retire: Mutex<Option<StalledRetire>>,
    /// Pages of present blobs still to answer as read before a collection marked
    /// blobs: marked ones listed too.
    stale_present_pages: AtomicUsize,
}

/// A retire that lands late, whatever becomes of the sweep that started it.
pub struct StalledRetire {
    /// The store the retire runs on.
    pub blobs: Arc<dyn berth_blob::BlobStore>,
    /// How long it is held before it runs.
    pub by: Duration,
}

impl std::fmt::Debug for StalledRetire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StalledRetire")
            .field("by", &self.by)
            .finish()
    }
}

#[async_trait]
impl SweepBytes for StalledRetire {
    async fn retire(&self, digest: &Digest, token: &str, _: Moved<'_>) -> Result<(), SweepFailed> {
        let (blobs, digest, token, by) = (
            self.blobs.clone(),
            digest.clone(),
            token.to_owned(),
            self.by,
        );
        let late = tokio::spawn(async move {
            tokio::time::sleep(by).await;
            blobs.retire(&digest, &token, &|_| {}).await
        });
        late.await
            .map_err(|e| SweepFailed(e.to_string()))?
            .map_err(|e| SweepFailed(e.to_string()))
    }

    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        (self.blobs.discard_retired(digest, token).await).map_err(|e| SweepFailed(e.to_string()))
    }

    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        (self.blobs.restore_retired(digest, token).await)
            .map(drop)
            .map_err(|e| SweepFailed(e.to_string()))
    }
}

/// A link held by [`MetaFaults::hold_next_link`]: it tells `reached` once it waits, and
/// links once `release` is sent or dropped.
#[derive(Debug)]
struct HeldLink {
    reached: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// The test's side of a held link.
pub struct LinkHold {
    /// Answers once the link waits.
    pub reached: tokio::sync::oneshot::Receiver<()>,
    /// Lets the link go on.
    pub release: tokio::sync::oneshot::Sender<()>,
}

impl MetaFaults {
    /// Makes the next `n` upload completions fail at their last step, linking the blob
    /// and ending the session, after the bytes were published: what a crash between
    /// publishing and linking leaves behind.
    pub fn cut_completions(&self, n: usize) {
        self.cut_completions.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` one-step completions of whole blobs
    /// (`CollectionStore::pin_new_upload`) fail before they run, after the bytes were
    /// published: what a crash between publishing and completing leaves behind.
    pub fn cut_one_step_completions(&self, n: usize) {
        self.cut_one_step_completions.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` sweeps of marked blobs fail before they do anything, leaving
    /// those blobs marked: what a collection cut between marking and sweeping leaves.
    pub fn cut_sweeps(&self, n: usize) {
        self.cut_sweeps.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` batches that mark blobs for deletion fail, marking nothing:
    /// a collection whose database fails midway.
    pub fn cut_marks(&self, n: usize) {
        self.cut_marks.store(n, Ordering::SeqCst);
    }

    /// Makes the retire of the bytes in the next `n` sweeps fail, after the sweep
    /// claimed the blob: what an object store's error answer does.
    pub fn fail_deletions(&self, n: usize) {
        self.failed_deletions.store(n, Ordering::SeqCst);
    }

    /// Cuts the next `n` sweeps right after they retired the bytes, before they delete
    /// the row and discard or restore the bytes: what a crash between the two leaves
    /// (a retired copy, and a row still marked).
    pub fn cut_after_retires(&self, n: usize) {
        self.cut_after_retires.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` pages of present blobs list the marked blobs too, as a page
    /// read just before a collection marked them (and swept them since) does.
    pub fn stale_present_pages(&self, n: usize) {
        self.stale_present_pages.store(n, Ordering::SeqCst);
    }

    /// Makes the next sweep's retire land `by` late, in a task of its own that dropping
    /// the sweep does not stop (as a rename stuck in a blocking thread).
    pub fn stall_next_retire(&self, blobs: Arc<dyn berth_blob::BlobStore>, by: Duration) {
        *self.stalled_retire.lock().expect("stalled retire") = Some(StalledRetire { blobs, by });
    }

    /// Holds the next mount of a blob into a repository just before it links: what a request paused between finding the blob and linking it does.
    pub fn hold_next_link(&self) -> LinkHold {
        Self::arm_hold(&self.held_link)
    }

    /// Waits while a held link is armed, once.
    async fn pass_held_link(&self) {
        Self::pass_hold(&self.held_link).await;
    }

    /// Holds the next upload completion (linking the blob and ending the session, or a
    /// whole blob's completion in one step) just before it runs: what a request paused
    /// after publishing the bytes does.
    pub fn hold_next_completion(&self) -> LinkHold {
        Self::arm_hold(&self.held_completion)
    }

    /// Holds the next end of an upload id (`delete_upload`) just before it runs: what a
    /// request paused before ending a session does.
    pub fn hold_next_upload_end(&self) -> LinkHold {
        Self::arm_hold(&self.held_upload_end)
    }

    /// Holds the next listing of a policy's retention executions after it read them,
    /// before it answers: what a request paused while a runner ends an execution does.
    pub fn hold_next_execution_listing(&self) -> LinkHold {
        Self::arm_hold(&self.held_execution_listing)
    }

    fn arm_hold(slot: &Mutex<Option<HeldLink>>) -> LinkHold {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel();
        *slot.lock().expect("hold") = Some(HeldLink {
            reached: reached_tx,
            release: release_rx,
        });
        LinkHold { reached, release }
    }

    /// Waits while the hold in `slot` is armed, once.
    async fn pass_hold(slot: &Mutex<Option<HeldLink>>) {
        let held = slot.lock().expect("hold").take();
        if let Some(held) = held {
            let _ = held.reached.send(());
            let _ = held.release.await;
        }
    }

    /// Takes one armed cut of `armed`, if any is left.
    fn take_cut(armed: &AtomicUsize) -> bool {
        armed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A metadata store that passes every call to `inner`, except those `faults` cut.
pub(crate) struct FaultyMeta {
    pub(crate) inner: Arc<dyn MetaStore>,
    pub(crate) faults: Arc<MetaFaults>,
}

#[async_trait]
impl RepositoryStore for FaultyMeta {
    async fn catalog(
        &self,
        visibility: &Visibility,
        last: Option<&str>,
        limit: u32,
    ) -> Result<TagPage, MetaError> {
        self.inner.catalog(visibility, last, limit).await
    }
}

#[async_trait]
impl BlobLinkStore for FaultyMeta {
    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        self.inner.linked_blob(repository, digest).await
    }

    async fn blob_repositories(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>, MetaError> {
        self.inner.blob_repositories(digest, limit).await
    }

    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.inner.link_blob(repository, digest, size, now).await
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.faults.pass_held_link().await;
        self.inner.mount_blob(repository, digest, now).await
    }

    async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        audit: Option<&AuditEntry>,
    ) -> Result<Deletion, MetaError> {
        self.inner.unlink_blob(repository, digest, audit).await
    }
}

#[async_trait]
impl UploadStore for FaultyMeta {
    async fn create_upload(
        &self,
        session: &UploadSession,
        limits: SessionLimits,
    ) -> Result<(), CreateUploadError> {
        self.inner.create_upload(session, limits).await
    }

    async fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>, MetaError> {
        self.inner.upload(id).await
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        advance: &UploadAdvance,
    ) -> Result<bool, MetaError> {
        self.inner.advance_upload(id, advance).await
    }

    async fn lease_upload(
        &self,
        id: &UploadId,
        holder: i64,
        now: i64,
        until: i64,
    ) -> Result<UploadLease, MetaError> {
        self.inner.lease_upload(id, holder, now, until).await
    }

    async fn renew_upload_lease(
        &self,
        id: &UploadId,
        holder: i64,
        until: i64,
    ) -> Result<bool, MetaError> {
        self.inner.renew_upload_lease(id, holder, until).await
    }

    async fn release_upload(&self, id: &UploadId, holder: i64) -> Result<(), MetaError> {
        self.inner.release_upload(id, holder).await
    }

    async fn record_upload_digest(
        &self,
        id: &UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<bool, MetaError> {
        self.inner.record_upload_digest(id, size, digest).await
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError> {
        MetaFaults::pass_hold(&self.faults.held_completion).await;
        if MetaFaults::take_cut(&self.faults.cut_completions) {
            return Err(MetaError(
                "the test cut this completion before linking".into(),
            ));
        }
        self.inner
            .complete_upload(id, repository, digest, size, now)
            .await
    }

    async fn delete_upload(&self, id: &UploadId, now: i64) -> Result<bool, MetaError> {
        MetaFaults::pass_hold(&self.faults.held_upload_end).await;
        self.inner.delete_upload(id, now).await
    }

    async fn upload_ended(&self, id: &UploadId) -> Result<bool, MetaError> {
        self.inner.upload_ended(id).await
    }

    async fn purge_ended_uploads(&self, before: i64) -> Result<u64, MetaError> {
        self.inner.purge_ended_uploads(before).await
    }

    async fn stale_uploads(&self, before: i64) -> Result<Vec<UploadId>, MetaError> {
        self.inner.stale_uploads(before).await
    }
}

#[async_trait]
impl ManifestStore for FaultyMeta {
    async fn put_manifest(&self, manifest: &NewManifest) -> Result<WarningMark, PutManifestError> {
        self.inner.put_manifest(manifest).await
    }

    async fn manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, MetaError> {
        self.inner.manifest(repository, reference).await
    }

    async fn manifest_content(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Bytes>, MetaError> {
        self.inner.manifest_content(repository, digest).await
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError> {
        self.inner
            .delete_manifest(repository, digest, guard, audit, now)
            .await
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError> {
        self.inner
            .delete_tag(repository, tag, guard, audit, now)
            .await
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<TagPage>, MetaError> {
        self.inner.tags(repository, last, limit).await
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: ReferrerLimit,
    ) -> Result<ReferrerPage, MetaError> {
        self.inner
            .referrers(repository, subject, artifact_type, after, limit)
            .await
    }

    async fn record_pulls(
        &self,
        pulls: &[PullRecord],
        at: i64,
        audits: &[(RepositoryName, AuditEntry)],
    ) -> Result<(), MetaError> {
        self.inner.record_pulls(pulls, at, audits).await
    }
}

/// Sweep bytes whose retire fails, as an object store's error answer does.
struct FailingRetire;

#[async_trait]
impl SweepBytes for FailingRetire {
    async fn retire(&self, _: &Digest, _: &str, _: Moved<'_>) -> Result<(), SweepFailed> {
        Err(SweepFailed("503 Slow Down".into()))
    }

    async fn discard(&self, _digest: &Digest, _token: &str) -> Result<(), SweepFailed> {
        Ok(())
    }

    async fn restore(&self, _digest: &Digest, _token: &str) -> Result<(), SweepFailed> {
        Ok(())
    }
}

/// Sweep bytes that retire, then fail the sweep as a crash right after would: the row
/// is neither deleted nor the retired copy settled.
struct CutAfterRetire<'a>(&'a dyn SweepBytes);

#[async_trait]
impl SweepBytes for CutAfterRetire<'_> {
    async fn retire(
        &self,
        digest: &Digest,
        token: &str,
        moved: Moved<'_>,
    ) -> Result<(), SweepFailed> {
        self.0.retire(digest, token, moved).await?;
        Err(SweepFailed("sweep cut after its retire by the test".into()))
    }

    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        self.0.discard(digest, token).await
    }

    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        self.0.restore(digest, token).await
    }
}

#[async_trait]
impl CollectionStore for FaultyMeta {
    async fn pin_upload_digest(&self, pin: &UploadPin) -> Result<PinnedUpload, MetaError> {
        self.inner.pin_upload_digest(pin).await
    }

    async fn pin_new_upload(&self, pin: &NewUploadPin) -> Result<PinnedUpload, MetaError> {
        // A whole blob's completion in one step: held as any completion.
        MetaFaults::pass_hold(&self.faults.held_completion).await;
        if MetaFaults::take_cut(&self.faults.cut_one_step_completions) {
            return Err(MetaError(
                "the test cut this completion before it ran".into(),
            ));
        }
        self.inner.pin_new_upload(pin).await
    }

    async fn unlink_unreferenced(
        &self,
        after: i64,
        limit: u32,
        before: i64,
    ) -> Result<UnlinkBatch, MetaError> {
        self.inner.unlink_unreferenced(after, limit, before).await
    }

    async fn doomed_untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        (self.inner)
            .doomed_untagged_manifests(after, limit, before)
            .await
    }

    async fn collectable_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
        without_untagged: bool,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        (self.inner)
            .collectable_blobs(after, limit, before, without_untagged)
            .await
    }

    async fn untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError> {
        self.inner.untagged_manifests(after, limit, before).await
    }

    async fn delete_untagged_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        before: i64,
    ) -> Result<bool, MetaError> {
        self.inner
            .delete_untagged_manifest(repository, digest, before)
            .await
    }

    async fn mark_unlinked_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        if MetaFaults::take_cut(&self.faults.cut_marks) {
            return Err(MetaError("marking cut by the test".into()));
        }
        self.inner.mark_unlinked_blobs(after, limit, before).await
    }

    async fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>, MetaError> {
        self.inner.unrecorded_blobs(digests).await
    }

    async fn claim_orphan_blobs(
        &self,
        orphans: &[MarkedBlob],
        now: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError> {
        self.inner.claim_orphan_blobs(orphans, now).await
    }

    async fn marked_blobs(&self, after: &str, limit: u32) -> Result<Vec<MarkedBlob>, MetaError> {
        self.inner.marked_blobs(after, limit).await
    }

    async fn present_blobs(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<berth_meta::RecordedBlob>, MetaError> {
        let mut page = self.inner.present_blobs(after, limit).await?;
        if MetaFaults::take_cut(&self.faults.stale_present_pages) {
            let marked = self.inner.marked_blobs(after, limit).await?;
            page.extend(marked.into_iter().map(|m| berth_meta::RecordedBlob {
                digest: m.digest,
                size: m.size,
            }));
            page.sort_by(|a, b| a.digest.as_str().cmp(b.digest.as_str()));
            page.truncate(limit as usize);
        }
        Ok(page)
    }

    async fn live_blobs(&self, digests: &[Digest]) -> Result<Vec<RecordedBlob>, MetaError> {
        self.inner.live_blobs(digests).await
    }

    async fn sweep_blob(
        &self,
        digest: &Digest,
        lease: Duration,
        bytes: &dyn SweepBytes,
    ) -> Result<bool, SweepError> {
        if MetaFaults::take_cut(&self.faults.cut_sweeps) {
            return Err(SweepError::Meta(MetaError("sweep cut by the test".into())));
        }
        if MetaFaults::take_cut(&self.faults.failed_deletions) {
            return self.inner.sweep_blob(digest, lease, &FailingRetire).await;
        }
        if MetaFaults::take_cut(&self.faults.cut_after_retires) {
            let cut = CutAfterRetire(bytes);
            return self.inner.sweep_blob(digest, lease, &cut).await;
        }
        let stalled = self
            .faults
            .stalled_retire
            .lock()
            .expect("stalled retire")
            .take();
        if let Some(stalled) = stalled {
            return self.inner.sweep_blob(digest, lease, &stalled).await;
        }
        self.inner.sweep_blob(digest, lease, bytes).await
    }
}

#[async_trait]
impl ImmutableRuleStore for FaultyMeta {
    async fn create_immutable_rule(
        &self,
        project_id: i64,
        definition: &str,
        max_rules: u64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ImmutableRuleError> {
        self.inner
            .create_immutable_rule(project_id, definition, max_rules, now, audit)
            .await
    }

    async fn immutable_rule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<ImmutableRule>, MetaError> {
        self.inner.immutable_rule(project_id, id).await
    }

    async fn list_immutable_rules(
        &self,
        project_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<ImmutableRule>, MetaError> {
        self.inner
            .list_immutable_rules(project_id, offset, limit)
            .await
    }

    async fn immutable_rules_of(&self, project_name: &str) -> Result<ProjectRules, MetaError> {
        self.inner.immutable_rules_of(project_name).await
    }

    async fn update_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        definition: &str,
        audit: &AuditEntry,
    ) -> Result<bool, ImmutableRuleError> {
        self.inner
            .update_immutable_rule(project_id, id, definition, audit)
            .await
    }

    async fn set_immutable_rule_disabled(
        &self,
        project_id: i64,
        id: i64,
        disabled: bool,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.inner
            .set_immutable_rule_disabled(project_id, id, disabled, audit)
            .await
    }

    async fn delete_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.inner
            .delete_immutable_rule(project_id, id, audit)
            .await
    }
}

#[async_trait]
impl RetentionStore for FaultyMeta {
    async fn create_retention_policy(
        &self,
        project_id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RetentionPolicyError> {
        self.inner
            .create_retention_policy(project_id, definition, next_fire, now, audit)
            .await
    }

    async fn retention_policy(&self, id: i64) -> Result<Option<RetentionPolicy>, MetaError> {
        self.inner.retention_policy(id).await
    }

    async fn update_retention_policy(
        &self,
        id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.inner
            .update_retention_policy(id, definition, next_fire, now, audit)
            .await
    }

    async fn delete_retention_policy(
        &self,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.inner.delete_retention_policy(id, audit).await
    }

    async fn due_retention_policies(&self, now: i64) -> Result<Vec<RetentionPolicy>, MetaError> {
        self.inner.due_retention_policies(now).await
    }

    async fn start_retention_execution(
        &self,
        start: &ExecutionStart,
        now: i64,
    ) -> Result<Option<StartedExecution>, MetaError> {
        self.inner.start_retention_execution(start, now).await
    }

    async fn retention_execution(&self, id: i64) -> Result<Option<RetentionExecution>, MetaError> {
        self.inner.retention_execution(id).await
    }

    async fn retention_execution_of_job(
        &self,
        job: JobId,
    ) -> Result<Option<RetentionExecution>, MetaError> {
        self.inner.retention_execution_of_job(job).await
    }

    async fn list_retention_executions(
        &self,
        policy_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<RetentionExecution>, MetaError> {
        let listed = self
            .inner
            .list_retention_executions(policy_id, offset, limit);
        let listed = listed.await;
        MetaFaults::pass_hold(&self.faults.held_execution_listing).await;
        listed
    }

    async fn end_retention_execution(
        &self,
        id: i64,
        status: ExecutionStatus,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.inner.end_retention_execution(id, status, now).await
    }

    async fn add_retention_tasks(
        &self,
        execution_id: i64,
        repositories: &[String],
    ) -> Result<Vec<RetentionTask>, MetaError> {
        self.inner
            .add_retention_tasks(execution_id, repositories)
            .await
    }

    async fn list_retention_tasks(
        &self,
        execution_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<RetentionTask>, MetaError> {
        self.inner
            .list_retention_tasks(execution_id, offset, limit)
            .await
    }

    async fn retention_task(&self, id: i64) -> Result<Option<RetentionTask>, MetaError> {
        self.inner.retention_task(id).await
    }

    async fn start_retention_task(&self, id: i64, now: i64) -> Result<bool, MetaError> {
        self.inner.start_retention_task(id, now).await
    }

    async fn end_retention_task(
        &self,
        id: i64,
        end: &TaskEnd,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.inner.end_retention_task(id, end, now).await
    }

    async fn retention_task_log(&self, id: i64) -> Result<Option<String>, MetaError> {
        self.inner.retention_task_log(id).await
    }

    async fn retention_candidates(
        &self,
        repository: &RepositoryName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RetentionCandidate>, MetaError> {
        self.inner
            .retention_candidates(repository, after, limit)
            .await
    }
}

#[async_trait]
impl MetaStore for FaultyMeta {
    async fn check(&self) -> Result<(), MetaError> {
        self.inner.check().await
    }
}

#[async_trait]
impl QuotaStore for FaultyMeta {
    async fn blob_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobQuota>, MetaError> {
        self.inner.blob_quota(repository, digest).await
    }

    async fn warn_quota(
        &self,
        repository: &RepositoryName,
        percent: u8,
        audit: &AuditEntry,
    ) -> Result<Option<Quota>, MetaError> {
        self.inner.warn_quota(repository, percent, audit).await
    }

    async fn quotas(&self, query: &ListQuery<QuotaField>) -> Result<Listed<Quota>, MetaError> {
        self.inner.quotas(query).await
    }

    async fn quota(&self, id: i64) -> Result<Option<Quota>, MetaError> {
        self.inner.quota(id).await
    }

    async fn set_quota_limit(
        &self,
        id: i64,
        hard: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.inner.set_quota_limit(id, hard, now, audit).await
    }

    async fn usage_drift(&self) -> Result<Vec<UsageDrift>, MetaError> {
        self.inner.usage_drift().await
    }
}
