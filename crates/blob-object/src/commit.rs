//! Publishing an upload as a blob, in one step readers cannot see halfway: a server-side
//! copy, a single put, or (past what one copy may move) a multipart upload completed by
//! its last request.

use berth_blob::{BlobError, Committed};
use berth_oci::{Digest, UploadId};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{PutMode, PutPayload};

use crate::bucket::{Bucket, is_not_found, storage};
use crate::finalize::readable;
use crate::keys::UploadKeys;
use crate::state::Chunk;
use crate::streamed::stream_to;

/// Publishes the upload's first `len` bytes as `digest` (see
/// [`berth_blob::BlobStore::commit_upload`]), then removes the upload.
pub(crate) async fn commit(
    bucket: &Bucket,
    id: &UploadId,
    len: u64,
    digest: &Digest,
) -> Result<Committed, BlobError> {
    let committed = publish_upload(bucket, id, len, digest).await?;
    discard(bucket, &bucket.keys.upload(id)).await;
    Ok(committed)
}

/// Publishes the upload's first `len` bytes as `digest`, keeping the upload (see
/// [`berth_blob::BlobStore::publish_upload`]).
pub(crate) async fn publish_upload(
    bucket: &Bucket,
    id: &UploadId,
    len: u64,
    digest: &Digest,
) -> Result<Committed, BlobError> {
    let up = bucket.keys.upload(id);
    let blob = bucket.keys.blob(digest);
    let view = bucket.view(&up, len).await?;
    if bucket.size(&blob).await?.is_some() {
        return Ok(Committed::AlreadyPresent);
    }
    // The acknowledged state knows the hash of its bytes: a digest they do not have means
    // they are not the bytes the caller hashed.
    let held = view
        .exact
        .then_some(view.state.hash.as_ref())
        .flatten()
        .and_then(|h| h.digest(digest.algorithm()));
    if held.is_some_and(|held| held != *digest) {
        return Err(BlobError::UploadTruncated);
    }
    let chunks = readable(bucket, &up, view, len).await?;
    publish(bucket, &up, &chunks, &blob).await
}

/// Removes what is left of a committed upload. The blob is published by now, so a
/// failure is only logged: the purge finds the leftovers.
async fn discard(bucket: &Bucket, up: &UploadKeys) {
    if let Err(e) = bucket.remove_upload(up).await {
        tracing::warn!(upload = %up.dir(), error = %e, "could not remove a committed upload");
    }
}

/// Makes `chunks`, in order, the object at `blob`, unless one is there already.
async fn publish(
    bucket: &Bucket,
    up: &UploadKeys,
    chunks: &[Chunk],
    blob: &Path,
) -> Result<Committed, BlobError> {
    let len: u64 = chunks.iter().map(|c| c.len).sum();
    match chunks {
        [only] if only.is_whole_object() && only.size <= bucket.copy_limit => {
            copy_new(bucket, &up.object(&only.name), blob).await
        }
        _ if len <= bucket.part_size as u64 => {
            let mut bytes: Vec<Bytes> = Vec::new();
            for chunk in chunks {
                let path = up.object(&chunk.name);
                bytes.extend(bucket.read_range(&path, chunk.start, chunk.len).await?);
            }
            put_new(bucket, blob, PutPayload::from_iter(bytes)).await
        }
        _ => stream_copy(bucket, up, chunks, blob).await,
    }
}

/// Copies `from` to `blob` on the server, with the backend's copy-if-absent where it has
/// one. Without it the blob was looked for just before: two commits of one digest may
/// then both copy, and the second replaces the first with the same bytes (both callers
/// vouched for them). A `from` that is gone is `NotFound`.
pub(crate) async fn copy_new(
    bucket: &Bucket,
    from: &Path,
    blob: &Path,
) -> Result<Committed, BlobError> {
    let copied = match bucket.writes.copy_if_not_exists(from, blob).await {
        Ok(()) => Ok(Committed::Published),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(Committed::AlreadyPresent),
        Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {
            (bucket.writes.copy(from, blob).await).map(|()| Committed::Published)
        }
        Err(e) => Err(e),
    };
    copied.map_err(|e| match is_not_found(&e) {
        true => BlobError::NotFound,
        false => storage(e),
    })
}

/// Writes `payload` at `blob` with a put that fails when the object exists (where the
/// backend knows conditional puts), as [`copy_new`] does.
async fn put_new(
    bucket: &Bucket,
    blob: &Path,
    payload: PutPayload,
) -> Result<Committed, BlobError> {
    match bucket
        .writes
        .put_opts(blob, payload.clone(), PutMode::Create.into())
        .await
    {
        Ok(_) => Ok(Committed::Published),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(Committed::AlreadyPresent),
        Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {
            bucket.put(blob, payload).await?;
            Ok(Committed::Published)
        }
        Err(e) => Err(storage(e)),
    }
}

/// Streams `chunks` through this process into a multipart upload at `blob`, which only
/// its completing request makes visible.
async fn stream_copy(
    bucket: &Bucket,
    up: &UploadKeys,
    chunks: &[Chunk],
    blob: &Path,
) -> Result<Committed, BlobError> {
    let sources = futures_util::stream::iter(chunks).then(|chunk| async move {
        let path = up.object(&chunk.name);
        bucket.stream_range(&path, chunk.start, chunk.len).await
    });
    stream_to(bucket, blob, sources, &|_| {}).await?;
    Ok(Committed::Published)
}
