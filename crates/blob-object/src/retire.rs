//! A sweep's retired copies (`retired/<alg>/<xx>/<hex>.<token>`): a blob is retired by a
//! copy to its retired key (on the server, or streamed through this process past what
//! one server-side copy moves), checked, and the delete of the original; it is restored
//! by a copy back that keeps a blob published since. A restored copy is kept: a node
//! stalled between the copy and the delete of its own retire may delete the blob after
//! the restore, and is repaired from it.

use std::time::{Duration, SystemTime};

use berth_blob::{BlobError, Committed, Moved, RetiredBlob, checked_token};
use berth_oci::Digest;
use futures_util::TryStreamExt;
use object_store::path::Path;

use crate::bucket::{Bucket, is_not_found, storage};
use crate::commit::copy_new;
use crate::streamed::stream_to;

/// Moves the blob's bytes to its retired key under `token`, telling `moved` of the bytes
/// streamed; an absent blob is no error. The original is deleted only once the copy is
/// there, as long as the blob.
pub(crate) async fn retire(
    bucket: &Bucket,
    digest: &Digest,
    token: &str,
    moved: Moved<'_>,
) -> Result<(), BlobError> {
    let (blob, to) = (bucket.keys.blob(digest), key(bucket, digest, token)?);
    match bucket.size(&blob).await? {
        Some(size) => move_aside(bucket, &blob, size, &to, moved).await,
        None => Ok(()),
    }
}

/// Copies the object at `from`, of `size` bytes, to `to`, then deletes it once the
/// copy is there with `size` bytes; a copy of another size is deleted instead, and
/// `from` kept ([`BlobError::CopyMismatch`]). An absent `from` is no error.
async fn move_aside(
    bucket: &Bucket,
    from: &Path,
    size: u64,
    to: &Path,
    moved: Moved<'_>,
) -> Result<(), BlobError> {
    if !copy(bucket, from, size, to, moved).await? {
        return Ok(());
    }
    match bucket.size(to).await? {
        Some(copied) if copied == size => bucket.delete_all(vec![from.clone()]).await,
        copied => {
            bucket.delete_all(vec![to.clone()]).await?;
            Err(BlobError::CopyMismatch {
                expected: size,
                copied: copied.unwrap_or(0),
            })
        }
    }
}

/// Copies the object at `from`, of `size` bytes, to `to`: on the server up to the copy
/// limit, streamed through this process past it. Returns false when `from` is gone.
async fn copy(
    bucket: &Bucket,
    from: &Path,
    size: u64,
    to: &Path,
    moved: Moved<'_>,
) -> Result<bool, BlobError> {
    if size <= bucket.copy_limit {
        return match bucket.writes.copy(from, to).await {
            Err(e) if is_not_found(&e) => Ok(false),
            copied => copied.map(|()| true).map_err(storage),
        };
    }
    stream_whole(bucket, from, to, moved).await
}

/// Streams the whole object at `from` into `to`; returns false when there is none.
async fn stream_whole(
    bucket: &Bucket,
    from: &Path,
    to: &Path,
    moved: Moved<'_>,
) -> Result<bool, BlobError> {
    let bytes = match bucket.open_read(from, None).await {
        Err(BlobError::NotFound) => return Ok(false),
        opened => opened?.0,
    };
    stream_to(bucket, to, futures_util::stream::iter([Ok(bytes)]), moved).await?;
    Ok(true)
}

/// Deletes the copy retired under `token`; an absent one is no error.
pub(crate) async fn discard(
    bucket: &Bucket,
    digest: &Digest,
    token: &str,
) -> Result<(), BlobError> {
    bucket.delete_all(vec![key(bucket, digest, token)?]).await
}

/// Copies the retired copy back unless the blob is present (the copy is the same bytes
/// as any blob published under the digest since), and keeps it; returns whether it went
/// back. An absent copy is no error. A copy past the copy limit is streamed back.
pub(crate) async fn restore(
    bucket: &Bucket,
    digest: &Digest,
    token: &str,
) -> Result<bool, BlobError> {
    let from = key(bucket, digest, token)?;
    let blob = bucket.keys.blob(digest);
    if bucket.size(&blob).await?.is_some() {
        return Ok(false);
    }
    let Some(size) = bucket.size(&from).await? else {
        return Ok(false);
    };
    if size > bucket.copy_limit {
        // A multipart upload cannot be made conditional: over a blob published since,
        // it writes the same bytes.
        return stream_whole(bucket, &from, &blob, &|_| {}).await;
    }
    match copy_new(bucket, &from, &blob).await {
        Err(BlobError::NotFound) => Ok(false),
        copied => Ok(copied? == Committed::Published),
    }
}

/// The retired copies below `under` after the key `after`, in key order (a digest's
/// text, then the token), up to `limit`, of `only` when given; keys that name no digest
/// and token are passed over.
pub(crate) async fn list(
    bucket: &Bucket,
    under: &Path,
    after: Option<&Path>,
    limit: usize,
    only: Option<&Digest>,
) -> Result<Vec<RetiredBlob>, BlobError> {
    let keys = &bucket.keys;
    let mut objects = match after {
        Some(after) => bucket.writes.list_with_offset(Some(under), after),
        None => bucket.writes.list(Some(under)),
    };
    let mut found = Vec::new();
    while found.len() < limit
        && let Some(meta) = objects.try_next().await.map_err(storage)?
    {
        let Some((copy_of, token)) = keys.retired_of(&meta.location) else {
            continue;
        };
        if only.is_some_and(|d| *d != copy_of) {
            continue;
        }
        let millis = u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
        found.push(RetiredBlob {
            digest: copy_of,
            token,
            size: meta.size,
            retired: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
        });
    }
    Ok(found)
}

/// The key of the copy of `digest` retired under `token`, a token checked first.
fn key(bucket: &Bucket, digest: &Digest, token: &str) -> Result<Path, BlobError> {
    Ok(bucket.keys.retired(digest, checked_token(token)?))
}

#[cfg(test)]
mod tests {
    use berth_testkit_s3::S3Server;
    use object_store::PutPayload;

    use super::*;
    use crate::{MIN_PART_SIZE, ObjectBlobStore, StoreOptions};

    /// A copy that comes out another size than the blob measured before it (its bytes
    /// changed on the way) is deleted, and the original kept: whether copied on the
    /// server or streamed past the copy limit.
    #[tokio::test]
    async fn a_copy_of_another_size_than_the_blob_keeps_the_original() {
        let Some(server) = S3Server::start() else {
            return;
        };
        let backend = crate::backend::test_backend(&server);
        let options = StoreOptions {
            part_size: MIN_PART_SIZE,
            copy_limit: 1 << 20,
            ..StoreOptions::default()
        };
        let store = ObjectBlobStore::open(&backend, options).unwrap();
        let bucket = store.bucket();
        for len in [1000u64, 3 << 20] {
            let (from, to) = (
                Path::from(format!("b/{len}")),
                Path::from(format!("r/{len}")),
            );
            let bytes = vec![7u8; len as usize];
            bucket.put(&from, PutPayload::from(bytes)).await.unwrap();
            let moved = move_aside(bucket, &from, len - 1, &to, &|_| {}).await;
            assert!(
                matches!(moved, Err(BlobError::CopyMismatch { expected, copied })
                    if expected == len - 1 && copied == len),
                "{moved:?}"
            );
            assert_eq!(bucket.size(&from).await.unwrap(), Some(len), "kept");
            assert_eq!(bucket.size(&to).await.unwrap(), None, "the copy is deleted");
        }
    }
}
