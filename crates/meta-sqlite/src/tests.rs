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

#[test]
fn tag_pages_walk_the_listing_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteMetaStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            crate::queries::TAGS_AFTER
        ))
        .unwrap()
        .query_map(rusqlite::params![1, "v1", 10], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // A range on the index, not a scan of the repository's tags and no sort.
    assert_eq!(
        plan,
        ["SEARCH tags USING COVERING INDEX tags_listing (repository_id=? AND name>?)"],
        "{plan:?}"
    );
}
