//! Completions a project's quota refuses change nothing: not the session's blob, nor a
//! blob of the same digest that garbage collection has marked for deletion.

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

/// A completion refused by its project's quota leaves a blob of its digest that a
/// collection marked for deletion marked: reviving it is for a completion that brings
/// the bytes, and a refused one brings none.
#[tokio::test]
async fn a_completion_over_its_quota_revives_no_marked_blob() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteMetaStore::open(dir.path().join("berth.db")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(dir.path().join("storage")).unwrap());
    let registry = Arc::new(Registry::new(
        meta.clone(),
        blobs,
        Arc::new(SystemClock),
        RegistryConfig::default(),
    ));
    let (big, small) = (
        RepositoryName::parse("big/app").unwrap(),
        RepositoryName::parse("small/app").unwrap(),
    );
    let layer = Digest::compute(Algorithm::Sha256, LAYER);
    // Unlinked in its last repository, the blob is marked by a collection cut before
    // its sweep.
    meta.link_blob(&big, &layer, LAYER.len() as u64, 1)
        .await
        .unwrap();
    meta.unlink_blob(&big, &layer, None).await.unwrap();
    let marked = meta.mark_unlinked_blobs("", 10, 2).await.unwrap();
    assert_eq!(marked.len(), 1, "{marked:?}");
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
                .append_chunk(&small, &session.id, whole(LAYER))
                .await
                .unwrap();
        }
        let refused = registry
            .complete_upload(&small, &session.id, Some(layer.as_str()), body)
            .await;
        assert!(
            matches!(refused, Err(RegistryError::QuotaExceeded(_))),
            "{refused:?}"
        );
        assert_eq!(
            meta.live_blobs(std::slice::from_ref(&layer)).await.unwrap(),
            Vec::<Digest>::new(),
            "the marked blob stays marked"
        );
        assert_eq!(meta.linked_blob(&small, &layer).await.unwrap(), None);
    }
}
