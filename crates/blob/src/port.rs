//! The blob-store port that the application layer holds as `Arc<dyn BlobStore>`.

use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_oci::{Algorithm, ByteRange, Digest, ResumableHasher, UploadId};
use bytes::Bytes;
use futures_util::Stream;

/// A stream of body bytes, as received from or sent to a client.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Told the number of bytes a long byte operation (a retire streamed through the
/// process) has just moved, each time it moves some: whoever holds a claim on the blob
/// keeps it while bytes move.
pub type Moved<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// Failures of a blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The blob or upload does not exist.
    #[error("not found")]
    NotFound,
    /// The upload's bytes at rest are not those acknowledged: shorter than its recorded
    /// offset (lost after a crash), or written by another append than the acknowledged one.
    #[error("upload data is shorter than its recorded offset or not what was acknowledged")]
    UploadTruncated,
    /// The client's body stream failed (disconnect, timeout).
    #[error("reading the request body failed: {0}")]
    Body(io::Error),
    /// The body exceeded the allowed length.
    #[error("body is larger than allowed")]
    TooLarge,
    /// Making the upload's bytes durable failed; what reached the disk is unknown, so the
    /// bytes were discarded.
    #[error("flushing the upload failed: {0}")]
    SyncFailed(io::Error),
    /// A copy of a blob came out another size than the blob (the bytes changed, or
    /// were cut short, on the way): the copy was deleted and the blob kept.
    #[error("a copy of {expected} bytes came out {copied} bytes long; the original is kept")]
    CopyMismatch {
        /// The blob's size.
        expected: u64,
        /// The copy's size (0 when the copy could not be found).
        copied: u64,
    },
    /// The store cannot publish an upload and keep it ([`BlobStore::publish_upload`]: a
    /// filesystem without hard links); nothing was published, and the upload is as it
    /// was.
    #[error("this store cannot publish an upload and keep it: {0}")]
    CannotKeep(io::Error),
    /// A sweep's token that cannot name a retired copy (see [`valid_token`]).
    #[error("invalid sweep token {0:?}")]
    InvalidToken(String),
    /// The storage backend failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] io::Error),
}

/// What committing an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The upload's bytes are now the blob.
    Published,
    /// The blob was already present: it was kept, and the upload's bytes were discarded
    /// (or, by [`BlobStore::publish_upload`], left as they were).
    AlreadyPresent,
}

/// A committed blob opened for reading.
pub struct BlobRead {
    /// The bytes, already limited to the requested range.
    pub body: ByteStream,
    /// Number of bytes `body` yields.
    pub len: u64,
}

/// What the caller of an append knows of its body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// The request declared exactly this many bytes (`Content-Length`, `Content-Range`),
    /// and the caller refuses an append of any other length. A store may act on it
    /// before the bytes have all arrived (an object store starts putting a part it knows
    /// the body will fill), and may fail a body that ends early with
    /// [`BlobError::Body`].
    Declared(u64),
    /// Unknown: at most this many bytes are allowed.
    AtMost(u64),
}

impl BodyLength {
    /// The most bytes the body may hold: more fails the append with `TooLarge`.
    pub fn limit(self) -> u64 {
        match self {
            BodyLength::Declared(n) | BodyLength::AtMost(n) => n,
        }
    }

    /// The declared length, if the request declared one.
    pub fn declared(self) -> Option<u64> {
        match self {
            BodyLength::Declared(n) => Some(n),
            BodyLength::AtMost(_) => None,
        }
    }
}

/// What appending to an upload did.
pub struct AppendOutcome {
    /// Bytes appended by this call.
    pub written: u64,
    /// The hash state after the appended bytes.
    pub hasher: ResumableHasher,
}

/// A committed blob as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The blob.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When its bytes were written.
    pub written: SystemTime,
}

/// A blob's bytes moved aside by a sweep ([`BlobStore::retire`]), as the store lists
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredBlob {
    /// The blob.
    pub digest: Digest,
    /// The token of the sweep that retired it.
    pub token: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was retired.
    pub retired: SystemTime,
}

/// Whether `token` may name a retired copy: 1 to 64 ASCII letters and digits.
pub fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `token` if it may name a retired copy, else [`BlobError::InvalidToken`].
pub fn checked_token(token: &str) -> Result<&str, BlobError> {
    match valid_token(token) {
        true => Ok(token),
        false => Err(BlobError::InvalidToken(token.to_owned())),
    }
}

/// Content-addressed storage of committed blobs and of in-progress uploads.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Opens a committed blob, or a byte range of it.
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobRead, BlobError>;

    /// Size of a committed blob, or `None` when absent.
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;

    /// Removes a committed blob's bytes. Absent blobs are not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;

    /// Moves a committed blob's bytes aside, as a copy named by its digest and `token`
    /// (a sweep's; see [`valid_token`]), durably: the blob is then absent. Absent blobs
    /// are not an error. The bytes of a blob published under a digest are always the
    /// same, so a copy may go back whoever published the blob since. A store that
    /// moves the bytes through the process tells `moved` of them as they go; one that
    /// moves them in one step (a rename, a server-side copy) need not.
    async fn retire(&self, digest: &Digest, token: &str, moved: Moved<'_>)
    -> Result<(), BlobError>;

    /// Deletes the copy of `digest` retired under `token`. An absent copy is not an
    /// error.
    async fn discard_retired(&self, digest: &Digest, token: &str) -> Result<(), BlobError>;

    /// Puts the copy of `digest` retired under `token` back as the blob, unless the blob
    /// is present (published again since: it is kept), and keeps the copy: a retire of
    /// the same blob still under way elsewhere (a node stalled between the two requests
    /// of an object store's retire) may yet delete the blob, and the copy brings it
    /// back. Returns whether the copy went back; an absent copy is not an error.
    async fn restore_retired(&self, digest: &Digest, token: &str) -> Result<bool, BlobError>;

    /// Retired copies in order of their digest's text and token, after `after` (from
    /// the first when `None`), up to `limit`: garbage collection's recovery of sweeps
    /// cut short between their retire and their discard or restore, and of the copies
    /// kept by restores, a page at a time. Names that are no digest and token are
    /// passed over.
    async fn list_retired(
        &self,
        after: Option<&RetiredBlob>,
        limit: usize,
    ) -> Result<Vec<RetiredBlob>, BlobError>;

    /// The retired copies of `digest`, for a read that finds the bytes of a live blob
    /// missing (a retire that landed late) and restores them.
    async fn retired_copies(&self, digest: &Digest) -> Result<Vec<RetiredBlob>, BlobError>;

    /// Creates the empty byte area of a new upload.
    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError>;

    /// Appends `body` at `offset`, hashing as it writes. Bytes past `offset` left by an
    /// unacknowledged earlier append are discarded first. Fails with `TooLarge` once more
    /// than `length.limit()` bytes arrive. No write to the upload happens after this returns,
    /// whether it succeeded or failed; no thread is held while waiting for the body.
    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: ResumableHasher,
        body: ByteStream,
        length: BodyLength,
    ) -> Result<AppendOutcome, BlobError>;

    /// Size of the chunks a [`BlobStore::read`] stream yields; each is held in memory
    /// until the connection has sent it.
    fn read_chunk_bytes(&self) -> usize;

    /// Whether an append's bytes are durable, and readable as written from any node,
    /// once [`BlobStore::append_upload`] has returned (an object store's parts are). The
    /// hash state of an acknowledged offset then speaks for the bytes at rest whichever
    /// process wrote them, and completing an upload need not hash them again. A
    /// filesystem store answers no: its appends reach the disk only at commit.
    fn appends_are_durable(&self) -> bool {
        false
    }

    /// Hashes the upload's first `len` bytes as they are at rest, with `algorithm`. Fewer
    /// than `len` bytes at rest is `UploadTruncated`; an upload that is gone (published,
    /// or lost) is `NotFound`.
    async fn hash_upload(
        &self,
        id: &UploadId,
        len: u64,
        algorithm: Algorithm,
    ) -> Result<Digest, BlobError>;

    /// Makes the upload's first `len` bytes durable and publishes them atomically as
    /// `digest`, never over an existing blob. Bytes past `len` (from an append that was
    /// never acknowledged) are dropped; fewer than `len` bytes at rest is
    /// `UploadTruncated`, never padding.
    ///
    /// The caller vouches that those bytes hash to `digest`: it hashed them as they were
    /// written or with [`BlobStore::hash_upload`], and nothing wrote to the upload since.
    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError>;

    /// Publishes the upload's bytes as [`BlobStore::commit_upload`] does, but keeps them:
    /// they may be published again with `commit_upload` (the blob may have gone
    /// meanwhile), or discarded with [`BlobStore::delete_upload`]. Nothing may write to
    /// the upload any more. A store that cannot keep them answers
    /// [`BlobError::CannotKeep`], having published nothing.
    async fn publish_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError>;

    /// Discards an upload's bytes. Absent uploads are not an error.
    async fn delete_upload(&self, id: &UploadId) -> Result<(), BlobError>;

    /// Whether the upload has a byte area (created, and not yet published or deleted).
    async fn upload_exists(&self, id: &UploadId) -> Result<bool, BlobError>;

    /// Committed blobs in order of their digest's text after `after` (from the first
    /// when `None`), up to `limit`: garbage collection looks for bytes that no blob row
    /// knows. Objects whose names are no digest are passed over.
    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError>;

    /// Every upload with bytes at rest and when it was last written, for purging.
    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError>;

    /// Checks the store is reachable and writable (for `/readyz`).
    async fn check(&self) -> Result<(), BlobError>;

    /// A URL the client may fetch the committed blob from directly for a short while (a
    /// presigned URL), when the store is configured to hand them out; `None`, the
    /// default, serves the blob through Berth.
    async fn redirect_url(&self, _digest: &Digest) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}
