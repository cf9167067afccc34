//! Garbage collection's side of the metadata store: the pin a completing upload puts on
//! its digest, and the steps that mark and sweep blobs nothing links (see
//! `docs/design/gc.md` for the protocol and why it loses nothing a push needs).

use std::time::Duration;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, UploadId};

use crate::{MetaError, QuotaExceeded, UploadAdvance, UploadSession};

/// What [`CollectionStore::pin_upload_digest`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// The session now names the digest: the blob is not marked for deletion until the
    /// session ends.
    Pinned,
    /// The blob was marked for deletion: it is live again, and the session names the
    /// digest. A sweep under way finds its row taken over and restores what it
    /// retired; the session's bytes are published unless the blob's are there.
    Revived,
    /// There is no such session.
    NoSession,
    /// The session is no longer at the offset the pin's append started from (another
    /// request moved it): nothing was changed.
    Moved,
    /// The project's quota has no room for the blob (at the session's offset after the
    /// pin's append), which none of its manifests holds yet: nothing was changed, so a
    /// refused completion revives no blob.
    OverQuota,
    /// The id already has a session ([`CollectionStore::pin_new_upload`] only): nothing
    /// was changed.
    Taken,
    /// The blob, whose bytes were published before the step, is linked and the id ended
    /// ([`CollectionStore::pin_new_upload`] only): no sweep can have taken the bytes
    /// since, so the session needed no record and no pin.
    Linked,
}

/// A completing upload's pin on its digest ([`CollectionStore::pin_upload_digest`]).
#[derive(Debug, Clone)]
pub struct UploadPin {
    /// The session.
    pub id: UploadId,
    /// Its repository, whose project's quota the pin reads.
    pub repository: RepositoryName,
    /// The digest the session is about to publish.
    pub digest: Digest,
    /// Bytes the completing request appended and has not recorded: the session moves
    /// over them as it is pinned, as [`crate::UploadStore::advance_upload`] would.
    pub append: Option<UploadAdvance>,
}

/// A session recorded as it completes ([`CollectionStore::pin_new_upload`]): its whole
/// bytes were written and hashed by the completing request, before it had a record, and
/// published as the blob at `published_at`.
#[derive(Debug, Clone)]
pub struct NewUploadPin {
    /// The session as it is recorded: its offset is the blob's size, its hash state
    /// that of every byte.
    pub session: UploadSession,
    /// The digest the session is about to publish.
    pub digest: Digest,
    /// The claim the session is recorded with, as [`crate::UploadStore::lease_upload`]
    /// grants it: its holder…
    pub holder: i64,
    /// … and until when it holds.
    pub until: i64,
    /// When (milliseconds since the Unix epoch, by the completing node's clock) the
    /// completing request started publishing the bytes, which it keeps until the step
    /// answers. See [`SWEPT_BLOBS_KEPT_FOR`].
    pub published_at: i64,
}

/// How long a store remembers that a sweep deleted a blob's row (a tombstone; the upload
/// purge forgets older ones, by the store's clock).
/// [`CollectionStore::pin_new_upload`] links a blob whose bytes were published before
/// it only while no tombstone of the digest is left, and only within half this time of
/// `published_at` by the store's clock: a sweep that retired the bytes after they were
/// published is then still remembered, whatever the node's clock says, as long as it is
/// less than half this time off the store's.
pub const SWEPT_BLOBS_KEPT_FOR: Duration = Duration::from_secs(24 * 3600);

/// What [`CollectionStore::pin_upload_digest`] did, and why its project's quota refused
/// the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedUpload {
    /// The pin.
    pub outcome: PinOutcome,
    /// With [`PinOutcome::OverQuota`] only: the project's usage and limit as the pin
    /// found them, and the blob's size as what it needed.
    pub refusal: Option<QuotaExceeded>,
}

/// A blob marked for deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedBlob {
    /// The blob.
    pub digest: Digest,
    /// Its size, the bytes its sweep frees.
    pub size: u64,
}

/// A blob as its row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedBlob {
    /// The blob.
    pub digest: Digest,
    /// Its size as recorded.
    pub size: u64,
}

/// What one batch of [`CollectionStore::unlink_unreferenced`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkBatch {
    /// The last repository visited, where the next batch starts after; `None` when no
    /// repository was left.
    pub last_repository: Option<i64>,
    /// Links removed.
    pub unlinked: u64,
}

/// A manifest that no tag names and that nothing of its repository needs: no index of
/// the repository lists it, and the manifest it names as its subject (a signature's, an
/// SBOM's), if any, is not in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntaggedManifest {
    /// Its repository's row id; the next page starts after (`repository_id`, `digest`).
    pub repository_id: i64,
    /// Its repository.
    pub repository: RepositoryName,
    /// The manifest.
    pub digest: Digest,
    /// Its own size in bytes.
    pub size: u64,
}

/// Told the number of bytes a sweep's retire has just moved, each time it moves some
/// (see [`SweepBytes::retire`]).
pub type Moved<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// The byte side of a sweep ([`CollectionStore::sweep_blob`]). A sweep never deletes a
/// blob's bytes outright: it moves them aside under its claim's token (they are the
/// same bytes whoever published them, for blobs are content-addressed), deletes the row
/// only if its claim still holds, and then discards the retired copy, or restores it
/// (and keeps it, see [`SweepBytes::restore`]) when another sweep or a push took the
/// blob over meanwhile.
#[async_trait]
pub trait SweepBytes: Send + Sync {
    /// Moves the blob's bytes aside, under `token`. Absent bytes are no error. A retire
    /// that moves the bytes through the process (a blob larger than one server-side copy)
    /// tells `moved` of them as they go, and the sweep keeps its claim meanwhile.
    async fn retire(
        &self,
        digest: &Digest,
        token: &str,
        moved: Moved<'_>,
    ) -> Result<(), SweepFailed>;

    /// Deletes the copy retired under `token`. An absent copy is no error.
    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed>;

    /// Puts the copy retired under `token` back, unless the blob's bytes are there
    /// (published again meanwhile), and keeps the copy: another node's retire of the
    /// blob may still be under way, and delete the bytes after this; the copy is
    /// discarded once the blob has no live row. An absent copy is no error.
    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed>;
}

/// Ends a sweep whose bytes were retired under `token`: discards them when the sweep
/// deleted the row (`row_deleted`), restores them otherwise; returns `row_deleted`. A
/// copy left by a failure here is settled by the next collection's recovery.
pub async fn settle_retired(
    bytes: &dyn SweepBytes,
    digest: &Digest,
    token: &str,
    row_deleted: bool,
) -> Result<bool, SweepError> {
    match row_deleted {
        true => bytes.discard(digest, token).await?,
        false => bytes.restore(digest, token).await?,
    }
    Ok(row_deleted)
}

/// A byte operation of a sweep ([`SweepBytes`]) failed.
#[derive(Debug, thiserror::Error)]
#[error("moving the bytes failed: {0}")]
pub struct SweepFailed(pub String);

/// Why a sweep did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Retiring, discarding or restoring the bytes failed.
    #[error(transparent)]
    Bytes(#[from] SweepFailed),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// The metadata steps of garbage collection.
#[async_trait]
pub trait CollectionStore: Send + Sync {
    /// Records in the session that it is about to publish the pin's digest, after
    /// moving it over the pin's append (if any); a blob of the digest marked for
    /// deletion is revived (present again, any sweep's claim on it cleared, so that no
    /// sweep deletes its row). Until the session ends,
    /// [`CollectionStore::mark_unlinked_blobs`] passes the blob over; both take the
    /// digest's lock, so one of them always sees the other. The answer also holds the
    /// quota of the session's project for the blob, so that completing an upload costs
    /// one round trip here; a blob the quota refuses is neither pinned nor revived
    /// ([`PinOutcome::OverQuota`]).
    async fn pin_upload_digest(&self, pin: &UploadPin) -> Result<PinnedUpload, MetaError>;

    /// Completes a new session whose bytes were published (as the blob, or found there)
    /// at `pin.published_at`, in one step, unless the id already has a session
    /// ([`PinOutcome::Taken`]) or was ended ([`PinOutcome::NoSession`]), or the quota
    /// refuses the blob as [`CollectionStore::pin_upload_digest`] does.
    ///
    /// When no sweep can have taken the bytes since they were published, the blob is
    /// linked in its repository and the id ended, as
    /// [`crate::UploadStore::complete_upload`] does ([`PinOutcome::Linked`]): the blob's
    /// row is present, or there is none and no sweep deleted one in the last
    /// [`SWEPT_BLOBS_KEPT_FOR`], and the bytes were published within half that time, by
    /// the store's clock; and the repository exists. A sweep deletes a row only while it
    /// is marked, after retiring its bytes, so bytes found or placed before are still
    /// there, or a tombstone tells. Otherwise the session is recorded pinned on
    /// `pin.digest` and claimed by `pin.holder`, as `pin_upload_digest` pins an existing
    /// one (revival alike), and the caller publishes its bytes again and completes it.
    /// The open-session limits do not apply: the session lives only as long as the
    /// request completing it.
    async fn pin_new_upload(&self, pin: &NewUploadPin) -> Result<PinnedUpload, MetaError>;

    /// Removes the blob links that no manifest of their repository references, set
    /// before `before`, in up to `limit` repositories with ids after `after`, in id
    /// order. Each repository's links go in a transaction that holds the repository as
    /// a delete does, so a manifest pushed meanwhile either keeps its blobs or finds
    /// them gone.
    async fn unlink_unreferenced(
        &self,
        after: i64,
        limit: u32,
        before: i64,
    ) -> Result<UnlinkBatch, MetaError>;

    /// Untagged manifests ([`UntaggedManifest`]) pushed before `before`, in order of
    /// repository id and digest after `after`, up to `limit`. Deleting one can leave
    /// others untagged and unneeded (an index's children, a deleted subject's
    /// referrers): they are listed once it is gone.
    async fn untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError>;

    /// Deletes the manifest if it is still an [`UntaggedManifest`] pushed before
    /// `before`, checked in the repository's lock, so that a tag or an index pushed
    /// meanwhile keeps it; returns whether it was deleted. Its tags and references go
    /// with it; the links of its blobs keep their time, so that a collection after it
    /// finds them unreferenced.
    async fn delete_untagged_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        before: i64,
    ) -> Result<bool, MetaError>;

    /// Every manifest a collection that deletes untagged manifests would delete now,
    /// over all its passes: pushed before `before`, untagged, and needed by no manifest
    /// that stays, however indirectly (listed by no index that stays, and not the
    /// referrer of a subject that stays); in order of repository id and digest after
    /// `after`, up to `limit`. Changes nothing (a dry run).
    async fn doomed_untagged_manifests(
        &self,
        after: (i64, &str),
        limit: u32,
        before: i64,
    ) -> Result<Vec<UntaggedManifest>, MetaError>;

    /// The blobs a collection would delete now, in digest order after `after`, up to
    /// `limit`: present, pinned by no session, and linked only where no manifest of the
    /// repository references them and the link was set before `before` (or not at all).
    /// With `without_untagged`, the manifests [`doomed_untagged_manifests`] lists count
    /// as gone, as they are for a collection that deletes them first. Changes nothing
    /// (a dry run).
    ///
    /// [`doomed_untagged_manifests`]: CollectionStore::doomed_untagged_manifests
    async fn collectable_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
        without_untagged: bool,
    ) -> Result<Vec<MarkedBlob>, MetaError>;

    /// Marks for deletion, in digest order after `after`, up to `limit` blobs that no
    /// repository links and no session pins, recorded before `before`; returns them.
    /// From then on no request serves them and no push links them.
    async fn mark_unlinked_blobs(
        &self,
        after: &str,
        limit: u32,
        before: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError>;

    /// Those of `digests` that no blob row knows and no session pins: bytes in the blob
    /// store that nothing records (left by a crash between publishing and linking).
    /// Changes nothing.
    async fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>, MetaError>;

    /// Records each of `orphans` that no blob row knows and no session pins as a blob
    /// marked for deletion, checked under the digest's lock as a pin is, so that the
    /// sweep deletes its bytes; returns those it recorded. A completion that pins one
    /// afterwards finds it marked, and publishes its own bytes once it is swept.
    async fn claim_orphan_blobs(
        &self,
        orphans: &[MarkedBlob],
        now: i64,
    ) -> Result<Vec<MarkedBlob>, MetaError>;

    /// Blobs marked for deletion, in digest order after `after`, up to `limit`.
    async fn marked_blobs(&self, after: &str, limit: u32) -> Result<Vec<MarkedBlob>, MetaError>;

    /// Blobs whose row is not marked for deletion (whose bytes the blob store must
    /// hold), in digest order after `after`, up to `limit`.
    async fn present_blobs(&self, after: &str, limit: u32) -> Result<Vec<RecordedBlob>, MetaError>;

    /// Those of `digests` whose row is not marked for deletion, with their recorded
    /// sizes, in digest order: blobs whose bytes a request may serve. Changes nothing.
    async fn live_blobs(&self, digests: &[Digest]) -> Result<Vec<RecordedBlob>, MetaError>;

    /// Deletes a marked blob: claims it against every other sweep for `lease`, which
    /// yields a token; retires its bytes under the token ([`SweepBytes::retire`]);
    /// deletes its row only if the claim is still this one; then discards the retired
    /// bytes, or restores them when the row was taken over (another sweep, a completing
    /// push: the digest may have been published again, and the retire may have moved
    /// those bytes). Returns whether this sweep deleted the row; `false`, having called
    /// nothing, when the blob is not marked or another sweep's claim on it holds.
    ///
    /// A claim that outlives the process that made it, where other processes could take
    /// the blob over, is renewed for another lease while its retire tells of bytes moved,
    /// and gives the retire a quarter of the lease from its last renewal: a retire that
    /// goes longer is abandoned and the claim left to lapse (a retire that still lands
    /// moves bytes aside that the next collection's recovery restores or discards); one
    /// whose claim a renewal finds taken over is stopped, and its bytes restored. A
    /// retire that failed frees the claim at once; the blob stays marked.
    async fn sweep_blob(
        &self,
        digest: &Digest,
        lease: Duration,
        bytes: &dyn SweepBytes,
    ) -> Result<bool, SweepError>;
}
