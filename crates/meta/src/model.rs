//! Plain records passed across the metadata port. Times are Unix milliseconds.

use std::ops::Range;
use std::sync::Arc;

use berth_oci::{Algorithm, Digest, RepositoryName, Tag, UploadId};
use bytes::Bytes;

/// A blob upload in progress: where it stands and how to resume hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Session id, the last segment of the upload URL.
    pub id: UploadId,
    /// The repository the upload was started in; the URL must name the same one.
    pub repository: RepositoryName,
    /// Digest algorithm being computed.
    pub algorithm: Algorithm,
    /// Bytes received and acknowledged so far.
    pub offset: u64,
    /// Serialized hash state after `offset` bytes.
    pub hash_state: Vec<u8>,
    /// The process instance that wrote and hashed every byte so far, if one did; any
    /// other process re-hashes the bytes at rest before publishing them.
    pub verified_by: Option<i64>,
    /// The digest the first `offset` bytes were found to hash to when they were hashed
    /// again at rest, just before being published; a retried completion that finds the
    /// bytes already published may trust it. Cleared when the session advances.
    pub verified_digest: Option<Digest>,
    /// When the session was opened.
    pub created_at: i64,
    /// When bytes were last acknowledged.
    pub updated_at: i64,
}

/// The most upload sessions that may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// In the whole registry.
    pub total: u64,
    /// In one repository.
    pub per_repository: u64,
}

impl SessionLimits {
    /// No limit: for a session that lives only as long as its request, which other
    /// limits bound.
    pub const NONE: SessionLimits = SessionLimits {
        total: u64::MAX,
        per_repository: u64::MAX,
    };
}

/// A validated manifest ready to be committed, with everything it references.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Target repository (created with its project on first push).
    pub repository: RepositoryName,
    /// Digest of `content`.
    pub digest: Digest,
    /// Media type it is served with.
    pub media_type: String,
    /// Artifact type for the referrers API.
    pub artifact_type: Option<String>,
    /// Annotations as a JSON object text.
    pub annotations: Option<String>,
    /// The manifest this one refers to.
    pub subject: Option<Digest>,
    /// Exact bytes as pushed.
    pub content: Bytes,
    /// Blobs (config, layers) with their declared sizes; each must be linked to the repository.
    pub blobs: Vec<(Digest, u64)>,
    /// Child manifests (indexes) with their declared sizes; each must exist in the
    /// repository with that size.
    pub children: Vec<(Digest, u64)>,
    /// Tags to point at this manifest.
    pub tags: Vec<Tag>,
    /// Push time.
    pub pushed_at: i64,
    /// The audit entry of the push, written in the same transaction (its project is
    /// filled in from the repository's).
    pub audit: Option<crate::AuditEntry>,
    /// The immutability decision that allowed the push, checked in its transaction.
    pub guard: Option<crate::TagGuard>,
}

/// A manifest as stored. Its bytes come along only when the store holds them in memory
/// anyway (a cache); otherwise `ManifestStore::manifest_content` reads them, so that a
/// caller can set room aside for them first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Content digest.
    pub digest: Digest,
    /// Media type it was pushed with.
    pub media_type: String,
    /// Length of its bytes.
    pub size: u64,
    /// Its bytes, when the store had them at hand.
    pub cached: Option<Bytes>,
}

/// A manifest that refers to a subject, as listed by the referrers API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Referrer manifest digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// Its annotations as a JSON object text.
    pub annotations: Option<String>,
}

impl Referrer {
    /// Bytes added to a referrers page for each descriptor besides its variable fields:
    /// the JSON keys, quotes and punctuation, and the size.
    pub const DESCRIPTOR_OVERHEAD: u64 = 96;

    /// About how many bytes this referrer's descriptor takes in a referrers index: the
    /// text of its fields plus [`Referrer::DESCRIPTOR_OVERHEAD`].
    pub fn listed_size(&self) -> u64 {
        let text = self.digest.as_str().len()
            + self.media_type.len()
            + self.artifact_type.as_ref().map_or(0, String::len)
            + self.annotations.as_ref().map_or(0, String::len);
        text as u64 + Self::DESCRIPTOR_OVERHEAD
    }
}

/// How much one page of referrers may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferrerLimit {
    /// Most referrers on a page.
    pub count: u32,
    /// A page ends before the referrer that would bring the sum of
    /// [`Referrer::listed_size`] past this; it still holds at least one referrer.
    pub bytes: u64,
}

/// One page of the referrers of a subject, in digest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerPage {
    /// The referrers on this page.
    pub referrers: Vec<Referrer>,
    /// Whether more referrers follow the last one.
    pub more: bool,
}

/// One page of a listing, in lexical order.
///
/// The names may be a window into a larger shared list (a cached tag list), so serving a
/// page never copies the names.
#[derive(Debug, Clone)]
pub struct TagPage {
    all: Arc<[String]>,
    window: Range<usize>,
    /// Whether more names follow the last one.
    pub more: bool,
}

impl TagPage {
    /// A page holding exactly `names`.
    pub fn new(names: Vec<String>, more: bool) -> Self {
        let len = names.len();
        TagPage {
            all: names.into(),
            window: 0..len,
            more,
        }
    }

    /// A page that is the `window` of a shared list.
    pub fn window(all: Arc<[String]>, window: Range<usize>, more: bool) -> Self {
        TagPage { all, window, more }
    }

    /// The names on this page.
    pub fn names(&self) -> &[String] {
        &self.all[self.window.clone()]
    }
}

/// A pull to record against an artifact (and the tag it was pulled by, if any).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PullRecord {
    /// Repository pulled from.
    pub repository: RepositoryName,
    /// Manifest pulled.
    pub digest: Digest,
    /// Tag used, if the pull was by tag.
    pub tag: Option<Tag>,
    /// How many such pulls happened since the last batch (added to the repository's
    /// pull count).
    pub count: u64,
}
