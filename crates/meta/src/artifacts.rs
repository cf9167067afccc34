//! What Harbor's API shows of repositories and artifacts: listings with counts, sizes
//! and times, tags per artifact, and the changes that API makes (descriptions, whole
//! repositories deleted, tags added).

use async_trait::async_trait;
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;

use crate::audit::AuditEntry;
use crate::immutable::TagGuard;
use crate::listing::{ListQuery, Listed};
use crate::store::{Deletion, MetaError};

/// A repository as Harbor lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    /// Stable id.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Full name (`project/…`).
    pub name: RepositoryName,
    /// Free text.
    pub description: String,
    /// Manifests in it.
    pub artifact_count: u64,
    /// Manifest pulls counted so far.
    pub pull_count: u64,
    /// When it was created, by its first blob or manifest (Unix milliseconds).
    pub created_at: i64,
    /// When it last changed: a blob linked, a manifest pushed, its description set.
    pub updated_at: i64,
}

/// The fields repositories can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryField {
    /// `name`
    Name,
    /// `creation_time`
    CreationTime,
    /// `update_time`
    UpdateTime,
    /// `pull_count`
    PullCount,
    /// `id`
    Id,
}

/// A tag as Harbor lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    /// Name.
    pub name: Tag,
    /// The artifact it points at.
    pub artifact_id: i64,
    /// When it was pushed (Unix milliseconds).
    pub pushed_at: i64,
    /// When it was last pulled by name, if ever.
    pub pulled_at: Option<i64>,
}

/// A manifest as Harbor lists it, with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// Stable id.
    pub id: i64,
    /// Its repository's id.
    pub repository_id: i64,
    /// Digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// Annotations as a JSON object text.
    pub annotations: Option<String>,
    /// The manifest it refers to, if any.
    pub subject: Option<Digest>,
    /// Its bytes, when at most the size the query allowed.
    pub content: Option<Bytes>,
    /// Its size plus its blobs' sizes and, for an index, each child's total size (the
    /// child's size plus its blobs').
    pub total_size: u64,
    /// When it was pushed.
    pub pushed_at: i64,
    /// When it was last pulled, if ever.
    pub pulled_at: Option<i64>,
    /// Its tags, by name.
    pub tags: Vec<TagInfo>,
}

/// The fields artifacts can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactField {
    /// `digest`
    Digest,
    /// `media_type`
    MediaType,
    /// `push_time`
    PushTime,
    /// `pull_time` (artifacts never pulled sort as the oldest)
    PullTime,
    /// `tags`: exactly a tag name, `*` (tagged) or `nil` (untagged), or fuzzily part of
    /// a tag name
    Tags,
    /// `labels`: carries the label of each id given (`AllOf`), or of the id (`Exact`)
    Labels,
    /// `id`
    Id,
}

/// Why a tag could not be added.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AddTagError {
    /// The repository has a tag of that name.
    #[error("the tag already exists")]
    Exists,
    /// The artifact is not in the repository.
    #[error("the artifact does not exist")]
    NoArtifact,
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Repositories and artifacts as Harbor's API shows and changes them.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// A page of the repositories of the projects with these ids (none for no id).
    async fn list_repositories(
        &self,
        projects: &[i64],
        query: &ListQuery<RepositoryField>,
    ) -> Result<Listed<RepositoryInfo>, MetaError>;
    /// One repository.
    async fn repository_info(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryInfo>, MetaError>;
    /// Sets a repository's description; returns whether it exists. Records `audit`
    /// in the same transaction.
    async fn set_repository_description(
        &self,
        name: &RepositoryName,
        description: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Deletes a repository with all its artifacts, tags and blob links (bytes stay
    /// until garbage collection): `Deleted` or `NotFound`, or `Stale` when `guard` no
    /// longer holds (its rules changed, or the repository has a tag it does not list;
    /// then nothing is deleted). Records `audit` in the same transaction.
    async fn delete_repository(
        &self,
        name: &RepositoryName,
        guard: Option<&TagGuard>,
        audit: &AuditEntry,
    ) -> Result<Deletion, MetaError>;
    /// A page of a repository's artifacts, each with its bytes when they are at most
    /// `content_limit` long.
    async fn list_artifacts(
        &self,
        repository: &RepositoryName,
        query: &ListQuery<ArtifactField>,
        content_limit: u64,
    ) -> Result<Listed<ArtifactInfo>, MetaError>;
    /// One artifact, by tag or digest, with its bytes when at most `content_limit`.
    async fn artifact(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_limit: u64,
    ) -> Result<Option<ArtifactInfo>, MetaError>;
    /// The artifacts of a repository whose subject is `subject` (at most 1000), with
    /// their bytes when at most `content_limit`.
    async fn referring_artifacts(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        content_limit: u64,
    ) -> Result<Vec<ArtifactInfo>, MetaError>;
    /// Bytes of the distinct blobs linked in the projects with these ids: a blob linked
    /// in several repositories counts once.
    async fn stored_bytes(&self, projects: &[i64]) -> Result<u64, MetaError>;
    /// Points a new tag at an artifact of the repository; records `audit` in the same
    /// transaction.
    async fn add_tag(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        tag: &Tag,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), AddTagError>;
}
