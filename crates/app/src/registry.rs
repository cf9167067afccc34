//! The registry: reads, manifests, listings and referrers (uploads are in `uploads.rs`).

use std::sync::Arc;
use std::time::Duration;

use berth_blob::{BlobRead, BlobStore};
use berth_meta::{
    Deletion, MetaStore, NewManifest, PullRecord, ReferrerLimit, StoredManifest, TagPage,
    Visibility, WarningMark,
};
use berth_oci::{
    ByteRange, Digest, ManifestError, ParsedManifest, RangeError, RangeRequest, Reference,
    RepositoryName, media_type,
};
use bytes::Bytes;
use serde::Serialize;

use crate::buffer_budget::{BufferBudget, BufferPermit};
use crate::clock::Clock;
use crate::error::RegistryError;
use crate::foreign_urls::ForeignUrlPolicy;
use crate::identity::Actor;
use crate::immutability::Protections;
use crate::locks::{DigestLocks, SessionLocks};
use crate::manifest_buffers::{HeldManifest, ManifestBuffers, SHARED_FROM};
use crate::opened_uploads::{UploadState, UploadUrlKey};
use crate::pulls::PendingPulls;
use crate::upload_limits::{BodySlot, UploadLimits};

/// Limits and lifetimes the registry enforces.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// Upload sessions idle for longer than this are purged.
    pub upload_max_age: Duration,
    /// Term of a claim on an upload session: a node that dies while writing one holds
    /// it this long at most; a live one renews its claim every third of it.
    pub upload_lease: Duration,
    /// Page size of `_catalog` and `tags/list` when the client gives no `n`.
    pub default_page: u32,
    /// Largest page a client may ask for; larger `n` values are clamped (with a `Link`).
    pub max_page: u32,
    /// Most upload sessions open at once in the whole registry.
    pub max_upload_sessions: u64,
    /// Most upload sessions open at once in one repository.
    pub max_upload_sessions_per_repository: u64,
    /// Most bytes held by open upload sessions together (0: no limit).
    pub max_open_upload_bytes: u64,
    /// Most upload bodies streaming at once. Each holds up to 3 MiB of write buffers
    /// while it streams, outside `max_buffered_bytes`: this bounds them.
    pub max_upload_bodies: usize,
    /// Most upload and manifest bodies one client address streams at once (0: no limit).
    pub max_upload_bodies_per_client: usize,
    /// How long a request waits for a limit on work in progress (upload bodies, buffered
    /// bytes) before it is refused with `429`.
    pub overload_wait: Duration,
    /// Most bytes that buffered request and response bodies may hold at once.
    pub max_buffered_bytes: u64,
    /// Most descriptors on one page of the referrers API; more are served on the next
    /// page, named by a `Link`. A page is also cut before its index would exceed
    /// `max_manifest_bytes`, since clients read it as a manifest with that same bound.
    pub max_referrers: u32,
    /// External URLs a descriptor may carry; a layer with admitted URLs need not be
    /// present. The default admits none.
    pub foreign_urls: ForeignUrlPolicy,
    /// Record every manifest pull in the audit log.
    pub audit_pulls: bool,
    /// Percent of a project's storage limit at which a push writes a `quota_warning`
    /// audit entry.
    pub quota_warning_percent: u8,
    /// The key that seals the upload URLs `POST` answers; nodes sharing a database must
    /// share it. The default is random to the process.
    pub upload_url_key: UploadUrlKey,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 64 << 30,
            upload_max_age: Duration::from_secs(3600),
            upload_lease: Duration::from_secs(30),
            default_page: 10_000,
            max_page: 10_000,
            max_upload_sessions: 4096,
            max_upload_sessions_per_repository: 256,
            max_open_upload_bytes: 64 << 30,
            max_upload_bodies: 256,
            max_upload_bodies_per_client: 64,
            overload_wait: Duration::from_secs(5),
            max_buffered_bytes: 1 << 30,
            max_referrers: 1000,
            foreign_urls: ForeignUrlPolicy::default(),
            audit_pulls: false,
            quota_warning_percent: 85,
            upload_url_key: UploadUrlKey::of_this_process(),
        }
    }
}

/// The registry's use cases.
pub struct Registry {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: RegistryConfig,
    /// Serializes requests on one upload session.
    pub(crate) upload_locks: SessionLocks,
    /// Keeps two sweeps of one blob apart (on SQLite, the sweep's only guard: see
    /// `docs/design/gc.md`).
    pub(crate) digest_locks: Arc<DigestLocks>,
    /// Lets one restore of a blob's retired bytes run at a time (reads that found them
    /// missing together wait for it).
    pub(crate) restore_locks: Arc<DigestLocks>,
    /// Limits on uploads in progress.
    pub(crate) limits: UploadLimits,
    /// Bytes buffered bodies may hold.
    buffers: BufferBudget,
    /// Manifest bytes that responses in flight hold.
    manifests: ManifestBuffers,
    /// Names this process in the upload sessions it started, so that it knows which
    /// sessions' bytes it wrote and hashed itself (all others are re-hashed at completion).
    pub(crate) instance: i64,
    /// Pulls waiting to be stamped on their artifacts.
    pulls: PendingPulls,
    /// The immutability rules last read per project, for pushes.
    pub(crate) protections: Protections,
}

/// What a blob read answers.
pub enum BlobReply {
    /// The bytes, sent by Berth.
    Content(BlobContent),
    /// A URL the client fetches the blob (or its range) from for a short while.
    Redirect(String),
}

/// A blob opened for a (possibly ranged) read.
pub struct BlobContent {
    /// The bytes to send.
    pub read: BlobRead,
    /// The room its chunks in flight hold in the buffer budget, to keep while it is sent.
    pub permit: BufferPermit,
    /// Total blob size.
    pub size: u64,
    /// The range being sent, for `206 Partial Content`.
    pub range: Option<ByteRange>,
}

/// Room held by a request body being received into memory.
pub struct BodyRoom {
    _slot: BodySlot,
    permit: BufferPermit,
    budget: BufferBudget,
}

impl BodyRoom {
    /// Grows the room to `bytes` (waiting briefly for it), as the body grows.
    pub async fn grow_to(&mut self, bytes: usize) -> Result<(), RegistryError> {
        self.budget.grow(&mut self.permit, bytes).await
    }
}

/// What a mount request did.
pub enum MountOutcome {
    /// The blob is now linked (`201`).
    Mounted,
    /// It could not be mounted; an upload session was opened instead (`202`).
    Started(Box<UploadState>),
}

/// A committed manifest push.
pub struct PushedManifest {
    /// Digest of the pushed bytes.
    pub digest: Digest,
    /// The subject it refers to, for the `OCI-Subject` header.
    pub subject: Option<Digest>,
}

/// One page of the referrers API.
pub struct ReferrersPage {
    /// The page as an OCI image index.
    pub index: Bytes,
    /// Its room in the buffer budget, to hold while it is sent.
    pub permit: BufferPermit,
    /// The last digest on this page, when more referrers follow: the next page starts
    /// after it.
    pub next_after: Option<Digest>,
}

/// One page of a name listing.
pub struct TagList {
    /// The names, in lexical order.
    pub page: TagPage,
    /// Page size to use for the next-page link, when more follow.
    pub next_page: Option<u32>,
}

impl Registry {
    /// Builds a registry over its ports.
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        config: RegistryConfig,
    ) -> Self {
        Registry {
            meta,
            blobs,
            clock,
            limits: UploadLimits::new(&config),
            buffers: BufferBudget::new(config.max_buffered_bytes, config.overload_wait),
            manifests: ManifestBuffers::default(),
            config,
            upload_locks: SessionLocks::default(),
            protections: Protections::default(),
            digest_locks: Arc::default(),
            restore_locks: Arc::default(),
            instance: rand::random_range(1..i64::MAX),
            pulls: PendingPulls::default(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Waits (briefly) for room to hold a body of `bytes` in memory; the room is given
    /// back when the permit is dropped.
    pub async fn reserve_buffer(&self, bytes: usize) -> Result<BufferPermit, RegistryError> {
        self.buffers.reserve(bytes).await
    }

    /// Room to receive a manifest body from `client`: one of the client's body slots
    /// (so one client cannot hold every slot), and `initial` bytes of the buffer budget,
    /// grown with [`BodyRoom::grow_to`] as the body arrives.
    pub async fn manifest_body_room(
        &self,
        client: Option<std::net::IpAddr>,
        initial: usize,
    ) -> Result<BodyRoom, RegistryError> {
        let slot = self.limits.body_slot(client).await?;
        let permit = self.buffers.reserve(initial).await?;
        Ok(BodyRoom {
            _slot: slot,
            permit,
            budget: self.buffers.clone(),
        })
    }

    /// Checks both stores answer (for `/readyz`).
    pub async fn ready(&self) -> Result<(), RegistryError> {
        self.database_ready().await?;
        self.storage_ready().await
    }

    /// Checks the metadata store answers.
    pub async fn database_ready(&self) -> Result<(), RegistryError> {
        Ok(self.meta.check().await?)
    }

    /// Checks the blob store answers.
    pub async fn storage_ready(&self) -> Result<(), RegistryError> {
        Ok(self.blobs.check().await?)
    }

    fn page_size(&self, n: Option<u32>) -> u32 {
        n.unwrap_or(self.config.default_page)
            .min(self.config.max_page)
    }

    /// A page of the repository catalog: the repositories of the projects `visibility`
    /// allows.
    pub async fn catalog(
        &self,
        visibility: &Visibility,
        last: Option<&str>,
        n: Option<u32>,
    ) -> Result<TagList, RegistryError> {
        let limit = self.page_size(n);
        let page = self.meta.catalog(visibility, last, limit).await?;
        Ok(TagList {
            next_page: (page.more && limit > 0).then_some(limit),
            page,
        })
    }

    /// A page of a repository's tags.
    pub async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        n: Option<u32>,
    ) -> Result<TagList, RegistryError> {
        let limit = self.page_size(n);
        let page = self
            .meta
            .tags(repository, last, limit)
            .await?
            .ok_or(RegistryError::NameUnknown)?;
        Ok(TagList {
            next_page: (page.more && limit > 0).then_some(limit),
            page,
        })
    }

    /// Size of a blob readable in `repository`.
    pub async fn blob_size(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<u64, RegistryError> {
        self.meta
            .linked_blob(repository, digest)
            .await?
            .ok_or(RegistryError::BlobUnknown)
    }

    /// Opens a blob, or the requested range of it; or, when the blob store hands out
    /// presigned URLs, where the client fetches it from. A store that fails to sign one
    /// is logged and the blob is sent by Berth.
    pub async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<RangeRequest>,
    ) -> Result<BlobReply, RegistryError> {
        let size = self.blob_size(repository, digest).await?;
        let range = range
            .map(|r| r.resolve(size))
            .transpose()
            .map_err(|e| match e {
                RangeError::Unsatisfiable | RangeError::Malformed(_) => {
                    RegistryError::ReadRangeInvalid { size }
                }
            })?;
        match self.blobs.redirect_url(digest).await {
            Ok(Some(url)) => return Ok(BlobReply::Redirect(url)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%digest, error = %e, "could not presign a blob URL; sending the blob");
            }
        }
        // A response holds at most the chunk the connection is sending and the next one.
        let permit = self
            .buffers
            .reserve(2 * self.blobs.read_chunk_bytes())
            .await?;
        let Some(read) = self.read_live(digest, size, range).await? else {
            return Err(RegistryError::Internal(format!(
                "blob {digest} is linked but its bytes are missing"
            )));
        };
        Ok(BlobReply::Content(BlobContent {
            read,
            permit,
            size,
            range,
        }))
    }

    /// The bytes of a small blob linked to `repository` (a config), or `None` when it
    /// is not there or larger than `max` bytes.
    pub async fn small_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        max: u64,
    ) -> Result<Option<Bytes>, RegistryError> {
        use futures_util::TryStreamExt;
        let size = match self.meta.linked_blob(repository, digest).await? {
            Some(size) if size <= max => size,
            _ => return Ok(None),
        };
        let permit = self.buffers.reserve(max as usize).await?;
        let Some(read) = self.read_live(digest, size, None).await? else {
            return Ok(None);
        };
        let mut bytes = bytes::BytesMut::new();
        let mut body = read.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > max {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        drop(permit);
        Ok(Some(bytes.freeze()))
    }

    /// Unlinks a blob from a repository (`DELETE /v2/<name>/blobs/<digest>`), unless a
    /// manifest there still references it: that manifest would then be served while its
    /// content is not, and pushing it again would fail.
    pub async fn delete_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &Actor,
    ) -> Result<(), RegistryError> {
        let audit = actor.audit(
            "delete",
            "blob",
            &format!("{repository}@{digest}"),
            None,
            self.clock.now_ms(),
        );
        match self
            .meta
            .unlink_blob(repository, digest, Some(&audit))
            .await?
        {
            Deletion::Deleted => Ok(()),
            Deletion::NotFound => Err(RegistryError::BlobUnknown),
            Deletion::ReferencedBy(referrer) => Err(RegistryError::BlobReferenced {
                digest: digest.clone(),
                referrer,
            }),
            // Blob links are never guarded.
            Deletion::Stale(stale) => Err(RegistryError::Internal(stale.to_string())),
        }
    }

    /// Validates and commits a manifest (`PUT /v2/<name>/manifests/<reference>`).
    pub async fn put_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        actor: &Actor,
    ) -> Result<PushedManifest, RegistryError> {
        if body.len() as u64 > self.config.max_manifest_bytes {
            return Err(RegistryError::TooLarge(format!(
                "manifest exceeds {} bytes",
                self.config.max_manifest_bytes
            )));
        }
        let digest = match reference {
            Reference::Digest(claimed) => {
                let computed = Digest::compute(claimed.algorithm(), &body);
                if &computed != claimed {
                    return Err(RegistryError::DigestInvalid(format!(
                        "manifest hashes to {computed}, not {claimed}"
                    )));
                }
                computed
            }
            Reference::Tag(_) => Digest::compute(berth_oci::Algorithm::Sha256, &body),
        };
        let parsed = ParsedManifest::parse(&body, content_type).map_err(|e| match e {
            ManifestError::Invalid(msg) => RegistryError::ManifestInvalid(msg),
            e @ ManifestError::Schema1 => RegistryError::ManifestInvalid(e.to_string()),
        })?;
        for d in parsed.descriptors() {
            for url in &d.urls {
                self.config.foreign_urls.check(url).map_err(|why| {
                    RegistryError::ManifestInvalid(format!(
                        "descriptor {} has the URL {url:?}, which is refused: {why}",
                        d.digest
                    ))
                })?;
            }
        }
        let mut blobs: Vec<(Digest, u64)> = parsed
            .required_blobs()
            .map(|d| (d.digest.clone(), d.size))
            .collect();
        blobs.sort();
        blobs.dedup();
        let mut children: Vec<(Digest, u64)> = parsed
            .manifests
            .iter()
            .map(|d| (d.digest.clone(), d.size))
            .collect();
        children.sort();
        children.dedup();
        let subject = parsed.subject.map(|s| s.digest);
        let manifest = NewManifest {
            repository: repository.clone(),
            digest: digest.clone(),
            media_type: parsed.media_type,
            artifact_type: parsed.artifact_type,
            annotations: parsed.annotations,
            subject: subject.clone(),
            content: body,
            blobs,
            children,
            tags: match reference {
                Reference::Tag(t) => vec![t.clone()],
                Reference::Digest(_) => Vec::new(),
            },
            pushed_at: self.clock.now_ms(),
            audit: Some(actor.audit(
                "create",
                "artifact",
                &artifact_resource(repository, reference),
                None,
                self.clock.now_ms(),
            )),
            guard: None,
        };
        if self.commit_manifest(manifest).await? == WarningMark::Watched {
            self.note_quota_warning(repository, actor).await;
        }
        Ok(PushedManifest { digest, subject })
    }

    /// Resolves a manifest by tag or digest, holds its bytes for the response and notes
    /// the pull.
    ///
    /// The bytes are shared with every other response sending the same manifest, and
    /// their room in the buffer budget is set aside, by the size the row records, before
    /// they are read: a request waiting for room holds no copy.
    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<(StoredManifest, HeldManifest), RegistryError> {
        let mut manifest = self.stat_manifest(repository, reference).await?;
        let cached = manifest.cached.take();
        let shared = manifest.size >= SHARED_FROM;
        let held = match shared
            .then(|| self.manifests.get(&manifest.digest))
            .flatten()
        {
            Some(held) => held,
            None => {
                let size = manifest.size as usize;
                let (permit, cached) = match self.buffers.try_reserve(size) {
                    Some(permit) => (permit, cached),
                    // A request waiting for room holds no bytes: they are read once it
                    // has some.
                    None => (self.buffers.reserve(size).await?, None),
                };
                // Loaded by another request while this one waited for room?
                match shared
                    .then(|| self.manifests.get(&manifest.digest))
                    .flatten()
                {
                    Some(held) => held,
                    None => {
                        let content = match cached {
                            Some(content) => content,
                            None => self
                                .meta
                                .manifest_content(repository, &manifest.digest)
                                .await?
                                .ok_or(RegistryError::ManifestUnknown)?,
                        };
                        if shared {
                            self.manifests.insert(&manifest.digest, content, permit)
                        } else {
                            HeldManifest::own(content, permit)
                        }
                    }
                }
            }
        };
        self.pulls.note(PullRecord {
            repository: repository.clone(),
            digest: manifest.digest.clone(),
            tag: match reference {
                Reference::Tag(t) => Some(t.clone()),
                Reference::Digest(_) => None,
            },
            count: 0,
        });
        Ok((manifest, held))
    }

    /// Resolves a manifest without counting a pull (`HEAD`).
    pub async fn stat_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest, RegistryError> {
        self.meta
            .manifest(repository, reference)
            .await?
            .ok_or(RegistryError::ManifestUnknown)
    }

    /// Deletes a manifest by digest, or untags by tag, unless an immutability rule
    /// protects the tag or one of the manifest's tags.
    ///
    /// A manifest an index of the repository lists is kept (the index would be served with
    /// a child that is not); its tags can still be deleted. Referrers do not hold their
    /// subject: the spec lets them be pushed before it, so they may also outlive it, and
    /// they stay listed by the referrers API until they are deleted themselves.
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        actor: &Actor,
    ) -> Result<(), RegistryError> {
        let now = self.clock.now_ms();
        let resource = artifact_resource(repository, reference);
        match reference {
            Reference::Digest(d) => {
                let audit = actor.audit("delete", "artifact", &resource, None, now);
                self.delete_by_digest(repository, d, &audit, now).await
            }
            Reference::Tag(t) => {
                let audit = actor.audit("delete", "tag", &resource, None, now);
                self.untag(repository, t, &audit).await
            }
        }
    }

    /// One page of the referrers of `subject` as an OCI image index, in digest order,
    /// starting after `after` (the previous page's last digest).
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
    ) -> Result<ReferrersPage, RegistryError> {
        let limit = ReferrerLimit {
            count: self.config.max_referrers.max(1),
            bytes: self
                .config
                .max_manifest_bytes
                .saturating_sub(REFERRERS_INDEX_OVERHEAD),
        };
        // The page is bounded by `max_manifest_bytes`; that much room is set aside before
        // its rows are read, and what the page does not use is given back.
        let mut permit = self
            .buffers
            .reserve(self.config.max_manifest_bytes as usize)
            .await?;
        let page = self
            .meta
            .referrers(repository, subject, artifact_type, after, limit)
            .await?;
        let next_after = if page.more {
            page.referrers.last().map(|r| r.digest.clone())
        } else {
            None
        };
        let manifests = page
            .referrers
            .into_iter()
            .map(|r| ReferrerDescriptor {
                media_type: r.media_type,
                digest: r.digest.to_string(),
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r.annotations.and_then(|a| serde_json::from_str(&a).ok()),
            })
            .collect();
        let index = ReferrersIndex {
            schema_version: 2,
            media_type: media_type::OCI_INDEX,
            manifests,
        };
        let index =
            serde_json::to_vec(&index).map_err(|e| RegistryError::Internal(e.to_string()))?;
        permit.shrink_to(index.len());
        Ok(ReferrersPage {
            index: Bytes::from(index),
            permit,
            next_after,
        })
    }

    /// Stamps the pulls noted since the last call on their artifacts and tags.
    pub async fn flush_pulls(&self) -> Result<usize, RegistryError> {
        let (pulls, audits) = self.pulls.take();
        if !pulls.is_empty() || !audits.is_empty() {
            self.meta
                .record_pulls(&pulls, self.clock.now_ms(), &audits)
                .await?;
        }
        Ok(pulls.len())
    }

    /// Records who pulled what, when `audit_pulls` is on (written with the next batch of
    /// pull times).
    pub fn audit_pull(&self, repository: &RepositoryName, reference: &Reference, actor: &Actor) {
        if !self.config.audit_pulls {
            return;
        }
        let entry = actor.audit(
            "pull",
            "artifact",
            &artifact_resource(repository, reference),
            None,
            self.clock.now_ms(),
        );
        if !self.pulls.note_audit(repository.clone(), entry) {
            tracing::warn!("too many pull audit entries waiting to be written; dropping one");
        }
    }
}

/// Bytes of a referrers index around its descriptors (`schemaVersion`, `mediaType` and the
/// `manifests` array), kept free in the page's byte budget.
const REFERRERS_INDEX_OVERHEAD: u64 = 128;

#[derive(Serialize)]
struct ReferrersIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<ReferrerDescriptor>,
}

#[derive(Serialize)]
struct ReferrerDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// How audit entries name an artifact: `repo:tag` or `repo@digest`.
fn artifact_resource(repository: &RepositoryName, reference: &Reference) -> String {
    match reference {
        Reference::Tag(t) => format!("{repository}:{t}"),
        Reference::Digest(d) => format!("{repository}@{d}"),
    }
}
