//! [`ObjectBlobStore`]: the blob-store port on an object store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_blob::{
    AppendOutcome, BlobError, BlobRead, BlobStore, BodyLength, ByteStream, Committed, Moved,
    RetiredBlob, StoredBlob,
};
use berth_oci::{Algorithm, ByteRange, Digest, ResumableHasher, UploadId};
use futures_util::{StreamExt, TryStreamExt};
use object_store::{ClientOptions, GetRange, PutPayload};

use crate::backend::{client, part_streamer};
use crate::bucket::{Bucket, is_not_found, storage};
use crate::config::{Backend, MIN_PART_SIZE, OpenError, StoreOptions};
use crate::finalize::readable;
use crate::keys::Keys;
use crate::state::UploadState;
use crate::state_cache::StateCache;

/// Longest any request but a streamed read may take, retries included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Upper bound of the chunks a read yields: the HTTP client hands on at most what its
/// read buffer holds (about 400 KiB).
const READ_CHUNK_BOUND: usize = 512 << 10;

/// Blob store on an object store (S3 and compatibles, Azure Blob Storage, Google Cloud
/// Storage). Any number of processes may share one bucket and continue each other's
/// uploads.
#[derive(Clone)]
pub struct ObjectBlobStore {
    bucket: Arc<Bucket>,
    redirect_expiry: Option<Duration>,
    /// Whether completing a multipart upload checks each part's e-tag against the one
    /// named (S3 and its compatibles, GCS do; Azure does not check its blocks).
    completion_checks_parts: bool,
}

impl std::fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("writes", &self.bucket.writes.to_string())
            .field("part_size", &self.bucket.part_size)
            .field("redirect_expiry", &self.redirect_expiry)
            .finish()
    }
}

impl ObjectBlobStore {
    /// A store on `backend`. Nothing is sent until the store is used (see
    /// [`BlobStore::check`]).
    pub fn open(backend: &Backend, options: StoreOptions) -> Result<Self, OpenError> {
        if options.part_size < MIN_PART_SIZE {
            return Err(OpenError::PartSize(options.part_size));
        }
        let writes = client(backend, ClientOptions::new().with_timeout(REQUEST_TIMEOUT))?;
        let reads = client(backend, ClientOptions::new().with_timeout_disabled())?;
        Ok(ObjectBlobStore {
            bucket: Arc::new(Bucket {
                writes,
                reads,
                keys: Keys::new(options.prefix.as_deref())?,
                part_size: options.part_size,
                copy_limit: options.copy_limit,
                streamer: part_streamer(backend, REQUEST_TIMEOUT)?.map(Arc::new),
                states: StateCache::default(),
            }),
            redirect_expiry: options.redirect_expiry,
            completion_checks_parts: !matches!(backend, Backend::Azure(_)),
        })
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        let range = range.map(|r| GetRange::Bounded(r.start..r.end.saturating_add(1)));
        let path = self.bucket.keys.blob(digest);
        let (body, len) = self.bucket.open_read(&path, range).await?;
        Ok(BlobRead { body, len })
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match self
            .bucket
            .writes
            .head(&self.bucket.keys.blob(digest))
            .await
        {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        self.bucket
            .delete_all(vec![self.bucket.keys.blob(digest)])
            .await
    }

    async fn retire(
        &self,
        digest: &Digest,
        token: &str,
        moved: Moved<'_>,
    ) -> Result<(), BlobError> {
        crate::retire::retire(&self.bucket, digest, token, moved).await
    }

    async fn discard_retired(&self, digest: &Digest, token: &str) -> Result<(), BlobError> {
        crate::retire::discard(&self.bucket, digest, token).await
    }

    async fn restore_retired(&self, digest: &Digest, token: &str) -> Result<bool, BlobError> {
        crate::retire::restore(&self.bucket, digest, token).await
    }

    async fn list_retired(
        &self,
        after: Option<&RetiredBlob>,
        limit: usize,
    ) -> Result<Vec<RetiredBlob>, BlobError> {
        let under = self.bucket.keys.retired_dir();
        // A listed copy is the cursor whatever its token: a name that no sweep could
        // have given is still a place in the listing.
        let after = after.map(|a| self.bucket.keys.retired(&a.digest, &a.token));
        crate::retire::list(&self.bucket, &under, after.as_ref(), limit, None).await
    }

    async fn retired_copies(&self, digest: &Digest) -> Result<Vec<RetiredBlob>, BlobError> {
        let under = self.bucket.keys.retired_shard(digest);
        crate::retire::list(&self.bucket, &under, None, usize::MAX, Some(digest)).await
    }

    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        let up = self.bucket.keys.upload(id);
        self.bucket.put_state(&up, &UploadState::default()).await
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: ResumableHasher,
        body: ByteStream,
        length: BodyLength,
    ) -> Result<AppendOutcome, BlobError> {
        crate::append::append(&self.bucket, id, offset, hasher, body, length).await
    }

    fn read_chunk_bytes(&self) -> usize {
        READ_CHUNK_BOUND
    }

    /// Parts, chunks and state objects are stored when their PUT returns, and the state
    /// object of an offset records the hash state of exactly the bytes it lists. A part
    /// overwritten later by a writer that lost its claim (the application fences its
    /// bodies, but a write already sent may land) fails the completion where the
    /// backend checks the parts' e-tags; where it does not (Azure), the bytes are
    /// hashed again at completion.
    fn appends_are_durable(&self) -> bool {
        self.completion_checks_parts
    }

    async fn hash_upload(
        &self,
        id: &UploadId,
        len: u64,
        algorithm: Algorithm,
    ) -> Result<Digest, BlobError> {
        let up = self.bucket.keys.upload(id);
        let view = self.bucket.view(&up, len).await?;
        let mut hasher = ResumableHasher::new(algorithm);
        for chunk in readable(&self.bucket, &up, view, len).await? {
            let path = up.object(&chunk.name);
            let mut bytes = self
                .bucket
                .stream_range(&path, chunk.start, chunk.len)
                .await?;
            while let Some(piece) = bytes.next().await {
                hasher.update(&piece.map_err(BlobError::Io)?);
            }
        }
        Ok(hasher.finish())
    }

    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError> {
        crate::commit::commit(&self.bucket, id, len, digest).await
    }

    async fn publish_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError> {
        crate::commit::publish_upload(&self.bucket, id, len, digest).await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        self.bucket
            .remove_upload(&self.bucket.keys.upload(id))
            .await
    }

    async fn upload_exists(&self, id: &UploadId) -> Result<bool, BlobError> {
        self.bucket.has_objects(&self.bucket.keys.upload(id)).await
    }

    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError> {
        let keys = &self.bucket.keys;
        // Keys sort as digests do: algorithm, then the hex (its first two characters
        // name the directory between).
        let mut objects = match after {
            Some(after) => {
                (self.bucket.writes).list_with_offset(Some(&keys.blobs()), &keys.blob(after))
            }
            None => self.bucket.writes.list(Some(&keys.blobs())),
        };
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(meta) = objects.try_next().await.map_err(storage)? else {
                break;
            };
            let Some(digest) = keys.blob_of(&meta.location) else {
                continue;
            };
            let millis = u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
            found.push(StoredBlob {
                digest,
                size: meta.size,
                written: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
            });
        }
        Ok(found)
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError> {
        let keys = &self.bucket.keys;
        let mut latest: HashMap<UploadId, SystemTime> = HashMap::new();
        let mut objects = self.bucket.writes.list(Some(&keys.uploads()));
        while let Some(meta) = objects.try_next().await.map_err(storage)? {
            let Some(id) = keys.upload_of(&meta.location) else {
                continue;
            };
            let millis = u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
            let written = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
            let entry = latest.entry(id).or_insert(written);
            *entry = (*entry).max(written);
        }
        Ok(latest.into_iter().collect())
    }

    async fn check(&self) -> Result<(), BlobError> {
        let probe = self.bucket.keys.probe();
        self.bucket
            .put(&probe, PutPayload::from_static(b"ok"))
            .await?;
        let read = self.bucket.read_range(&probe, 0, 2).await;
        self.bucket.delete_all(vec![probe]).await?;
        read.map(drop)
    }

    async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>, BlobError> {
        let Some(expiry) = self.redirect_expiry else {
            return Ok(None);
        };
        let path = self.bucket.keys.blob(digest);
        let url = self
            .bucket
            .reads
            .signed_url(http::Method::GET, &path, expiry)
            .await
            .map_err(storage)?;
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
impl ObjectBlobStore {
    /// The store's bucket, for the tests of the modules that work on it.
    pub(crate) fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}
