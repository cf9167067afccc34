//! The metadata-store traits, one per aggregate, and their errors.

use async_trait::async_trait;
use berth_oci::{Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;

use crate::model::{
    NewManifest, PullRecord, ReferrerLimit, ReferrerPage, SessionLimits, StoredManifest, TagPage,
    UploadSession,
};
use crate::{
    AuditEntry, CollectionStore, GuardFailure, ImmutableRuleStore, QuotaExceeded, QuotaStore,
    RetentionStore, TagGuard, Visibility, WarningMark,
};

/// A failure of the metadata backend itself.
#[derive(Debug, Clone, thiserror::Error)]
#[error("metadata store error: {0}")]
pub struct MetaError(pub String);

/// Why a manifest could not be committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PutManifestError {
    /// A referenced blob is not linked to the repository.
    #[error("blob {0} is not in the repository")]
    BlobUnknown(Digest),
    /// A referenced blob's stored size differs from the descriptor's.
    #[error("blob {digest} has size {actual}, the manifest says {declared}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Size in the descriptor.
        declared: u64,
        /// Size stored.
        actual: u64,
    },
    /// A child manifest of an index is not in the repository.
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(Digest),
    /// A child manifest's stored size differs from its descriptor's.
    #[error("manifest {digest} has size {actual}, the index says {declared}")]
    ManifestSizeMismatch {
        /// The child manifest.
        digest: Digest,
        /// Size in the descriptor.
        declared: u64,
        /// Size stored.
        actual: u64,
    },
    /// The same bytes are already stored in the repository with another media type (only
    /// possible for a document without a `mediaType` field).
    #[error("this manifest is already stored as {stored:?}; push it with that Content-Type")]
    MediaTypeConflict {
        /// The media type it is stored and served with.
        stored: String,
    },
    /// The push's immutability decision is stale (see [`TagGuard`]).
    #[error(transparent)]
    Stale(GuardFailure),
    /// A tag the guard protects points at another manifest.
    #[error("tag {0} is protected and points at another manifest")]
    TagProtected(Tag),
    /// The manifest would take its project past its storage limit; nothing was written.
    #[error(transparent)]
    QuotaExceeded(QuotaExceeded),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Why an upload session was not opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreateUploadError {
    /// The registry already has as many open sessions as its limit allows.
    #[error("{open} uploads are in progress, the most allowed")]
    TooManySessions {
        /// Sessions open in the registry.
        open: u64,
    },
    /// The repository already has as many open sessions as its limit allows.
    #[error("{open} uploads are in progress in this repository, the most allowed")]
    TooManyInRepository {
        /// Sessions open in the repository.
        open: u64,
    },
    /// The id already has a session, or was ended: nothing was recorded.
    #[error("the upload id is taken")]
    Taken,
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// The blob link or manifest existed and is gone.
    Deleted,
    /// There was nothing to delete.
    NotFound,
    /// A manifest in the same repository still references it (as config, layer or index
    /// child), so nothing was deleted; the digest is one such manifest.
    ReferencedBy(Digest),
    /// The immutability decision that allowed the delete is stale (see [`TagGuard`]);
    /// nothing was deleted.
    Stale(GuardFailure),
}

/// What claiming the right to write an upload session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadLease {
    /// The claimant holds the session until the time it asked for.
    Granted(Box<GrantedUpload>),
    /// Another holder's claim is still valid.
    Held,
    /// The session does not exist (any more).
    Missing,
}

/// A session's move over bytes appended to it, compare-and-set on its offset.
#[derive(Debug, Clone)]
pub struct UploadAdvance {
    /// The offset the append started at, which the session must still be at.
    pub from: u64,
    /// The offset after the appended bytes.
    pub to: u64,
    /// The hash state after them.
    pub hash_state: Vec<u8>,
    /// The process that wrote them: the session stays vouched for by the process that
    /// wrote every byte so far only if it is this one.
    pub writer: i64,
    /// When they were written.
    pub now: i64,
}

/// A claim granted by [`UploadStore::lease_upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedUpload {
    /// The session as it stood when the claim was granted (no other claimant can change
    /// it meanwhile).
    pub session: UploadSession,
    /// The bytes all open sessions held then, for the limit on them: read in the same
    /// statement, so that an append costs no round trip of its own for it.
    pub open_bytes: u64,
}

/// Repositories and the catalog.
#[async_trait]
pub trait RepositoryStore: Send + Sync {
    /// Up to `limit` names of repositories in projects `visibility` allows, after
    /// `last`, in lexical order.
    async fn catalog(
        &self,
        visibility: &Visibility,
        last: Option<&str>,
        limit: u32,
    ) -> Result<TagPage, MetaError>;
}

/// Which repositories may serve which blobs.
#[async_trait]
pub trait BlobLinkStore: Send + Sync {
    /// Size of `digest` if it is linked to `repository`.
    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError>;
    /// Up to `limit` repositories that link `digest`, in lexical order.
    async fn blob_repositories(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>, MetaError>;
    /// Records a committed blob and links it to `repository` (creating repository and
    /// project if needed), durably. A project made so is private and belongs to the
    /// first system administrator (the lowest id), if one exists. A link made again is
    /// set to `now` (never back): garbage collection counts the blob's grace period from
    /// its latest acknowledgement. Returns `false`, having linked nothing, when the blob
    /// is marked for deletion (its bytes are going).
    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<bool, MetaError>;
    /// Links to `repository` (creating repository and project as [`Self::link_blob`]
    /// does) a blob that is recorded and not marked for deletion: a mount. Returns
    /// `false`, having linked nothing, when no such blob is recorded, for its bytes may
    /// be gone: garbage collection may have deleted it since the mount found it. A link
    /// made again is set to `now`, as [`Self::link_blob`] does.
    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        now: i64,
    ) -> Result<bool, MetaError>;
    /// Removes the link unless a manifest of the repository references the blob, checked
    /// in the same transaction as the delete. Bytes stay until garbage collection.
    /// Registry changes below record their `audit` entry in the same transaction, with
    /// the repository's project filled in, when they changed something.
    async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        audit: Option<&AuditEntry>,
    ) -> Result<Deletion, MetaError>;
}

/// Upload sessions.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a new session unless the registry or its repository already has as many
    /// open sessions as `limits` allow, or its id is taken (it has a session, or was
    /// ended: [`CreateUploadError::Taken`]); the checks and the insert are one atomic
    /// step, so concurrent creations never open more than the limits nor one id twice.
    /// Like
    /// [`UploadStore::advance_upload`], this survives a crash of the process but need not
    /// survive a power loss: a client whose session was lost gets `BLOB_UPLOAD_UNKNOWN`
    /// and starts again; no acknowledged push depends on it.
    async fn create_upload(
        &self,
        session: &UploadSession,
        limits: SessionLimits,
    ) -> Result<(), CreateUploadError>;
    /// Looks a session up.
    async fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>, MetaError>;
    /// Claims the right to write session `id` for `holder` until `until`, unless another
    /// holder's claim is still valid at `now`; a holder renews its own claim the same
    /// way. Requests on one session may reach different nodes: this claim, not a lock in
    /// one process, keeps their bytes from interleaving. A holder that dies stops
    /// renewing, and its claim lapses at `until`. A granted claim comes with the session
    /// and the bytes all open sessions hold, read in the same statement.
    async fn lease_upload(
        &self,
        id: &UploadId,
        holder: i64,
        now: i64,
        until: i64,
    ) -> Result<UploadLease, MetaError>;
    /// Extends `holder`'s claim on session `id` to `until`, only if `holder` still has
    /// it; returns whether it did. Unlike [`UploadStore::lease_upload`], this never
    /// grants a claim that was lost: a node that finds its claim gone must stop writing.
    async fn renew_upload_lease(
        &self,
        id: &UploadId,
        holder: i64,
        until: i64,
    ) -> Result<bool, MetaError>;
    /// Ends `holder`'s claim on session `id`, if it still has it.
    async fn release_upload(&self, id: &UploadId, holder: i64) -> Result<(), MetaError>;
    /// Moves a session over appended bytes, from `advance.from` to `advance.to` with a
    /// new hash state, only if it is still at `from`; returns whether it moved. A
    /// recorded digest no longer holds for the new bytes and is cleared. The session
    /// stays vouched for by the process that wrote every byte so far only if
    /// `advance.writer` is that process.
    ///
    /// The move survives a crash of the process but need not survive a power loss: the
    /// appended bytes themselves are only flushed when the upload completes, so after a
    /// power loss the session may come back at an earlier offset, from which the next
    /// append resumes.
    async fn advance_upload(
        &self,
        id: &UploadId,
        advance: &UploadAdvance,
    ) -> Result<bool, MetaError>;
    /// Records that the session's first `size` bytes, as stored, hash to `digest`, if the
    /// session is still at `size`; returns whether it was recorded. Set before the bytes
    /// are published, so that a completion cut after publishing them can be finished by
    /// a retry, which then finds the bytes gone from the upload area. Like
    /// [`UploadStore::advance_upload`], this survives a crash of the process but need
    /// not survive a power loss (the client then starts the upload again).
    async fn record_upload_digest(
        &self,
        id: &UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<bool, MetaError>;
    /// Finishes a session whose bytes were committed as `digest`: links the blob to the
    /// repository (a link made again is set to `now`, as [`BlobLinkStore::link_blob`]
    /// does) and ends the session, recording its id as ended at `now` (as
    /// [`UploadStore::delete_upload`] does), in one durable transaction.
    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError>;
    /// Ends session `id`: removes its record, if any, and records the id as ended at
    /// `now`, so that it is never opened again (an upload URL may name a session that
    /// has no record yet: see `docs/design/uploads.md`). Returns whether the id was open:
    /// it had a session, or it had none and was not ended yet.
    async fn delete_upload(&self, id: &UploadId, now: i64) -> Result<bool, MetaError>;
    /// Whether the id was ended (and not yet forgotten by
    /// [`UploadStore::purge_ended_uploads`]).
    async fn upload_ended(&self, id: &UploadId) -> Result<bool, MetaError>;
    /// Forgets the ids ended before `before`, and the tombstones of blobs swept longer
    /// ago than [`crate::SWEPT_BLOBS_KEPT_FOR`] by the store's clock; returns how many
    /// ids.
    async fn purge_ended_uploads(&self, before: i64) -> Result<u64, MetaError>;
    /// Sessions not written to since `before`.
    async fn stale_uploads(&self, before: i64) -> Result<Vec<UploadId>, MetaError>;
}

/// Manifests, tags and referrers.
#[async_trait]
pub trait ManifestStore: Send + Sync {
    /// Commits a manifest, its references and its tags in one durable transaction, after
    /// checking its guard (if any) in that transaction. The project's usage grows in the
    /// same transaction; a manifest that would take it past its limit is refused with
    /// [`PutManifestError::QuotaExceeded`] and nothing is written. Answers, as that
    /// transaction saw the project's quota, whether the push needs a look at its
    /// warning mark.
    async fn put_manifest(&self, manifest: &NewManifest) -> Result<WarningMark, PutManifestError>;
    /// Resolves a tag or digest in a repository.
    async fn manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, MetaError>;
    /// The exact bytes of manifest `digest` in `repository`, or `None` when it is not
    /// there (any more).
    async fn manifest_content(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Bytes>, MetaError>;
    /// Deletes a manifest and every tag pointing at it, unless an index of the repository
    /// lists it as a child, checked in the same transaction as the delete. Manifests whose
    /// `subject` it is do not hold it: referrers may exist without their subject. The
    /// repository's links to the blobs it referenced are set to `now`, so garbage
    /// collection counts their grace period from the delete. A `guard` is checked first, in
    /// the same transaction.
    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError>;
    /// Deletes one tag (`Deleted` or `NotFound`), after checking `guard` (if any) in the
    /// same transaction. The manifest it named is recorded as untagged at `now`, so
    /// garbage collection counts its grace period from the delete, not from its push.
    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError>;
    /// Up to `limit` tags after `last`, or `None` when the repository does not exist.
    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<TagPage>, MetaError>;
    /// A page of the manifests in `repository` whose subject is `subject`, optionally of
    /// one artifact type, in digest order: those whose digest sorts after `after` (the
    /// last one of the previous page), as many as `limit` allows.
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: ReferrerLimit,
    ) -> Result<ReferrerPage, MetaError>;
    /// Stamps last-pull times on artifacts and tags, and records the audit entries of
    /// pulls (each about a repository, whose project it is filled in from), in one
    /// transaction.
    async fn record_pulls(
        &self,
        pulls: &[PullRecord],
        at: i64,
        audits: &[(RepositoryName, AuditEntry)],
    ) -> Result<(), MetaError>;
}

/// The whole metadata store, as the application holds it.
#[async_trait]
pub trait MetaStore:
    RepositoryStore
    + BlobLinkStore
    + UploadStore
    + ManifestStore
    + CollectionStore
    + ImmutableRuleStore
    + RetentionStore
    + QuotaStore
    + 'static
{
    /// Checks the store answers (for `/readyz`).
    async fn check(&self) -> Result<(), MetaError>;
}
