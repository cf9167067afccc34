//! A sweep's retired copies (`retired/<alg>/<xx>/<hex>.<token>`): a blob is retired by a
//! copy to its retired key (on the server, or streamed through the node past what one
//! server-side copy may move) and the delete of the original, and restored by a copy back
//! that keeps a blob published since. A restored copy is kept: a node
//! stalled between the copy and the delete of its own retire may delete the blob
//! after the restore, and is repaired from it.

use std::time::{Duration, SystemTime};

use berth_blob::{BlobError, Committed, RetiredBlob, checked_token};
use berth_oci::Digest;
use futures_util::TryStreamExt;

use crate::bucket::{Bucket, is_not_found, storage};
use crate::commit::{copy_new, stream_copy};

/// Moves the blob's bytes to its retired key under `token`; an absent blob is no error.
pub(crate) async fn retire(bucket: &Bucket, digest: &Digest, token: &str) -> Result<(), BlobError> {
    let (blob, to) = (bucket.keys.blob(digest), key(bucket, digest, token)?);
    let Some(size) = bucket.size(&blob).await? else {
        return Ok(());
    };
    let copied = match size > bucket.copy_limit {
        true => stream_copy(bucket, &[(blob.clone(), 0, size)], &to)
            .await
            .map(drop),
        false => bucket
            .writes
            .copy(&blob, &to)
            .await
            .map_err(|e| match is_not_found(&e) {
                true => BlobError::NotFound,
                false => storage(e),
            }),
    };
    match copied {
        Err(BlobError::NotFound) => return Ok(()),
        copied => copied?,
    }
    bucket.delete_all(vec![blob]).await
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
/// back. An absent copy is no error.
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
    let copied = match bucket.size(&from).await? {
        None => return Ok(false),
        // Past one server-side copy there is no copy-if-absent: a blob published since
        // the look above is replaced by the same bytes.
        Some(size) if size > bucket.copy_limit => {
            stream_copy(bucket, &[(from, 0, size)], &blob).await
        }
        Some(_) => copy_new(bucket, &from, &blob).await,
    };
    match copied {
        Err(BlobError::NotFound) => Ok(false),
        copied => Ok(copied? == Committed::Published),
    }
}

/// The retired copies below `under` after the key `after`, in key order (a digest's
/// text, then the token), up to `limit`, of `only` when given; keys that name no digest
/// and token are passed over.
pub(crate) async fn list(
    bucket: &Bucket,
    under: &object_store::path::Path,
    after: Option<&object_store::path::Path>,
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
fn key(
    bucket: &Bucket,
    digest: &Digest,
    token: &str,
) -> Result<object_store::path::Path, BlobError> {
    Ok(bucket.keys.retired(digest, checked_token(token)?))
}
