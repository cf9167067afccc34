//! The application's error kinds; the HTTP layer maps each to one status and error code.

use berth_blob::BlobError;
use berth_meta::{CreateUploadError, MetaError, PutManifestError, QuotaExceeded};
use berth_oci::Digest;

use crate::immutability::ImmutableTag;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The blob is not known in this repository.
    #[error("blob unknown to registry")]
    BlobUnknown,
    /// The upload session does not exist (or belongs to another repository).
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    /// The upload request is not valid.
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A digest is malformed or does not match the content.
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    /// A manifest references a blob or child manifest that is not in the repository.
    #[error("blob unknown to registry")]
    ManifestBlobUnknown(Digest),
    /// A manifest is not valid.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// The manifest is not known in this repository.
    #[error("manifest unknown")]
    ManifestUnknown,
    /// The repository is not known.
    #[error("repository name not known to registry")]
    NameUnknown,
    /// A length does not match what was declared.
    #[error("provided length did not match content length: {0}")]
    SizeInvalid(String),
    /// An upload chunk does not start where the session stands.
    #[error("requested range is not satisfiable: the upload is at offset {offset}")]
    UploadRangeInvalid {
        /// Bytes the session holds.
        offset: u64,
    },
    /// A blob read range lies outside the blob.
    #[error("requested range is not satisfiable")]
    ReadRangeInvalid {
        /// Blob size, for `Content-Range: bytes */size`.
        size: u64,
    },
    /// The upload's bytes at rest are shorter than what was acknowledged (lost in a
    /// crash or power loss); the session is gone and the client must start again.
    #[error("blob upload invalid: the upload's bytes were lost; start the upload again")]
    UploadLost,
    /// A limit on work in progress is reached; the client may retry later.
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    /// A body exceeds a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// A blob cannot be unlinked while a manifest of the repository references it.
    #[error(
        "blob {digest} is referenced by manifest {referrer} in this repository; delete that manifest first"
    )]
    BlobReferenced {
        /// The blob.
        digest: Digest,
        /// A manifest that references it.
        referrer: Digest,
    },
    /// A manifest cannot be deleted while an index of the repository lists it.
    #[error(
        "manifest {digest} is referenced by index {referrer} in this repository; delete that index first"
    )]
    ManifestReferenced {
        /// The manifest.
        digest: Digest,
        /// An index that lists it.
        referrer: Digest,
    },
    /// An immutability rule protects a tag the request would move or delete.
    #[error("{0}")]
    TagImmutable(Box<ImmutableTag>),
    /// The write would take its project past its storage limit.
    #[error(transparent)]
    QuotaExceeded(QuotaExceeded),
    /// The operation is not supported here.
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    /// A backend failed; the client did nothing wrong.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetaError> for RegistryError {
    fn from(e: MetaError) -> Self {
        RegistryError::Internal(e.to_string())
    }
}

impl From<BlobError> for RegistryError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => RegistryError::BlobUnknown,
            BlobError::UploadTruncated => RegistryError::UploadLost,
            e @ (BlobError::SyncFailed(_)
            | BlobError::InvalidToken(_)
            | BlobError::CannotKeep(_)
            | BlobError::CopyMismatch { .. }) => RegistryError::Internal(e.to_string()),
            BlobError::Body(e) => RegistryError::BlobUploadInvalid(format!("request body: {e}")),
            BlobError::TooLarge => RegistryError::TooLarge("blob exceeds the allowed size".into()),
            BlobError::Io(e) => RegistryError::Internal(e.to_string()),
        }
    }
}

impl From<CreateUploadError> for RegistryError {
    fn from(e: CreateUploadError) -> Self {
        match e {
            e @ (CreateUploadError::TooManySessions { .. }
            | CreateUploadError::TooManyInRepository { .. }) => {
                RegistryError::TooManyRequests(e.to_string())
            }
            // A new session's id is random: only a request on an ended one's URL finds
            // it taken.
            CreateUploadError::Taken => RegistryError::BlobUploadUnknown,
            CreateUploadError::Meta(e) => e.into(),
        }
    }
}

impl From<PutManifestError> for RegistryError {
    fn from(e: PutManifestError) -> Self {
        match e {
            PutManifestError::BlobUnknown(d) | PutManifestError::ManifestUnknown(d) => {
                RegistryError::ManifestBlobUnknown(d)
            }
            e @ (PutManifestError::SizeMismatch { .. }
            | PutManifestError::ManifestSizeMismatch { .. }
            | PutManifestError::MediaTypeConflict { .. }) => {
                RegistryError::ManifestInvalid(e.to_string())
            }
            PutManifestError::QuotaExceeded(e) => RegistryError::QuotaExceeded(e),
            PutManifestError::Meta(e) => e.into(),
            // Guarded pushes handle these themselves (`immutability::writes`).
            e @ (PutManifestError::Stale(_) | PutManifestError::TagProtected(_)) => {
                RegistryError::Internal(e.to_string())
            }
        }
    }
}
