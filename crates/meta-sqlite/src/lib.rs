//! The embedded metadata store: SQLite in WAL mode.
//!
//! Reads run on a small pool of read-only connections, inline on the calling task: they
//! are point lookups and bounded pages that take microseconds. Writes go to one writer
//! thread that batches whatever is queued into a single transaction (each request in
//! its own savepoint) and commits it once for all of them, so concurrent pushes share
//! one fsync (group commit).
//!
//! A batch holding any write that must survive a power loss (blob links, manifests,
//! tags, deletions) commits with `synchronous=FULL`: the write-ahead log is fsynced
//! before any request in the batch is answered. Upload-session writes (creation and
//! progress) commit with `synchronous=NORMAL`. In WAL mode that commit is written to
//! the log, in the OS page cache, but not fsynced: it survives a crash of the process,
//! while a power loss or an OS crash may roll it back (whole transactions only; the
//! database stays consistent). The log is fsynced before each checkpoint and by the next
//! `FULL` commit, which makes the earlier `NORMAL` commits durable too.
//!
//! When SQLite rolls back a batch's transaction on its own (disk full, I/O error, out
//! of memory), every request whose changes it held is answered with an error and the
//! rest of the batch runs in a new transaction.

mod accounts;
mod artifacts;
mod audit;
mod collection;
mod immutable;
mod jobs;
mod labels;
mod listing;
mod migrate;
mod projects;
mod queries;
mod quotas;
mod readers;
mod retention;
mod robots;
mod sessions;
mod settings;
mod writer;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use berth_meta::cache::{ManifestCache, TagCache};
use berth_meta::{
    AuditEntry, BlobLinkStore, CreateUploadError, Deletion, GuardFailure, ManifestStore, MetaError,
    MetaStore, NewManifest, PullRecord, PutManifestError, ReferrerLimit, ReferrerPage,
    RepositoryStore, SessionLimits, StoredManifest, TagGuard, TagPage, UploadAdvance, UploadLease,
    UploadSession, UploadStore, Visibility, WarningMark,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;

use crate::readers::Readers;
use crate::writer::{Durability, Writer};

/// Metadata store on an SQLite database file.
pub struct SqliteMetaStore {
    readers: Readers,
    /// Complete tag lists of recently listed repositories.
    tag_cache: TagCache,
    /// Recently served manifest bytes, shared by the responses that send them.
    manifest_cache: ManifestCache,
    writer: Writer,
    /// The directory of the files whose locks (across processes) sweeps hold from their
    /// check of a marked blob to the delete of its row: one file per first two hex
    /// digits of the digest, so a sweep stalled on one blob holds up only the sweeps
    /// of its shard.
    sweep_locks: PathBuf,
}

impl SqliteMetaStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MetaError> {
        let path: PathBuf = path.as_ref().to_owned();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| MetaError(format!("{}: {e}", dir.display())))?;
        }
        let mut conn = writer::open_writer_connection(&path)?;
        migrate::run(&mut conn)?;
        let mut sweep_locks = path.clone().into_os_string();
        sweep_locks.push("-sweeps");
        let sweep_locks: PathBuf = sweep_locks.into();
        std::fs::create_dir_all(&sweep_locks)
            .map_err(|e| MetaError(format!("{}: {e}", sweep_locks.display())))?;
        Ok(SqliteMetaStore {
            sweep_locks,
            readers: Readers::new(path),
            tag_cache: TagCache::default(),
            manifest_cache: ManifestCache::default(),
            writer: Writer::start(conn)?,
        })
    }
}

pub(crate) fn db_err(e: rusqlite::Error) -> MetaError {
    MetaError(e.to_string())
}

/// Records the audit entry of a deletion that happened.
fn audit_deletion(
    c: &rusqlite::Connection,
    deletion: &Deletion,
    audit: Option<AuditEntry>,
    repository: &RepositoryName,
) -> Result<(), MetaError> {
    match (deletion, audit) {
        (Deletion::Deleted, Some(entry)) => audit::insert_for_repository(c, entry, repository),
        _ => Ok(()),
    }
}

/// Tables whose ids are never reused (migration 0011).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sequence {
    Users,
    Projects,
    Robots,
}

/// The next id of `table`, never one a deleted row had; in the caller's transaction.
pub(crate) fn next_id(c: &rusqlite::Connection, table: Sequence) -> Result<i64, MetaError> {
    let (name, sql) = match table {
        Sequence::Users => ("users", "SELECT coalesce(max(id), 0) FROM users"),
        Sequence::Projects => ("projects", "SELECT coalesce(max(id), 0) FROM projects"),
        Sequence::Robots => ("robots", "SELECT coalesce(max(id), 0) FROM robots"),
    };
    c.prepare_cached(&format!(
        "UPDATE id_sequences SET last = max(last, ({sql})) + 1 WHERE name = ?1 RETURNING last"
    ))
    .and_then(|mut s| s.query_row([name], |r| r.get(0)))
    .map_err(db_err)
}

/// The message of a unique-constraint violation (it names the table and column).
pub(crate) fn unique_violation(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(f, message)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Some(message.as_deref().unwrap_or(""))
        }
        _ => None,
    }
}

#[async_trait]
impl RepositoryStore for SqliteMetaStore {
    async fn catalog(
        &self,
        visibility: &Visibility,
        last: Option<&str>,
        limit: u32,
    ) -> Result<TagPage, MetaError> {
        self.readers
            .with(|c| queries::catalog(c, visibility, last.unwrap_or(""), limit))
    }
}

#[async_trait]
impl BlobLinkStore for SqliteMetaStore {
    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        self.readers
            .with(|c| queries::linked_blob(c, repository.as_str(), digest.as_str()))
    }

    async fn blob_repositories(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>, MetaError> {
        self.readers
            .with(|c| queries::blob_repositories(c, digest.as_str(), limit))
    }

    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<bool, MetaError> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.writer
            .run(move |c| {
                if queries::blob_deleting(c, digest.as_str())? {
                    return Ok(false);
                }
                let repo_id = queries::ensure_repository(c, &repository, now)?;
                queries::link_blob(c, repo_id, digest.as_str(), size, now)?;
                Ok(true)
            })
            .await
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        now: i64,
    ) -> Result<bool, MetaError> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.writer
            .run(move |c| {
                if !queries::blob_present(c, digest.as_str())? {
                    return Ok(false);
                }
                let repo_id = queries::ensure_repository(c, &repository, now)?;
                queries::link_recorded_blob(c, repo_id, digest.as_str(), now)?;
                Ok(true)
            })
            .await
    }

    async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        audit: Option<&AuditEntry>,
    ) -> Result<Deletion, MetaError> {
        let (repository, digest, audit) = (repository.clone(), digest.clone(), audit.cloned());
        self.writer
            .run(move |c| {
                let deletion = queries::unlink_blob(c, repository.as_str(), digest.as_str())?;
                audit_deletion(c, &deletion, audit, &repository)?;
                Ok(deletion)
            })
            .await
    }
}

#[async_trait]
impl UploadStore for SqliteMetaStore {
    async fn create_upload(
        &self,
        session: &UploadSession,
        limits: SessionLimits,
    ) -> Result<(), CreateUploadError> {
        let session = session.clone();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                queries::create_upload(c, &session, limits)
            })
            .await
    }

    async fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>, MetaError> {
        self.readers.with(|c| queries::upload(c, id.as_str()))
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        advance: &UploadAdvance,
    ) -> Result<bool, MetaError> {
        let (id, advance) = (id.clone(), advance.clone());
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                queries::advance_upload(c, id.as_str(), &advance)
            })
            .await
    }

    async fn lease_upload(
        &self,
        id: &UploadId,
        holder: i64,
        now: i64,
        until: i64,
    ) -> Result<UploadLease, MetaError> {
        let id = id.clone();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                queries::lease_upload(c, id.as_str(), holder, now, until)
            })
            .await
    }

    async fn renew_upload_lease(
        &self,
        id: &UploadId,
        holder: i64,
        until: i64,
    ) -> Result<bool, MetaError> {
        let id = id.clone();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                queries::renew_upload_lease(c, id.as_str(), holder, until)
            })
            .await
    }

    async fn release_upload(&self, id: &UploadId, holder: i64) -> Result<(), MetaError> {
        let id = id.clone();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                queries::release_upload(c, id.as_str(), holder)
            })
            .await
    }

    async fn record_upload_digest(
        &self,
        id: &UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<bool, MetaError> {
        let (id, digest) = (id.clone(), digest.clone());
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                queries::record_upload_digest(c, id.as_str(), size, digest.as_str())
            })
            .await
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError> {
        let (id, repository, digest) = (id.clone(), repository.clone(), digest.clone());
        self.writer
            .run(move |c| {
                // The session's pin kept the blob from being marked since before its
                // bytes were published.
                if queries::blob_deleting(c, digest.as_str())? {
                    return Err(MetaError(format!(
                        "blob {digest} was marked for deletion while an upload completing it pinned it"
                    )));
                }
                let repo_id = queries::ensure_repository(c, &repository, now)?;
                queries::link_blob(c, repo_id, digest.as_str(), size, now)?;
                queries::delete_upload(c, id.as_str(), now).map(drop)
            })
            .await
    }

    async fn delete_upload(&self, id: &UploadId, now: i64) -> Result<bool, MetaError> {
        let id = id.clone();
        self.writer
            .run(move |c| queries::delete_upload(c, id.as_str(), now))
            .await
    }

    async fn upload_ended(&self, id: &UploadId) -> Result<bool, MetaError> {
        self.readers.with(|c| queries::upload_ended(c, id.as_str()))
    }

    async fn purge_ended_uploads(&self, before: i64) -> Result<u64, MetaError> {
        self.writer
            .run(move |c| queries::purge_ended_uploads(c, before))
            .await
    }

    async fn stale_uploads(&self, before: i64) -> Result<Vec<UploadId>, MetaError> {
        self.readers.with(|c| queries::stale_uploads(c, before))
    }
}

#[async_trait]
impl ManifestStore for SqliteMetaStore {
    async fn put_manifest(&self, manifest: &NewManifest) -> Result<WarningMark, PutManifestError> {
        let manifest = manifest.clone();
        self.writer
            .run(move |c| {
                immutable::check_push(c, &manifest)?;
                queries::put_manifest(c, &manifest)?;
                let mark = quotas::warning_mark(c, manifest.repository.project())?;
                if let Some(entry) = manifest.audit {
                    audit::insert_for_repository(c, entry, &manifest.repository)?;
                }
                Ok(mark)
            })
            .await
    }

    async fn manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, MetaError> {
        self.readers.with(|c| {
            let mut row = queries::manifest_row(c, repository.as_str(), reference)?;
            if let Some(m) = &mut row {
                m.cached = self.manifest_cache.get(m.digest.as_str());
            }
            Ok(row)
        })
    }

    async fn manifest_content(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Bytes>, MetaError> {
        self.readers.with(|c| {
            // The cache is keyed by digest alone, so the repository must hold the manifest.
            let Some(id) = queries::manifest_id(c, repository.as_str(), digest.as_str())? else {
                return Ok(None);
            };
            Ok(Some(match self.manifest_cache.get(digest.as_str()) {
                Some(content) => content,
                None => self
                    .manifest_cache
                    .insert(digest.as_str(), queries::manifest_content(c, id)?),
            }))
        })
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError> {
        let (repository, digest) = (repository.clone(), digest.clone());
        let (guard, audit) = (guard.cloned(), audit.cloned());
        self.writer
            .run(move |c| {
                if let Some(guard) = &guard
                    && let Some(stale) =
                        immutable::deletion_stale(c, &repository, Some(&digest), guard)?
                {
                    return Ok(Deletion::Stale(stale));
                }
                let deletion =
                    queries::delete_manifest(c, repository.as_str(), digest.as_str(), now)?;
                audit_deletion(c, &deletion, audit, &repository)?;
                Ok(deletion)
            })
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
        let (repository, tag) = (repository.clone(), tag.clone());
        let (guard, audit) = (guard.cloned(), audit.cloned());
        self.writer
            .run(move |c| {
                if let Some(guard) = &guard
                    && immutable::rules_changed(c, &repository, guard)?
                {
                    return Ok(Deletion::Stale(GuardFailure::RulesChanged));
                }
                let deletion = match queries::delete_tag(c, repository.as_str(), tag.as_str(), now)?
                {
                    true => Deletion::Deleted,
                    false => Deletion::NotFound,
                };
                audit_deletion(c, &deletion, audit, &repository)?;
                Ok(deletion)
            })
            .await
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<TagPage>, MetaError> {
        let last = last.unwrap_or("");
        self.readers.with(|c| {
            let Some((repo_id, version)) = queries::repository_tag_version(c, repository.as_str())?
            else {
                return Ok(None);
            };
            if let Some(page) = self.tag_cache.page(repo_id, version, last, limit) {
                return Ok(Some(page));
            }
            let page = queries::tags(c, repo_id, last, limit)?;
            if last.is_empty() && !page.more {
                self.tag_cache
                    .store(repo_id, version, page.names().to_vec());
            }
            Ok(Some(page))
        })
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: ReferrerLimit,
    ) -> Result<ReferrerPage, MetaError> {
        let after = after.map_or("", Digest::as_str);
        self.readers.with(|c| {
            queries::referrers(
                c,
                repository.as_str(),
                subject.as_str(),
                artifact_type,
                after,
                limit,
            )
        })
    }

    async fn record_pulls(
        &self,
        pulls: &[PullRecord],
        at: i64,
        audits: &[(RepositoryName, AuditEntry)],
    ) -> Result<(), MetaError> {
        let (pulls, audits) = (pulls.to_vec(), audits.to_vec());
        self.writer
            .run(move |c| {
                queries::record_pulls(c, &pulls, at)?;
                for (repository, entry) in audits {
                    audit::insert_for_repository(c, entry, &repository)?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn check(&self) -> Result<(), MetaError> {
        self.readers
            .with(|c| c.query_row("SELECT 1", [], |_| Ok(())))?;
        self.writer
            .run(|c| c.execute_batch("SELECT 1").map_err(db_err))
            .await
    }
}

#[cfg(test)]
mod tests;
