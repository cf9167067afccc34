//! The scale-out metadata store: PostgreSQL through a connection pool.
//!
//! Every node of a cluster opens the same database; nothing of the metadata is kept
//! only in one node's memory. Each write is one transaction, so the invariants the
//! SQLite adapter keeps (a manifest push is one transaction, a delete checks references
//! in the transaction that deletes) hold here too, between nodes as well as within one.
//!
//! Transactions run at PostgreSQL's default isolation, READ COMMITTED, where each
//! statement sees what was committed before it started. Races between nodes are settled
//! by locks taken before the checks they protect:
//! - every write that touches a repository's manifests, tags or blob links first locks
//!   the repository's row (a push locks it with `SELECT … FOR UPDATE` in
//!   `push_manifest`, or updates or creates it, before anything else; deletes use
//!   `SELECT … FOR UPDATE`), so such writes in one repository run one after
//!   the other and each check reads what the previous writer committed; a push racing a
//!   delete of a blob or manifest it needs either sees it gone or keeps it;
//! - a project is created with `INSERT … ON CONFLICT DO NOTHING` and read back, so
//!   two nodes pushing into a new project share one; a push locks the project's row
//!   (`FOR KEY SHARE`) against a concurrent delete;
//! - upload-session creation and the first administrator's creation take a
//!   transaction-scoped advisory lock ([`Lock`]), and so do a completing upload's pin
//!   and garbage collection's mark, on the digest (migration 0006): a blob is marked
//!   for deletion only when no repository links it and no session pins it, and a
//!   link or pin never takes a blob so marked.
//!
//! Upload-session writes (creation, progress, a recorded digest) commit with
//! `synchronous_commit = off`: like the SQLite adapter's `synchronous=NORMAL` batches
//! they survive a crash of Berth, and a crash of the database server may lose the last
//! few of them (whole transactions only); the next durable commit flushes them too.
//! Every other write is flushed before it is acknowledged.
//!
//! The caches are correct whatever other nodes write. What a tag or digest resolves
//! to, which blobs a repository links and its tag list are served from memory only at
//! the repository version (`tag_version`) the database reports when the request
//! arrives; the triggers of the schema (and a push that sets tags, itself) bump it
//! with every change that could make one of them wrong. The versions of every
//! repository read at a time are read together, in one query ([`versions`]), so a
//! cached read costs a share of one round trip. Manifest bytes are cached by digest,
//! which names them forever, after the database confirmed the repository holds the
//! manifest.

mod accounts;
mod artifacts;
mod audit;
mod collection;
mod immutable;
mod import;
mod jobs;
mod labels;
mod leases;
mod listing;
mod migrate;
mod projects;
mod queries;
mod quotas;
mod retention;
mod robots;
mod sessions;
mod settings;
mod sweep_claim;
mod versions;

pub use import::{ImportError, ImportReport, import_sqlite};

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use berth_meta::cache::{ManifestCache, TagCache, VersionedCache};
use berth_meta::{
    AuditEntry, BlobLinkStore, CreateUploadError, Deletion, ManifestStore, MetaError, MetaStore,
    NewManifest, PullRecord, PutManifestError, ReferrerLimit, ReferrerPage, RepositoryStore,
    SessionLimits, StoredManifest, TagGuard, TagPage, UploadAdvance, UploadLease, UploadSession,
    UploadStore, Visibility, WarningMark,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::queries::ManifestPut;
use crate::versions::VersionReader;

/// Resolved references and blob links kept per node, each at most.
const CACHED_FACTS: usize = 1 << 16;
/// Longest a statement waits for a connection, opening one included.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a push is tried when concurrent writes make its transaction fail.
const PUSH_ATTEMPTS: usize = 5;

/// How to reach the database.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database?…`.
    pub url: String,
    /// Connections this node opens at most (at least three are opened where it is
    /// smaller): a quarter of them, at least one, carry upload-session progress, the
    /// others everything else, halved between the statements every push makes, lent
    /// without sqlx's pool ([`leases`]), and the rest. One more reads repository
    /// versions.
    pub pool_size: u32,
    /// Longest a statement may run (lock waits included) before the server cancels it,
    /// and longest a transaction may stay idle before the server ends it.
    pub statement_timeout: Duration,
}

impl fmt::Debug for PgConfig {
    /// Never shows the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// Metadata store on a PostgreSQL database.
pub struct PgMetaStore {
    /// Connections whose commits are flushed before they return.
    pool: PgPool,
    /// Connections for upload-session progress, whose commits return before they are
    /// flushed (`synchronous_commit = off`): a single-statement write needs no
    /// transaction block of its own to say so.
    progress_pool: PgPool,
    /// Connections for the statements every push makes, whose commits are flushed.
    leased: leases::Connections,
    /// Complete tag lists of recently listed repositories.
    tag_cache: TagCache,
    /// Recently served manifest bytes, shared by the responses that send them.
    manifest_cache: ManifestCache,
    /// Reads repository versions in batches.
    versions: VersionReader,
    /// What recently pulled references (a tag, or a digest as text) resolved to.
    references: VersionedCache<String, StoredManifest>,
    /// Sizes of recently checked blob links, by digest.
    blob_links: VersionedCache<String, u64>,
}

impl PgMetaStore {
    /// Connects, then applies pending migrations under the migration lock.
    pub async fn connect(config: &PgConfig) -> Result<Self, MetaError> {
        Self::migrate(config).await?;
        let pool = pool_options(lent_and_pooled(durable_share(config)).1)
            .connect_with(connect_options(config)?)
            .await
            .map_err(db_err)?;
        Self::over(config, pool)
    }

    /// Applies pending migrations under the migration lock, over a connection of its
    /// own that is closed afterwards.
    pub async fn migrate(config: &PgConfig) -> Result<(), MetaError> {
        let mut conn = connect_options(config)?.connect().await.map_err(db_err)?;
        migrate::run(&mut conn).await?;
        conn.close().await.map_err(db_err)
    }

    /// A store whose pool connects on first use, and which applies no migrations: the
    /// caller has run [`PgMetaStore::migrate`] on the database (possibly in another
    /// runtime, as the pool belongs to the runtime it is created in). Must be called
    /// within a Tokio runtime.
    pub fn connect_lazy(config: &PgConfig) -> Result<Self, MetaError> {
        let pool = pool_options(lent_and_pooled(durable_share(config)).1)
            .connect_lazy_with(connect_options(config)?);
        Self::over(config, pool)
    }

    /// The store over `pool`, with the progress pool and version reader `config` asks.
    fn over(config: &PgConfig, pool: PgPool) -> Result<Self, MetaError> {
        Ok(PgMetaStore {
            versions: VersionReader::spawn(
                connect_options(config)?,
                answer_timeout(config),
                versions::QUERY_GAP,
            )?,
            pool,
            progress_pool: progress_pool(config)?,
            leased: leases::Connections::new(
                connect_options(config)?,
                lent_and_pooled(durable_share(config)).0,
                ACQUIRE_TIMEOUT,
                answer_timeout(config),
            ),
            tag_cache: TagCache::default(),
            manifest_cache: ManifestCache::default(),
            references: VersionedCache::new(CACHED_FACTS),
            blob_links: VersionedCache::new(CACHED_FACTS),
        })
    }

    /// How many repository-version queries this node has sent: each cached read needs
    /// a version, and one query answers all the reads queued while it waited.
    pub fn version_queries(&self) -> u64 {
        self.versions.queries()
    }

    /// A transaction whose commit is on disk before it returns.
    async fn durable(&self) -> Result<Transaction<'static, Postgres>, MetaError> {
        self.pool.begin().await.map_err(db_err)
    }

    /// One attempt at a push: committed, or what stopped it (nothing changed then).
    async fn try_put_manifest(
        &self,
        manifest: &NewManifest,
    ) -> Result<ManifestPut, PutManifestError> {
        // Most pushes go to a repository that exists: one round trip.
        let mut lease = self.leased.lease().await?;
        let put = queries::put_manifest(lease.connection(), manifest).await;
        // A refusal is an answer the statement ran to the end for; only a failure of the
        // connection or the statement (`Meta`) leaves the connection to be settled.
        if !matches!(put, Err(PutManifestError::Meta(_))) {
            lease.finish();
        }
        match put? {
            ManifestPut::RepositoryAbsent => {}
            outcome => return Ok(outcome),
        }
        // A failed check drops the transaction, and the repository it created with it.
        let mut tx = self.durable().await?;
        queries::ensure_repository(&mut tx, &manifest.repository, manifest.pushed_at).await?;
        let outcome = queries::put_manifest(&mut *tx, manifest).await?;
        if matches!(outcome, ManifestPut::Stored(_)) {
            tx.commit().await.map_err(db_err)?;
        }
        Ok(outcome)
    }

    /// The error of a push a quota trigger refused.
    async fn over_quota(&self, manifest: &NewManifest) -> PutManifestError {
        match quotas::exceeded(&self.pool, manifest).await {
            Ok(exceeded) => PutManifestError::QuotaExceeded(exceeded),
            Err(e) => e.into(),
        }
    }
}

/// Connections of `pool_size` kept for upload-session progress: a quarter, at least one.
fn progress_share(config: &PgConfig) -> u32 {
    (config.pool_size / 4).max(1)
}

/// Connections of `pool_size` for everything else: the rest, at least one.
fn durable_share(config: &PgConfig) -> u32 {
    config
        .pool_size
        .saturating_sub(progress_share(config))
        .max(1)
}

/// Longest to wait for the server's answer to one statement (the version reader's
/// query, or a cancelled push's statement): the server's statement timeout and some, or
/// a minute without one.
fn answer_timeout(config: &PgConfig) -> Duration {
    if config.statement_timeout.is_zero() {
        Duration::from_secs(60)
    } else {
        config.statement_timeout + Duration::from_secs(5)
    }
}

/// Splits a share of connections: half of it, at least one, lent to the statements of
/// pushes ([`leases`]), the rest, at least one, pooled for everything else.
fn lent_and_pooled(share: u32) -> (u32, u32) {
    let lent = (share / 2).max(1);
    (lent, share.saturating_sub(lent).max(1))
}

/// How upload-session progress connects: its commits return before they are flushed.
fn progress_options(config: &PgConfig) -> Result<PgConnectOptions, MetaError> {
    Ok(connect_options(config)?.options([("synchronous_commit", "off")]))
}

/// The pool of upload-session progress, connecting on first use.
fn progress_pool(config: &PgConfig) -> Result<PgPool, MetaError> {
    Ok(pool_options(progress_share(config)).connect_lazy_with(progress_options(config)?))
}

fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // The pool pings each connection when it is released; a second ping before
        // each use would add a round trip to every request. A connection the server
        // dropped while it sat idle fails the one statement that finds it.
        .test_before_acquire(false)
}

fn connect_options(config: &PgConfig) -> Result<PgConnectOptions, MetaError> {
    let options: PgConnectOptions = config
        .url
        .parse()
        .map_err(|e| MetaError(format!("database.url: {e}")))?;
    let timeout_ms = config.statement_timeout.as_millis().to_string();
    // A transaction left idle (its node stopped answering mid-transaction) is ended by
    // the server after as long, so the rows it locked do not stay locked for the other
    // nodes; Berth never waits on anything else inside a transaction.
    Ok(options.application_name("berth").options([
        ("statement_timeout", timeout_ms.as_str()),
        ("idle_in_transaction_session_timeout", timeout_ms.as_str()),
    ]))
}

pub(crate) fn db_err(e: sqlx::Error) -> MetaError {
    MetaError(e.to_string())
}

/// The constraint a failed statement violated, when it was a unique constraint.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Some(d.constraint().unwrap_or("")),
        _ => None,
    }
}

/// The first columns of a row, as a tuple (a listing's trailing count is left).
pub(crate) fn columns<'r, T: sqlx::FromRow<'r, sqlx::postgres::PgRow>>(
    row: &'r sqlx::postgres::PgRow,
) -> Result<T, MetaError> {
    T::from_row(row).map_err(db_err)
}

/// A value read from the database that does not parse as what it names.
/// A completion found its blob marked for deletion, which its pin rules out.
fn marked_while_pinned(digest: &Digest) -> MetaError {
    MetaError(format!(
        "blob {digest} was marked for deletion while an upload completing it pinned it"
    ))
}

pub(crate) fn corrupt(what: &str, e: impl fmt::Display) -> MetaError {
    MetaError(format!("stored {what} is invalid: {e}"))
}

/// Transaction-scoped advisory locks (`pg_advisory_xact_lock`): each serializes one kind
/// of check-then-write between nodes, and is released when the transaction ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lock {
    /// Counting open upload sessions and opening one. The registry-wide limit makes any
    /// two creations conflict, so one lock serves; it is held for a count over a table
    /// of at most `max_upload_sessions` rows and one insert, and only by creations.
    UploadSessions,
    /// Creating the first administrator (taken exclusively) against creating projects
    /// that become theirs (taken shared), so no project created meanwhile stays without
    /// an owner and concurrent first starts create one administrator.
    FirstAdmin,
}

impl Lock {
    /// The lock's key: "berth" in ASCII (the migration lock's key), then a number.
    pub(crate) fn key(self) -> i64 {
        match self {
            Lock::UploadSessions => 0x0062_6572_7468_0001,
            Lock::FirstAdmin => 0x0062_6572_7468_0002,
        }
    }

    /// Takes the lock exclusively until the transaction ends.
    pub(crate) async fn exclusive(self, c: &mut PgConnection) -> Result<(), MetaError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.key())
            .execute(c)
            .await
            .map(drop)
            .map_err(db_err)
    }

    /// Takes the lock shared until the transaction ends.
    pub(crate) async fn shared(self, c: &mut PgConnection) -> Result<(), MetaError> {
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(self.key())
            .execute(c)
            .await
            .map(drop)
            .map_err(db_err)
    }
}

/// Records the audit entry of a deletion that happened.
async fn audit_deletion(
    c: &mut PgConnection,
    deletion: &Deletion,
    audit: Option<&AuditEntry>,
    repository: &RepositoryName,
) -> Result<(), MetaError> {
    match (deletion, audit) {
        (Deletion::Deleted, Some(entry)) => {
            audit::insert_for_repository(c, entry, repository).await
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl RepositoryStore for PgMetaStore {
    async fn catalog(
        &self,
        visibility: &Visibility,
        last: Option<&str>,
        limit: u32,
    ) -> Result<TagPage, MetaError> {
        queries::catalog(&self.pool, visibility, last.unwrap_or(""), limit).await
    }
}

#[async_trait]
impl BlobLinkStore for PgMetaStore {
    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        let Some(current) = self.versions.of(repository.as_str()).await? else {
            return Ok(None);
        };
        if let Some(size) = self
            .blob_links
            .get(current.id, current.version, digest.as_str())
        {
            return Ok(Some(size));
        }
        let linked = queries::linked_blob(&self.pool, repository.as_str(), digest.as_str()).await?;
        Ok(linked.map(|(size, read_at)| {
            self.blob_links.store(
                read_at.id,
                read_at.version,
                digest.as_str().to_owned(),
                size,
            );
            size
        }))
    }

    async fn blob_repositories(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>, MetaError> {
        queries::blob_repositories(&self.pool, digest.as_str(), limit).await
    }

    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let repo_id = queries::ensure_repository(&mut tx, repository, now).await?;
        // Refused: the transaction is dropped with the repository it may have created.
        if !queries::link_blob(&mut tx, repo_id, digest.as_str(), size, now).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        now: i64,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let repo_id = queries::ensure_repository(&mut tx, repository, now).await?;
        // Refused: the transaction is dropped with the repository it may have created.
        if !queries::link_present_blob(&mut tx, repo_id, digest.as_str(), now).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        audit: Option<&AuditEntry>,
    ) -> Result<Deletion, MetaError> {
        let mut tx = self.durable().await?;
        let deletion = queries::unlink_blob(&mut tx, repository.as_str(), digest.as_str()).await?;
        audit_deletion(&mut tx, &deletion, audit, repository).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deletion)
    }
}

#[async_trait]
impl UploadStore for PgMetaStore {
    async fn create_upload(
        &self,
        session: &UploadSession,
        limits: SessionLimits,
    ) -> Result<(), CreateUploadError> {
        // Nothing to count without limits: no lock serializes such creations.
        let lock = (limits != SessionLimits::NONE).then_some(Lock::UploadSessions);
        queries::create_upload(&self.progress_pool, lock, session, limits).await
    }

    async fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>, MetaError> {
        queries::upload(&self.pool, id.as_str()).await
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        advance: &UploadAdvance,
    ) -> Result<bool, MetaError> {
        queries::advance_upload(&self.progress_pool, id.as_str(), advance).await
    }

    async fn lease_upload(
        &self,
        id: &UploadId,
        holder: i64,
        now: i64,
        until: i64,
    ) -> Result<UploadLease, MetaError> {
        queries::lease_upload(&self.progress_pool, id.as_str(), holder, now, until).await
    }

    async fn renew_upload_lease(
        &self,
        id: &UploadId,
        holder: i64,
        until: i64,
    ) -> Result<bool, MetaError> {
        queries::renew_upload_lease(&self.progress_pool, id.as_str(), holder, until).await
    }

    async fn release_upload(&self, id: &UploadId, holder: i64) -> Result<(), MetaError> {
        queries::release_upload(&self.progress_pool, id.as_str(), holder).await
    }

    async fn record_upload_digest(
        &self,
        id: &UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<bool, MetaError> {
        queries::record_upload_digest(&self.progress_pool, id.as_str(), size, digest.as_str()).await
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError> {
        // Most uploads complete into a repository that exists: one round trip.
        let mut lease = self.leased.lease().await?;
        let completed = queries::complete_upload_in_existing_repository(
            lease.connection(),
            id.as_str(),
            repository.as_str(),
            digest.as_str(),
            size,
            now,
        )
        .await?;
        lease.finish();
        if completed {
            return Ok(());
        }
        let mut tx = self.durable().await?;
        let repo_id = queries::ensure_repository(&mut tx, repository, now).await?;
        if !queries::link_blob(&mut tx, repo_id, digest.as_str(), size, now).await? {
            return Err(marked_while_pinned(digest));
        }
        queries::delete_upload(&mut *tx, id.as_str(), now).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_upload(&self, id: &UploadId, now: i64) -> Result<bool, MetaError> {
        queries::delete_upload(&self.pool, id.as_str(), now).await
    }

    async fn upload_ended(&self, id: &UploadId) -> Result<bool, MetaError> {
        queries::upload_ended(&self.pool, id.as_str()).await
    }

    async fn purge_ended_uploads(&self, before: i64) -> Result<u64, MetaError> {
        queries::purge_ended_uploads(&self.pool, before).await
    }

    async fn stale_uploads(&self, before: i64) -> Result<Vec<UploadId>, MetaError> {
        queries::stale_uploads(&self.pool, before).await
    }
}

#[async_trait]
impl ManifestStore for PgMetaStore {
    async fn put_manifest(&self, manifest: &NewManifest) -> Result<WarningMark, PutManifestError> {
        for _ in 0..PUSH_ATTEMPTS {
            match self.try_put_manifest(manifest).await? {
                ManifestPut::Stored(mark) => return Ok(mark),
                ManifestPut::OverQuota => return Err(self.over_quota(manifest).await),
                ManifestPut::Conflicted => continue,
                ManifestPut::RepositoryAbsent => {
                    return Err(MetaError(format!(
                        "repository {} vanished while its manifest was pushed",
                        manifest.repository
                    ))
                    .into());
                }
            }
        }
        Err(MetaError(format!(
            "the push of {} into {} conflicted with other writes {PUSH_ATTEMPTS} times",
            manifest.digest, manifest.repository
        ))
        .into())
    }

    async fn manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, MetaError> {
        let Some(current) = self.versions.of(repository.as_str()).await? else {
            return Ok(None);
        };
        let key = reference.to_string();
        let found = match self.references.get(current.id, current.version, &key) {
            Some(hit) => Some(hit),
            None => queries::manifest_row(&self.pool, repository.as_str(), reference)
                .await?
                .map(|(row, read_at)| {
                    self.references
                        .store(read_at.id, read_at.version, key, row.clone());
                    row
                }),
        };
        Ok(found.map(|mut m| {
            m.cached = self.manifest_cache.get(m.digest.as_str());
            m
        }))
    }

    async fn manifest_content(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Bytes>, MetaError> {
        let (repository, digest) = (repository.as_str(), digest.as_str());
        // The cache is keyed by digest alone, so the repository must hold the manifest.
        if let Some(content) = self.manifest_cache.get(digest) {
            let held = queries::manifest_exists(&self.pool, repository, digest).await?;
            return Ok(held.then_some(content));
        }
        let content = queries::manifest_content(&self.pool, repository, digest).await?;
        Ok(content.map(|c| self.manifest_cache.insert(digest, c)))
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError> {
        let mut tx = self.durable().await?;
        if let Some(guard) = guard
            && let Some(stale) =
                immutable::deletion_stale(&mut tx, repository, Some(digest), guard).await?
        {
            return Ok(Deletion::Stale(stale));
        }
        let deletion =
            queries::delete_manifest(&mut tx, repository.as_str(), digest.as_str(), now).await?;
        audit_deletion(&mut tx, &deletion, audit, repository).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deletion)
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        guard: Option<&TagGuard>,
        audit: Option<&AuditEntry>,
        now: i64,
    ) -> Result<Deletion, MetaError> {
        let mut tx = self.durable().await?;
        if let Some(guard) = guard
            && let Some(stale) = immutable::tag_deletion_stale(&mut tx, repository, guard).await?
        {
            return Ok(Deletion::Stale(stale));
        }
        let deletion =
            match queries::delete_tag(&mut tx, repository.as_str(), tag.as_str(), now).await? {
                true => Deletion::Deleted,
                false => Deletion::NotFound,
            };
        audit_deletion(&mut tx, &deletion, audit, repository).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deletion)
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<TagPage>, MetaError> {
        let last = last.unwrap_or("");
        let Some(current) = self.versions.of(repository.as_str()).await? else {
            return Ok(None);
        };
        let (repo_id, version) = (current.id, current.version);
        if let Some(page) = self.tag_cache.page(repo_id, version, last, limit) {
            return Ok(Some(page));
        }
        let page = queries::tags(&self.pool, repo_id, last, limit).await?;
        if last.is_empty() && !page.more {
            self.tag_cache
                .store(repo_id, version, page.names().to_vec());
        }
        Ok(Some(page))
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: ReferrerLimit,
    ) -> Result<ReferrerPage, MetaError> {
        queries::referrers(
            &self.pool,
            repository.as_str(),
            subject.as_str(),
            artifact_type,
            after.map_or("", Digest::as_str),
            limit,
        )
        .await
    }

    async fn record_pulls(
        &self,
        pulls: &[PullRecord],
        at: i64,
        audits: &[(RepositoryName, AuditEntry)],
    ) -> Result<(), MetaError> {
        let mut tx = self.durable().await?;
        queries::record_pulls(&mut tx, pulls, at).await?;
        audit::insert_for_repositories(&mut tx, audits).await?;
        tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl MetaStore for PgMetaStore {
    async fn check(&self) -> Result<(), MetaError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests;
