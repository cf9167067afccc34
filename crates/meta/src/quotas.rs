//! Storage quotas: each project's limit and usage, kept exact by the store.
//!
//! A project's usage is the deduplicated size of what its repositories' manifests hold:
//! each manifest's own bytes and the blobs (config, layers) it references. An index's
//! children count through their own manifests; a blob that is only linked (uploaded or
//! mounted, referenced by no manifest) counts nothing. The store updates usage in the
//! transaction of every change that adds or removes a manifest, and refuses a manifest
//! push that would take a project past its limit ([`crate::PutManifestError::QuotaExceeded`]).

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};

use crate::audit::AuditEntry;
use crate::listing::{ListQuery, Listed};
use crate::model::NewManifest;
use crate::store::MetaError;

/// The limit meaning "no limit" (Harbor's `-1`).
pub const UNLIMITED: i64 = -1;

/// A write that would take a project past its storage limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quota exceeded: project {project:?} uses {used} bytes of its limit of {limit} bytes; this push needs {needed} more"
)]
pub struct QuotaExceeded {
    /// The project's name.
    pub project: String,
    /// Bytes the project uses.
    pub used: u64,
    /// The project's limit in bytes.
    pub limit: u64,
    /// Bytes the refused write would add.
    pub needed: u64,
}

/// What a committed manifest push tells of its project's quota warning mark
/// ([`QuotaStore::warn_quota`]), as the push's transaction saw the project's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningMark {
    /// The project had neither a limit nor a mark: the push cannot have changed what
    /// the mark should be, and needs no look at it.
    Unwatched,
    /// The project had a limit or a mark (or no quota row): the mark may have to change.
    Watched,
}

/// A project's quota, as Harbor's `/quotas` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The quota's id (its project's id; never reused).
    pub id: i64,
    /// The project's id.
    pub project_id: i64,
    /// The project's name.
    pub project_name: String,
    /// The name of the project's owner, if it has one.
    pub owner_name: Option<String>,
    /// The limit in bytes, or [`UNLIMITED`].
    pub hard: i64,
    /// Bytes used.
    pub used: u64,
    /// Creation time (Unix milliseconds).
    pub created_at: i64,
    /// Last change of the limit (Unix milliseconds).
    pub updated_at: i64,
}

impl Quota {
    /// Whether the limit is below the usage plus `needed` more bytes.
    pub fn refuses(&self, needed: u64) -> bool {
        u64::try_from(self.hard).is_ok_and(|hard| self.used.saturating_add(needed) > hard)
    }

    /// The refusal of `needed` more bytes under this quota.
    pub fn refusal(&self, needed: u64) -> QuotaExceeded {
        QuotaExceeded {
            project: self.project_name.clone(),
            used: self.used,
            limit: self.hard.max(0) as u64,
            needed,
        }
    }
}

/// The fields quotas can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaField {
    /// The quota's id.
    Id,
    /// The project's id (Harbor's `reference_id`).
    ProjectId,
    /// The limit.
    Hard,
    /// The usage.
    Used,
    /// Creation time.
    CreationTime,
    /// Last change.
    UpdateTime,
}

/// Where a project stands for one more blob: its quota and whether its manifests
/// already hold the digest (then the blob adds nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobQuota {
    /// The project's quota.
    pub quota: Quota,
    /// The project's manifests already hold the digest.
    pub counted: bool,
}

impl BlobQuota {
    /// Why the blob, `size` bytes, does not fit, if it does not: the project does not
    /// count it yet and its limit has no room for it.
    pub fn refusal(&self, size: u64) -> Option<QuotaExceeded> {
        (!self.counted && self.quota.refuses(size)).then(|| self.quota.refusal(size))
    }
}

/// A difference between the stored counters and a recomputation from the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageDrift {
    /// A project's stored usage is not the sum of what its manifests hold.
    Used {
        /// The project.
        project: String,
        /// Stored usage (negative when the counter is corrupt).
        stored: i64,
        /// Recomputed usage.
        recomputed: i64,
    },
    /// A project's count of one digest is not what its manifests hold.
    References {
        /// The project.
        project: String,
        /// The digest, as stored.
        digest: String,
        /// Stored size and reference count, if stored (negative when corrupt).
        stored: Option<(i64, i64)>,
        /// Recomputed size and reference count, if any manifest holds it.
        recomputed: Option<(i64, i64)>,
    },
    /// A project has no quota.
    Missing {
        /// The project.
        project: String,
    },
}

/// Quotas and usage.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// The quota of `repository`'s project and whether its manifests hold `digest`;
    /// `None` when the project does not exist yet.
    async fn blob_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobQuota>, MetaError>;
    /// Marks the quota of `repository`'s project as warned and records `audit` (its
    /// project filled in), in one transaction, when its usage is at least `percent` of
    /// a limit (rounded up to a whole byte) and it was not marked; clears the mark when
    /// it is below. The mark keeps `percent`: a delete of any kind that takes usage
    /// below that share, or a limit that does, clears it in its own transaction, so the
    /// next crossing is warned again. Returns the quota when it was marked now.
    async fn warn_quota(
        &self,
        repository: &RepositoryName,
        percent: u8,
        audit: &AuditEntry,
    ) -> Result<Option<Quota>, MetaError>;
    /// A page of quotas.
    async fn quotas(&self, query: &ListQuery<QuotaField>) -> Result<Listed<Quota>, MetaError>;
    /// One quota by id.
    async fn quota(&self, id: i64) -> Result<Option<Quota>, MetaError>;
    /// Sets quota `id`'s limit (bytes, or [`UNLIMITED`]) and records `audit`, in one
    /// transaction, clearing the warning mark when usage is below its share of the new
    /// limit; returns whether the quota exists.
    async fn set_quota_limit(
        &self,
        id: i64,
        hard: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Recomputes every project's usage and counts from its manifests and lists where
    /// the stored counters differ (`berth fsck`); empty when they agree.
    async fn usage_drift(&self) -> Result<Vec<UsageDrift>, MetaError>;
}

impl NewManifest {
    /// What the manifest adds to its project's usage at most: its own digest and size,
    /// and each blob it references, once each.
    pub fn counted(&self) -> Vec<(&Digest, u64)> {
        let mut counted: Vec<(&Digest, u64)> =
            std::iter::once((&self.digest, self.content.len() as u64))
                .chain(self.blobs.iter().map(|(d, s)| (d, *s)))
                .collect();
        counted.sort_unstable();
        counted.dedup_by(|a, b| a.0 == b.0);
        counted
    }
}
