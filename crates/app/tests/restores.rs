//! Reads that find a live blob's bytes missing (a retire that landed after the blob was
//! pushed again) put them back from a retired copy: one restore of a digest at a time in
//! the process, which the other reads wait for before they read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_app::{BlobReply, CollectionOptions, Registry, RegistryConfig, SystemClock, UploadBody};
use berth_blob::{
    AppendOutcome, BlobError, BlobRead, BlobStore, BodyLength, ByteStream, Committed, FsBlobStore,
    Moved, RetiredBlob, StoredBlob,
};
use berth_meta_sqlite::SqliteMetaStore;
use berth_oci::{Algorithm, ByteRange, Digest, RepositoryName, ResumableHasher, UploadId};
use bytes::Bytes;
use futures_util::TryStreamExt;

/// The filesystem store, whose restores each take 200 ms (as one streaming a large blob
/// through an object store takes a while), counted while they run.
struct SlowRestores {
    inner: FsBlobStore,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    put_back: AtomicUsize,
}

impl SlowRestores {
    /// The filesystem store in `dir`, with no restore counted yet.
    fn over(dir: &std::path::Path) -> Self {
        SlowRestores {
            inner: FsBlobStore::open(dir.join("storage")).unwrap(),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            put_back: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl BlobStore for SlowRestores {
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        self.inner.read(digest, range).await
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        self.inner.size(digest).await
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        self.inner.delete(digest).await
    }

    async fn retire(
        &self,
        digest: &Digest,
        token: &str,
        moved: Moved<'_>,
    ) -> Result<(), BlobError> {
        self.inner.retire(digest, token, moved).await
    }

    async fn discard_retired(&self, digest: &Digest, token: &str) -> Result<(), BlobError> {
        self.inner.discard_retired(digest, token).await
    }

    async fn restore_retired(&self, digest: &Digest, token: &str) -> Result<bool, BlobError> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let back = self.inner.restore_retired(digest, token).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if matches!(back, Ok(true)) {
            self.put_back.fetch_add(1, Ordering::SeqCst);
        }
        back
    }

    async fn list_retired(
        &self,
        after: Option<&RetiredBlob>,
        limit: usize,
    ) -> Result<Vec<RetiredBlob>, BlobError> {
        self.inner.list_retired(after, limit).await
    }

    async fn retired_copies(&self, digest: &Digest) -> Result<Vec<RetiredBlob>, BlobError> {
        self.inner.retired_copies(digest).await
    }

    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        self.inner.create_upload(id).await
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: ResumableHasher,
        body: ByteStream,
        length: BodyLength,
    ) -> Result<AppendOutcome, BlobError> {
        (self.inner)
            .append_upload(id, offset, hasher, body, length)
            .await
    }

    fn read_chunk_bytes(&self) -> usize {
        self.inner.read_chunk_bytes()
    }

    async fn hash_upload(
        &self,
        id: &UploadId,
        len: u64,
        algorithm: Algorithm,
    ) -> Result<Digest, BlobError> {
        self.inner.hash_upload(id, len, algorithm).await
    }

    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError> {
        self.inner.commit_upload(id, len, digest).await
    }

    async fn publish_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError> {
        self.inner.publish_upload(id, len, digest).await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        self.inner.delete_upload(id).await
    }

    async fn upload_exists(&self, id: &UploadId) -> Result<bool, BlobError> {
        self.inner.upload_exists(id).await
    }

    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError> {
        self.inner.list_blobs(after, limit).await
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError> {
        self.inner.list_uploads().await
    }

    async fn check(&self) -> Result<(), BlobError> {
        self.inner.check().await
    }
}

/// A registry on SQLite in `dir` over `blobs`.
fn registry_over(dir: &std::path::Path, blobs: Arc<dyn BlobStore>) -> Arc<Registry> {
    let meta = Arc::new(SqliteMetaStore::open(dir.join("berth.db")).unwrap());
    Arc::new(Registry::new(
        meta,
        blobs,
        Arc::new(SystemClock),
        RegistryConfig::default(),
    ))
}

/// Pushes `layer` into `repository` in one request; returns the repository, the bytes
/// and their digest.
async fn pushed(
    registry: &Arc<Registry>,
    repository: &str,
    layer: &'static str,
) -> (RepositoryName, Bytes, Digest) {
    let repository = RepositoryName::parse(repository).unwrap();
    let layer = Bytes::from_static(layer.as_bytes());
    let session = registry
        .start_upload(&repository, Algorithm::Sha256)
        .await
        .unwrap();
    let body = UploadBody {
        content_length: Some(layer.len() as u64),
        stream: Box::pin(futures_util::stream::iter([Ok(layer.clone())])),
        content_range: None,
        client: None,
    };
    let digest = Digest::compute(Algorithm::Sha256, &layer);
    (registry.complete_upload(&repository, &session.url, Some(digest.as_str()), body))
        .await
        .unwrap();
    (repository, layer, digest)
}

/// The bytes a read of `digest` in `repository` sends.
async fn pulled(registry: &Registry, repository: &RepositoryName, digest: &Digest) -> Vec<u8> {
    let reply = registry.read_blob(repository, digest, None).await.unwrap();
    let BlobReply::Content(content) = reply else {
        panic!("the filesystem store hands out no URLs");
    };
    let chunks: Vec<Bytes> = content.read.body.try_collect().await.unwrap();
    chunks.concat()
}

/// Four reads at once find a live blob's bytes retired late: one restore puts them
/// back, the other reads wait for it (none starts another), and all four read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_find_a_blob_missing_wait_for_one_restore() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(SlowRestores::over(dir.path()));
    let registry = registry_over(dir.path(), blobs.clone());
    let layer = "a layer whose bytes a late retire moved aside";
    let (repository, layer, digest) = pushed(&registry, "restored/app", layer).await;
    blobs.retire(&digest, "late1", &|_| {}).await.unwrap();

    let reads = (0..4).map(|_| {
        let (registry, repository, digest) = (registry.clone(), repository.clone(), digest.clone());
        tokio::spawn(async move { pulled(&registry, &repository, &digest).await })
    });
    for read in reads.collect::<Vec<_>>() {
        assert_eq!(read.await.unwrap(), layer);
    }
    assert_eq!(
        blobs.most_at_once.load(Ordering::SeqCst),
        1,
        "restores at once"
    );
    assert_eq!(
        blobs.put_back.load(Ordering::SeqCst),
        1,
        "restores that put bytes back"
    );
}

/// A read given up on while it restores a blob's bytes (its client went away) stops no
/// restore: the restore runs to its end in a task of its own, and the bytes are back
/// for the reads after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_given_up_on_leaves_its_restore_running() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(SlowRestores::over(dir.path()));
    let registry = registry_over(dir.path(), blobs.clone());
    let layer = "a layer whose first reader went away mid-restore";
    let (repository, layer, digest) = pushed(&registry, "restored/dropped", layer).await;
    blobs.retire(&digest, "late1", &|_| {}).await.unwrap();

    let read = registry.read_blob(&repository, &digest, None);
    let given_up = tokio::time::timeout(Duration::from_millis(50), read).await;
    assert!(given_up.is_err(), "the read waits for its restore");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        blobs.put_back.load(Ordering::SeqCst),
        1,
        "the restore went on without its reader"
    );
    assert_eq!(blobs.size(&digest).await.unwrap(), Some(layer.len() as u64));
}

/// A live blob whose bytes are missing, with two retired copies: a whole one, and one
/// cut short (a failing disk, or a copy that came out of another size and whose delete
/// failed) under a token listed before it. Returns the registry, its blob store, the
/// blob's repository, bytes and digest, and the directory holding them.
async fn live_blob_with_a_cut_copy() -> (
    tempfile::TempDir,
    Arc<Registry>,
    Arc<FsBlobStore>,
    RepositoryName,
    Bytes,
    Digest,
) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(FsBlobStore::open(dir.path().join("storage")).unwrap());
    let registry = registry_over(dir.path(), blobs.clone());
    let layer = "a layer with one whole retired copy and one cut short";
    let (repository, layer, digest) = pushed(&registry, "restored/sized", layer).await;
    blobs.retire(&digest, "whole2", &|_| {}).await.unwrap();
    let shard = dir
        .path()
        .join("storage/retired/sha256")
        .join(&digest.encoded()[..2]);
    let cut = shard.join(format!("{}.cut1", digest.encoded()));
    std::fs::write(&cut, &layer[..10]).unwrap();
    (dir, registry, blobs, repository, layer, digest)
}

/// A read that finds a live blob's bytes missing puts back a retired copy only if it
/// has the blob's size: a copy cut short is passed over for a whole one, never served
/// as the blob.
#[tokio::test]
async fn a_read_restores_no_retired_copy_of_another_size() {
    let (_dir, registry, _, repository, layer, digest) = live_blob_with_a_cut_copy().await;
    assert_eq!(pulled(&registry, &repository, &digest).await, layer);
}

/// A collection's recovery of retired copies puts back, for a live blob whose bytes are
/// missing, only a copy of the blob's recorded size: the cut copy listed first is
/// passed over, and the whole one goes back.
#[tokio::test]
async fn a_collection_restores_no_retired_copy_of_another_size() {
    let (_dir, registry, blobs, _, layer, digest) = live_blob_with_a_cut_copy().await;
    let options = CollectionOptions {
        dry_run: false,
        grace: Duration::from_secs(3600),
        workers: 1,
        delete_untagged: false,
    };
    registry.collect_garbage(options).await.unwrap();
    assert_eq!(blobs.size(&digest).await.unwrap(), Some(layer.len() as u64));
}
