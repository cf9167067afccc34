//! Completions refused — by their project's quota, or because the bytes do not hash to
//! the digest — change nothing: not the session's blob, nor a blob of the same digest
//! that garbage collection has marked for deletion (reviving it is for a completion that
//! brings its bytes).

use std::sync::Arc;

use berth_app::{Registry, RegistryConfig, RegistryError, SystemClock, UploadBody};
use berth_blob::FsBlobStore;
use berth_meta::{AuditEntry, BlobLinkStore, CollectionStore, QuotaStore};
use berth_meta_sqlite::SqliteMetaStore;
use berth_oci::{Algorithm, Digest, RepositoryName};
use bytes::Bytes;

/// The blob both projects hold: over the limit of the small one.
const LAYER: &[u8] = b"twenty bytes, layer!";

fn whole(bytes: &'static [u8]) -> UploadBody {
    let stream = futures_util::stream::once(async move { Ok(Bytes::from_static(bytes)) });
    UploadBody {
        stream: Box::pin(stream),
        content_length: Some(bytes.len() as u64),
        content_range: None,
        client: None,
    }
}

fn audit() -> AuditEntry {
    AuditEntry {
        project_id: None,
        username: "admin".into(),
        operation: "update".into(),
        resource_type: "quota".into(),
        resource: "small".into(),
        success: true,
        client_ip: "127.0.0.1".into(),
        op_time: 1,
    }
}

/// A registry on SQLite and the filesystem in `dir` (one process's; a second call on
/// the same directory is the same store after a restart).
fn registry_in(dir: &tempfile::TempDir) -> (Arc<SqliteMetaStore>, Arc<Registry>) {
    let meta = Arc::new(SqliteMetaStore::open(dir.path().join("berth.db")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(dir.path().join("storage")).unwrap());
    let registry = Arc::new(Registry::new(
        meta.clone(),
        blobs,
        Arc::new(SystemClock),
        RegistryConfig::default(),
    ));
    (meta, registry)
}

/// A registry on SQLite and the filesystem in `dir`, holding `LAYER`'s blob marked for
/// deletion by a collection cut before its sweep (unlinked from its last repository).
async fn registry_with_marked_layer(
    dir: &tempfile::TempDir,
) -> (Arc<SqliteMetaStore>, Arc<Registry>, Digest) {
    marked_layer(dir, Algorithm::Sha256).await
}

/// [`registry_with_marked_layer`], the layer's digest computed with `algorithm`.
async fn marked_layer(
    dir: &tempfile::TempDir,
    algorithm: Algorithm,
) -> (Arc<SqliteMetaStore>, Arc<Registry>, Digest) {
    let (meta, registry) = registry_in(dir);
    let big = RepositoryName::parse("big/app").unwrap();
    let layer = Digest::compute(algorithm, LAYER);
    meta.link_blob(&big, &layer, LAYER.len() as u64, 1)
        .await
        .unwrap();
    meta.unlink_blob(&big, &layer, None).await.unwrap();
    let marked = meta.mark_unlinked_blobs("", 10, 2).await.unwrap();
    assert_eq!(marked.len(), 1, "{marked:?}");
    (meta, registry, layer)
}

/// Fails unless `layer`'s blob is still marked for deletion and not linked to `repository`.
async fn assert_still_marked(meta: &SqliteMetaStore, repository: &RepositoryName, layer: &Digest) {
    assert_eq!(
        meta.live_blobs(std::slice::from_ref(layer)).await.unwrap(),
        [],
        "the marked blob stays marked"
    );
    assert_eq!(meta.linked_blob(repository, layer).await.unwrap(), None);
}

/// A completion refused by its project's quota leaves a blob of its digest that a
/// collection marked for deletion marked.
#[tokio::test]
async fn a_completion_over_its_quota_revives_no_marked_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, registry, layer) = registry_with_marked_layer(&dir).await;
    let small = RepositoryName::parse("small/app").unwrap();
    // A project whose limit the blob does not fit under.
    let filler = Digest::compute(Algorithm::Sha256, b"filler");
    meta.link_blob(&small, &filler, 6, 1).await.unwrap();
    let quota = meta.blob_quota(&small, &layer).await.unwrap().unwrap();
    let project = quota.quota.project_id;
    assert!(
        meta.set_quota_limit(project, 10, 1, &audit())
            .await
            .unwrap()
    );

    for body in [whole(LAYER), whole(b"")] {
        let session = registry
            .start_upload(&small, Algorithm::Sha256)
            .await
            .unwrap();
        if body.content_length == Some(0) {
            // The bytes came by PATCH; the PUT carries none.
            registry
                .append_chunk(&small, &session.url, whole(LAYER))
                .await
                .unwrap();
        }
        let refused = registry
            .complete_upload(&small, &session.url, Some(layer.as_str()), body)
            .await;
        assert!(
            matches!(refused, Err(RegistryError::QuotaExceeded(_))),
            "{refused:?}"
        );
        assert_still_marked(&meta, &small, &layer).await;
    }
}

/// Completes sha256 sessions of other bytes in another repository as `layer`, the
/// bytes sent with the `PUT` and then with a `PATCH` before an empty `PUT`: each is
/// refused as `DIGEST_INVALID`, and `layer` stays marked for deletion.
async fn refuse_other_bytes_as(meta: &SqliteMetaStore, registry: &Arc<Registry>, layer: &Digest) {
    let other = RepositoryName::parse("other/app").unwrap();
    for body in [whole(b"not the layer's bytes"), whole(b"")] {
        let session = registry
            .start_upload(&other, Algorithm::Sha256)
            .await
            .unwrap();
        if body.content_length == Some(0) {
            registry
                .append_chunk(&other, &session.url, whole(b"not the layer's bytes"))
                .await
                .unwrap();
        }
        let refused = registry
            .complete_upload(&other, &session.url, Some(layer.as_str()), body)
            .await;
        assert!(
            matches!(refused, Err(RegistryError::DigestInvalid(_))),
            "{refused:?}"
        );
        assert_still_marked(meta, &other, layer).await;
    }
}

/// A completion whose bytes do not hash to its digest leaves a blob of that digest that
/// a collection marked for deletion marked: a client that names a digest without its
/// bytes keeps no blob from being collected.
#[tokio::test]
async fn a_completion_with_other_bytes_revives_no_marked_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, registry, layer) = registry_with_marked_layer(&dir).await;
    refuse_other_bytes_as(&meta, &registry, &layer).await;
}

/// A completion whose bytes are hashed again at rest — with the algorithm the digest
/// names, other than the session's — and do not hash to its digest leaves a blob of that
/// digest marked for deletion marked.
#[tokio::test]
async fn a_completion_hashed_at_rest_to_other_bytes_revives_no_marked_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, registry, layer) = marked_layer(&dir, Algorithm::Sha512).await;
    refuse_other_bytes_as(&meta, &registry, &layer).await;
}

/// A completion after a restart, whose bytes at rest were altered since they were
/// acknowledged (the hash state speaks for bytes the disk no longer holds), is refused
/// as lost, and leaves a blob of its digest marked for deletion marked.
#[tokio::test]
async fn a_completion_of_bytes_altered_at_rest_revives_no_marked_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, registry, layer) = registry_with_marked_layer(&dir).await;
    let other = RepositoryName::parse("other/app").unwrap();
    let session = registry
        .start_upload(&other, Algorithm::Sha256)
        .await
        .unwrap();
    registry
        .append_chunk(&other, &session.url, whole(LAYER))
        .await
        .unwrap();
    let at_rest = dir
        .path()
        .join("storage/uploads")
        .join(session.url.id.as_str());
    std::fs::write(&at_rest, b"twenty other bytes!!").unwrap();
    drop(registry);
    let (_, restarted) = registry_in(&dir);
    let refused = restarted
        .complete_upload(&other, &session.url, Some(layer.as_str()), whole(b""))
        .await;
    assert!(
        matches!(refused, Err(RegistryError::UploadLost)),
        "{refused:?}"
    );
    assert_still_marked(&meta, &other, &layer).await;
}
