//! A sweep's retired copies (`retired/<alg>/<xx>/<hex>.<token>`): a blob is retired by a
//! server-side copy to its retired key and the delete of the original, and restored by
//! a copy back that keeps a blob published since. A restored copy is kept: a node
//! stalled between the copy and the delete of its own retire may delete the blob
//! after the restore, and is repaired from it.

use std::time::{Duration, SystemTime};

use berth_blob::{BlobError, Committed, RetiredBlob, checked_token};
use berth_oci::Digest;
use futures_util::TryStreamExt;

use crate::bucket::{Bucket, is_not_found, storage};
use crate::commit::{COPY_LIMIT, copy_new};

/// Moves the blob's bytes to its retired key under `token`; an absent blob is no error.
/// A blob larger than one server-side copy may be (5 GiB) is refused
/// ([`BlobError::TooLargeToRetire`]) and kept: deleted in place, with no copy to put
/// back, it could take with it the bytes of a push that revived it meanwhile.
pub(crate) async fn retire(bucket: &Bucket, digest: &Digest, token: &str) -> Result<(), BlobError> {
    let (blob, to) = (bucket.keys.blob(digest), key(bucket, digest, token)?);
    match bucket.size(&blob).await? {
        None => return Ok(()),
        Some(size) if size > COPY_LIMIT => return Err(BlobError::TooLargeToRetire(size)),
        Some(_) => {}
    }
    match bucket.writes.copy(&blob, &to).await {
        Err(e) if is_not_found(&e) => return Ok(()),
        copied => copied.map_err(storage)?,
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
