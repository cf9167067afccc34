use std::sync::Arc;

use super::SqliteMetaStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    berth_meta::conformance::run(Arc::new(store)).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_skips_applied_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let repo = berth_oci::RepositoryName::parse("p/r").unwrap();
    let d = berth_oci::Digest::compute(berth_oci::Algorithm::Sha256, b"x");
    {
        let store = SqliteMetaStore::open(&path).unwrap();
        use berth_meta::BlobLinkStore;
        store.link_blob(&repo, &d, 1, 1).await.unwrap();
    }
    let store = SqliteMetaStore::open(&path).unwrap();
    use berth_meta::BlobLinkStore;
    assert_eq!(store.linked_blob(&repo, &d).await.unwrap(), Some(1));
}
