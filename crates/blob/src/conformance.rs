//! The behaviour every blob-store adapter must show, run by each adapter's tests.

use std::sync::Arc;

use berth_oci::{Algorithm, ByteRange, Digest, ResumableHasher, UploadId};
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::{BlobError, BlobStore, BodyLength, ByteStream, Committed};

fn body(parts: &[&'static [u8]]) -> ByteStream {
    Box::pin(stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p)))
            .collect::<Vec<_>>(),
    ))
}

async fn collect(store: &dyn BlobStore, d: &Digest, r: Option<ByteRange>) -> Vec<u8> {
    let read = store.read(d, r).await.unwrap();
    let mut out = Vec::new();
    let mut s = read.body;
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(out.len() as u64, read.len);
    out
}

/// Runs every conformance check against `store`.
pub async fn run(store: Arc<dyn BlobStore>) {
    upload_resume_commit_read(&*store).await;
    unacknowledged_bytes_are_discarded(&*store).await;
    limits_and_absence(&*store).await;
    an_existing_blob_is_never_replaced(&*store).await;
    a_published_upload_is_kept_for_publishing_again(&*store).await;
    short_bytes_are_never_hashed_or_published(&*store).await;
    committed_blobs_are_listed_in_digest_order(&*store).await;
    retired_copies_are_discarded_or_restored(&*store).await;
}

/// Retires, restores and discards a blob of `len` bytes (for an object store, one past
/// what a server-side copy moves, which is then streamed through the process), byte for
/// byte; returns the bytes the retire said it moved.
pub async fn large_blobs_are_retired_and_restored(store: &dyn BlobStore, len: u64) -> u64 {
    let id = UploadId::from_random([60; 16]);
    store.create_upload(&id).await.unwrap();
    let h = ResumableHasher::new(Algorithm::Sha256);
    let out = store
        .append_upload(&id, 0, h, generated(len), BodyLength::Declared(len))
        .await
        .unwrap();
    let digest = out.hasher.finish();
    store.commit_upload(&id, len, &digest).await.unwrap();

    let moved = std::sync::atomic::AtomicU64::new(0);
    let count = |n: u64| {
        moved.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    store.retire(&digest, "big1", &count).await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), None, "retired");
    assert_eq!(retired_of(store, &digest).await, vec![("big1".into(), len)]);
    assert!(store.restore_retired(&digest, "big1").await.unwrap());
    assert_eq!(hashed(store, &digest).await, (digest.clone(), len));
    assert!(!store.restore_retired(&digest, "big1").await.unwrap());
    store.discard_retired(&digest, "big1").await.unwrap();

    retire(store, &digest, "big2").await.unwrap();
    store.discard_retired(&digest, "big2").await.unwrap();
    assert!(retired_of(store, &digest).await.is_empty());
    assert!(!store.restore_retired(&digest, "big2").await.unwrap());
    assert_eq!(
        store.size(&digest).await.unwrap(),
        None,
        "discarded for good"
    );
    moved.into_inner()
}

/// `len` bytes of a fixed pseudo-random sequence, 64 KiB at a time.
fn generated(len: u64) -> ByteStream {
    let mut state = 0x2545_f491_u32;
    let mut left = len;
    Box::pin(stream::iter(std::iter::from_fn(move || {
        let n = left.min(64 << 10);
        left -= n;
        (n > 0).then(|| {
            let piece: Vec<u8> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            Ok(Bytes::from(piece))
        })
    })))
}

/// The digest and length of a blob's bytes as the store reads them.
async fn hashed(store: &dyn BlobStore, digest: &Digest) -> (Digest, u64) {
    let mut body = store.read(digest, None).await.unwrap().body;
    let (mut hasher, mut len) = (ResumableHasher::new(Algorithm::Sha256), 0);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (hasher.finish(), len)
}

/// The tokens under which `digest` has retired copies, with their sizes, as the store
/// lists them for that digest and among every copy, which must agree.
async fn retired_of(store: &dyn BlobStore, digest: &Digest) -> Vec<(String, u64)> {
    let tokens = |copies: Vec<crate::RetiredBlob>| {
        let mut found: Vec<_> = (copies.into_iter())
            .map(|r| (r.digest == *digest).then_some((r.token, r.size)))
            .collect();
        found.sort();
        found
    };
    let of_digest = tokens(store.retired_copies(digest).await.unwrap());
    let mut listed = tokens(every_retired(store, 1).await);
    listed.retain(Option::is_some);
    assert_eq!(
        of_digest, listed,
        "only copies of {digest}, and all of them"
    );
    of_digest.into_iter().flatten().collect()
}

/// Every retired copy, listed `page` at a time: in order of digest and token, each once,
/// the same whatever the page.
async fn every_retired(store: &dyn BlobStore, page: usize) -> Vec<crate::RetiredBlob> {
    let mut all: Vec<crate::RetiredBlob> = Vec::new();
    loop {
        let listed = store.list_retired(all.last(), page).await.unwrap();
        assert!(listed.len() <= page, "a page of {page}: {listed:?}");
        let ended = listed.len() < page;
        all.extend(listed);
        if ended {
            break;
        }
    }
    let key = |c: &crate::RetiredBlob| (c.digest.to_string(), c.token.clone());
    assert!(
        all.windows(2).all(|w| key(&w[0]) < key(&w[1])),
        "in order, each once: {all:?}"
    );
    assert_eq!(all, store.list_retired(None, 10_000).await.unwrap());
    all
}

/// Retires `digest`'s bytes under `token`, with no one to tell of their progress.
async fn retire(store: &dyn BlobStore, digest: &Digest, token: &str) -> Result<(), BlobError> {
    store.retire(digest, token, &|_| {}).await
}

async fn retired_copies_are_discarded_or_restored(store: &dyn BlobStore) {
    let started = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    let missing = Digest::compute(Algorithm::Sha256, b"never published");
    retire(store, &missing, "a1").await.unwrap();
    assert!(
        retired_of(store, &missing).await.is_empty(),
        "nothing to retire"
    );
    let bad = retire(store, &missing, "../a1").await;
    assert!(matches!(bad, Err(BlobError::InvalidToken(_))));

    // Retired, the blob is absent and its copy listed, with the time of the retire.
    let (id, digest) = staged(store, 40, b"retired bytes").await;
    store.commit_upload(&id, 13, &digest).await.unwrap();
    retire(store, &digest, "a1").await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), None);
    assert!(matches!(
        store.read(&digest, None).await,
        Err(BlobError::NotFound)
    ));
    let listed = every_retired(store, 2).await;
    let copy = listed.iter().find(|r| r.digest == digest).unwrap();
    assert_eq!((copy.token.as_str(), copy.size), ("a1", 13));
    assert!(copy.retired >= started, "{:?}", copy.retired);
    let blobs = store.list_blobs(None, 1000).await.unwrap();
    assert!(!blobs.iter().any(|b| b.digest == digest), "not a blob");

    // Restored where the blob is absent: the bytes are back, under their digest, and
    // the copy is kept.
    assert!(store.restore_retired(&digest, "a1").await.unwrap());
    assert_eq!(collect(store, &digest, None).await, b"retired bytes");
    assert_eq!(retired_of(store, &digest).await, vec![("a1".into(), 13)]);
    assert!(!store.restore_retired(&digest, "a1").await.unwrap());
    // The blob deleted after the restore (a late retire's delete): the copy brings it
    // back again.
    store.delete(&digest).await.unwrap();
    assert!(store.restore_retired(&digest, "a1").await.unwrap());
    assert_eq!(collect(store, &digest, None).await, b"retired bytes");
    store.discard_retired(&digest, "a1").await.unwrap();

    // Restored where the digest was published again meanwhile: that blob is kept.
    retire(store, &digest, "b2").await.unwrap();
    let (id, _) = staged(store, 41, b"retired bytes").await;
    let again = store.commit_upload(&id, 13, &digest).await.unwrap();
    assert_eq!(again, Committed::Published);
    assert!(!store.restore_retired(&digest, "b2").await.unwrap());
    assert_eq!(collect(store, &digest, None).await, b"retired bytes");
    assert_eq!(retired_of(store, &digest).await, vec![("b2".into(), 13)]);
    store.discard_retired(&digest, "b2").await.unwrap();

    // Discarded, the bytes are gone for good.
    retire(store, &digest, "c3").await.unwrap();
    assert_eq!(retired_of(store, &digest).await, vec![("c3".into(), 13)]);
    store.discard_retired(&digest, "c3").await.unwrap();
    store.discard_retired(&digest, "c3").await.unwrap();
    assert!(retired_of(store, &digest).await.is_empty());
    assert_eq!(store.size(&digest).await.unwrap(), None);
    assert!(!store.restore_retired(&digest, "c3").await.unwrap());
    assert_eq!(store.size(&digest).await.unwrap(), None);

    // Many copies, two of one digest and one of a sha512 blob, are listed in order a
    // page at a time, whatever the page.
    let mut retired = Vec::new();
    for (seed, data) in (50..).zip([b"paged a", b"paged b", b"paged c"]) {
        let (id, digest) = staged(store, seed, data).await;
        store.commit_upload(&id, 7, &digest).await.unwrap();
        retire(store, &digest, "p1").await.unwrap();
        retired.push(digest);
    }
    assert!(store.restore_retired(&retired[1], "p1").await.unwrap());
    retire(store, &retired[1], "p2").await.unwrap();
    let (id, _) = staged(store, 53, b"paged long").await;
    let long = Digest::compute(Algorithm::Sha512, b"paged long");
    store.commit_upload(&id, 10, &long).await.unwrap();
    retire(store, &long, "p1").await.unwrap();
    let whole = every_retired(store, 1).await;
    assert_eq!(whole.len(), 5, "{whole:?}");
    assert_eq!(whole.last().map(|c| &c.digest), Some(&long));
    for page in [2, 3, 4, 5, 6] {
        assert_eq!(every_retired(store, page).await, whole);
    }
    for copy in whole {
        store
            .discard_retired(&copy.digest, &copy.token)
            .await
            .unwrap();
    }
    assert!(every_retired(store, 2).await.is_empty());
}

async fn committed_blobs_are_listed_in_digest_order(store: &dyn BlobStore) {
    let started = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    let contents: [&'static [u8]; 5] = [b"listed a", b"listed b", b"listed c", b"listed d", b"e"];
    let mut digests = Vec::new();
    for (seed, data) in (20..).zip(contents) {
        let (id, digest) = staged(store, seed, data).await;
        store
            .commit_upload(&id, data.len() as u64, &digest)
            .await
            .unwrap();
        digests.push((digest, data.len() as u64));
    }
    // A sha512 blob comes after every sha256 one.
    let (id, _) = staged(store, 30, b"listed long").await;
    let long = Digest::compute(Algorithm::Sha512, b"listed long");
    store.commit_upload(&id, 11, &long).await.unwrap();
    digests.push((long, 11));
    digests.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));

    let mut listed = Vec::new();
    let mut after: Option<Digest> = None;
    loop {
        let page = store.list_blobs(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        // Blobs other checks left are listed too.
        for blob in page {
            if digests.iter().any(|(d, _)| d == &blob.digest) {
                assert!(blob.written >= started, "{:?}", blob.written);
                listed.push((blob.digest, blob.size));
            }
        }
    }
    assert_eq!(listed, digests);
    for (digest, _) in &digests {
        store.delete(digest).await.unwrap();
    }
    let left = store.list_blobs(None, 1000).await.unwrap();
    assert!(
        !left
            .iter()
            .any(|b| digests.iter().any(|(d, _)| d == &b.digest))
    );
}

/// Writes `data` into a new upload and returns its id and digest.
async fn staged(store: &dyn BlobStore, seed: u8, data: &'static [u8]) -> (UploadId, Digest) {
    let id = UploadId::from_random([seed; 16]);
    store.create_upload(&id).await.unwrap();
    let h = ResumableHasher::new(Algorithm::Sha256);
    let out = store
        .append_upload(&id, 0, h, body(&[data]), BodyLength::AtMost(1 << 20))
        .await
        .unwrap();
    (id, out.hasher.finish())
}

/// An upload published and kept ([`BlobStore::publish_upload`]): the blob is readable and
/// the upload still there; a blob already there is kept, as by a commit, and so is the
/// upload; the kept upload publishes the blob again once it went (a sweep took it).
async fn a_published_upload_is_kept_for_publishing_again(store: &dyn BlobStore) {
    let (id, digest) = staged(store, 80, b"published, kept").await;
    let published = store.publish_upload(&id, 15, &digest).await.unwrap();
    assert_eq!(published, Committed::Published);
    assert_eq!(collect(store, &digest, None).await, b"published, kept");
    assert!(
        store.upload_exists(&id).await.unwrap(),
        "the upload is kept"
    );

    let (other, _) = staged(store, 81, b"poisoned bytes!").await;
    let again = store.publish_upload(&other, 15, &digest).await.unwrap();
    assert_eq!(again, Committed::AlreadyPresent);
    assert_eq!(collect(store, &digest, None).await, b"published, kept");
    assert!(store.upload_exists(&other).await.unwrap(), "kept too");
    store.delete_upload(&other).await.unwrap();

    store.delete(&digest).await.unwrap();
    let committed = store.commit_upload(&id, 15, &digest).await.unwrap();
    assert_eq!(committed, Committed::Published);
    assert_eq!(collect(store, &digest, None).await, b"published, kept");
    assert!(
        !store.upload_exists(&id).await.unwrap(),
        "consumed by the commit"
    );
    store.delete(&digest).await.unwrap();
}

async fn an_existing_blob_is_never_replaced(store: &dyn BlobStore) {
    let (first, digest) = staged(store, 4, b"original bytes").await;
    let committed = store.commit_upload(&first, 14, &digest).await;
    assert_eq!(committed.unwrap(), Committed::Published);
    // A second upload claims the same digest but holds other bytes of the same length.
    let (second, _) = staged(store, 5, b"poisoned bytes").await;
    let committed = store.commit_upload(&second, 14, &digest).await;
    assert_eq!(committed.unwrap(), Committed::AlreadyPresent);
    assert_eq!(collect(store, &digest, None).await, b"original bytes");
    assert!(store.list_uploads().await.unwrap().is_empty());
    store.delete(&digest).await.unwrap();
}

async fn short_bytes_are_never_hashed_or_published(store: &dyn BlobStore) {
    let (id, digest) = staged(store, 6, b"twelve bytes").await;
    let short = store.hash_upload(&id, 20, Algorithm::Sha256).await;
    assert!(
        matches!(short, Err(BlobError::UploadTruncated)),
        "never hashed as if padded"
    );
    let short = store.commit_upload(&id, 20, &digest).await;
    assert!(
        matches!(short, Err(BlobError::UploadTruncated)),
        "never padded"
    );
    // The bytes at rest hash with either algorithm, and only the first `len` count.
    let hashed = store.hash_upload(&id, 12, Algorithm::Sha256).await.unwrap();
    assert_eq!(hashed, digest);
    let prefix = store.hash_upload(&id, 6, Algorithm::Sha256).await.unwrap();
    assert_eq!(prefix, Digest::compute(Algorithm::Sha256, b"twelve"));
    let sha512 = Digest::compute(Algorithm::Sha512, b"twelve bytes");
    let hashed = store.hash_upload(&id, 12, Algorithm::Sha512).await.unwrap();
    assert_eq!(hashed, sha512);
    let committed = store.commit_upload(&id, 12, &sha512).await;
    assert_eq!(committed.unwrap(), Committed::Published);
    assert_eq!(collect(store, &sha512, None).await, b"twelve bytes");
    let gone = store.hash_upload(&id, 12, Algorithm::Sha512).await;
    assert!(matches!(gone, Err(BlobError::NotFound)), "published");
    store.delete(&sha512).await.unwrap();
}

async fn upload_resume_commit_read(store: &dyn BlobStore) {
    let id = UploadId::from_random([1; 16]);
    assert!(
        !store.upload_exists(&id).await.unwrap(),
        "before its creation"
    );
    store.create_upload(&id).await.unwrap();
    assert!(store.upload_exists(&id).await.unwrap(), "created");
    let h = ResumableHasher::new(Algorithm::Sha256);
    let first = store
        .append_upload(
            &id,
            0,
            h,
            body(&[b"hello ", b"wor"]),
            BodyLength::AtMost(100),
        )
        .await
        .unwrap();
    assert_eq!(first.written, 9);
    // Resume from a saved state, as another node or a restarted process would.
    let saved = ResumableHasher::restore(Algorithm::Sha256, &first.hasher.save()).unwrap();
    let second = store
        .append_upload(&id, 9, saved, body(&[b"ld"]), BodyLength::Declared(2))
        .await
        .unwrap();
    let digest = second.hasher.finish();
    assert_eq!(digest, Digest::compute(Algorithm::Sha256, b"hello world"));
    assert_eq!(
        store.size(&digest).await.unwrap(),
        None,
        "not visible before commit"
    );
    assert!(store.upload_exists(&id).await.unwrap(), "with bytes");
    store.commit_upload(&id, 11, &digest).await.unwrap();
    assert!(!store.upload_exists(&id).await.unwrap(), "published");
    assert_eq!(store.size(&digest).await.unwrap(), Some(11));
    assert_eq!(collect(store, &digest, None).await, b"hello world");
    let r = ByteRange { start: 6, end: 10 };
    assert_eq!(collect(store, &digest, Some(r)).await, b"world");
    assert!(
        store
            .list_uploads()
            .await
            .unwrap()
            .iter()
            .all(|(u, _)| *u != id)
    );
    store.delete(&digest).await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), None);
}

async fn unacknowledged_bytes_are_discarded(store: &dyn BlobStore) {
    let id = UploadId::from_random([2; 16]);
    store.create_upload(&id).await.unwrap();
    let h = ResumableHasher::new(Algorithm::Sha256);
    store
        .append_upload(&id, 0, h, body(&[b"abcXYZ"]), BodyLength::AtMost(100))
        .await
        .unwrap();
    // Only 3 bytes were acknowledged; the append from offset 3 replaces the rest.
    let mut h = ResumableHasher::new(Algorithm::Sha256);
    h.update(b"abc");
    let out = store
        .append_upload(&id, 3, h, body(&[b"def"]), BodyLength::AtMost(100))
        .await
        .unwrap();
    let digest = out.hasher.finish();
    store.commit_upload(&id, 6, &digest).await.unwrap();
    assert_eq!(collect(store, &digest, None).await, b"abcdef");
    assert!(store.list_uploads().await.unwrap().is_empty());
}

async fn limits_and_absence(store: &dyn BlobStore) {
    let id = UploadId::from_random([3; 16]);
    store.create_upload(&id).await.unwrap();
    let h = ResumableHasher::new(Algorithm::Sha256);
    let err = store
        .append_upload(&id, 0, h, body(&[b"0123456789"]), BodyLength::AtMost(5))
        .await;
    assert!(matches!(err, Err(BlobError::TooLarge)));
    // A body longer than it declared is refused alike.
    let h = ResumableHasher::new(Algorithm::Sha256);
    let err = store
        .append_upload(&id, 0, h, body(&[b"0123456789"]), BodyLength::Declared(5))
        .await;
    assert!(matches!(err, Err(BlobError::TooLarge)));
    assert_eq!(store.list_uploads().await.unwrap().len(), 1);
    store.delete_upload(&id).await.unwrap();
    assert!(!store.upload_exists(&id).await.unwrap(), "deleted");
    store.delete_upload(&id).await.unwrap();
    let missing = Digest::compute(Algorithm::Sha256, b"missing");
    assert!(matches!(
        store.read(&missing, None).await,
        Err(BlobError::NotFound)
    ));
    let h = ResumableHasher::new(Algorithm::Sha256);
    let gone = store
        .append_upload(&id, 0, h, body(&[b"x"]), BodyLength::AtMost(5))
        .await;
    assert!(matches!(gone, Err(BlobError::NotFound)));
    // An empty body touches nothing, so it succeeds even where no upload is.
    let h = ResumableHasher::new(Algorithm::Sha256);
    let empty = store
        .append_upload(&id, 0, h, body(&[]), BodyLength::AtMost(5))
        .await
        .unwrap();
    assert_eq!(empty.written, 0);
    store.check().await.unwrap();
}
