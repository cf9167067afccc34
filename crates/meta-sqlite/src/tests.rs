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
    let plan = query_plan(
        &path,
        crate::queries::TAGS_AFTER,
        rusqlite::params![1, "v1", 10],
    );
    // A range on the index, not a scan of the repository's tags and no sort.
    assert_eq!(
        plan,
        ["SEARCH tags USING COVERING INDEX tags_listing (repository_id=? AND name>?)"],
        "{plan:?}"
    );
}

/// The query plan of `sql` run with `params`, one detail line per step.
fn query_plan(path: &std::path::Path, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn referrer_pages_walk_an_index_in_digest_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteMetaStore::open(&path).unwrap());
    let cases = [
        (
            crate::queries::REFERRERS,
            None,
            "manifests_subject (repository_id=? AND subject=? AND digest>?)",
        ),
        (
            crate::queries::REFERRERS_OF_TYPE,
            Some("application/spdx+json"),
            "manifests_subject_type (repository_id=? AND subject=? AND artifact_type=? AND digest>?)",
        ),
    ];
    for (sql, artifact_type, walk) in cases {
        let plan = query_plan(
            &path,
            sql,
            rusqlite::params!["p/r", "sha256:ab", artifact_type, "", 11],
        );
        // A range on the index that serves the page in digest order: no scan of the
        // subject's other referrers and no sort.
        assert!(
            plan.iter().any(|step| step.ends_with(walk)),
            "{artifact_type:?}: {plan:?}"
        );
        assert!(
            plan.iter()
                .all(|step| !step.contains("SCAN") && !step.contains("TEMP B-TREE")),
            "{artifact_type:?}: {plan:?}"
        );
    }
}
