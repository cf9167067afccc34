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

/// Two processes sweep one marked blob (`berth gc` run twice beside each other): the
/// second to check must not delete bytes an upload published after the first sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_from_two_processes_never_delete_bytes_published_since() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use berth_meta::conformance::sweep_bytes::{BoxedRetire, NoBytes, RetireWith};
    use berth_meta::{
        BlobLinkStore, CollectionStore, PinOutcome, SessionLimits, UploadPin, UploadSession,
        UploadStore,
    };
    use berth_oci::{Algorithm, Digest, RepositoryName, UploadId};
    use tokio::sync::oneshot;

    const LEASE: std::time::Duration = std::time::Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let (first, second) = (
        SqliteMetaStore::open(&path).unwrap(),
        SqliteMetaStore::open(&path).unwrap(),
    );
    let r = RepositoryName::parse("p/r").unwrap();
    let d = Digest::compute(Algorithm::Sha256, b"swept twice");
    first.link_blob(&r, &d, 1, 1).await.unwrap();
    first.unlink_blob(&r, &d, None).await.unwrap();
    assert_eq!(
        first.mark_unlinked_blobs("", 10, 100).await.unwrap().len(),
        1
    );

    let republished = AtomicBool::new(false);
    let late_deletes = AtomicUsize::new(0);
    let (checked_tx, checked) = oneshot::channel::<()>();
    let (go, go_rx) = oneshot::channel::<()>();
    let (checked_tx, go_rx) = (Mutex::new(Some(checked_tx)), Mutex::new(Some(go_rx)));
    // The second process checks the row, then pauses before it deletes the bytes.
    let paused_delete = || -> BoxedRetire<'_> {
        let checked = checked_tx.lock().unwrap().take();
        let go = go_rx.lock().unwrap().take();
        Box::pin(async {
            if let Some(checked) = checked {
                let _ = checked.send(());
            }
            if let Some(go) = go {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), go).await;
            }
            if republished.load(Ordering::SeqCst) {
                late_deletes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    let paused_delete = RetireWith(paused_delete);
    let paused = second.sweep_blob(&d, LEASE, &paused_delete);
    let meanwhile = async {
        checked.await.unwrap();
        first.sweep_blob(&d, LEASE, &NoBytes).await.unwrap();
        // The row is gone: an upload of the digest pins it, publishes and links it.
        let session = UploadSession {
            id: UploadId::from_random([9; 16]),
            repository: r.clone(),
            algorithm: Algorithm::Sha256,
            offset: 0,
            hash_state: vec![0],
            verified_by: None,
            verified_digest: None,
            created_at: 1,
            updated_at: 1,
        };
        first
            .create_upload(&session, SessionLimits::NONE)
            .await
            .unwrap();
        let pin = UploadPin {
            id: session.id.clone(),
            repository: session.repository.clone(),
            digest: d.clone(),
            append: None,
        };
        let pinned = first.pin_upload_digest(&pin).await.unwrap();
        assert_eq!(pinned.outcome, PinOutcome::Pinned);
        republished.store(true, Ordering::SeqCst);
        first
            .complete_upload(&session.id, &r, &d, 1, 200)
            .await
            .unwrap();
        let _ = go.send(());
    };
    let (swept, ()) = tokio::join!(paused, meanwhile);
    swept.unwrap();
    assert_eq!(
        late_deletes.load(Ordering::SeqCst),
        0,
        "the bytes of the upload completed after the first sweep were deleted"
    );
    assert_eq!(first.linked_blob(&r, &d).await.unwrap(), Some(1));
}

/// One process's sweep stalls in its deletion (a hung disk or NFS mount): another
/// process's sweep of a blob of another shard (the server's collection) goes ahead, for
/// sweeps lock only their digest's shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sweep_holds_up_no_sweep_of_another_blob() {
    use berth_meta::conformance::sweep_bytes::{BoxedRetire, NoBytes, RetireWith};
    use berth_meta::{BlobLinkStore, CollectionStore};
    use berth_oci::{Algorithm, Digest, RepositoryName};

    const LEASE: std::time::Duration = std::time::Duration::from_secs(120);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let (gc, server) = (
        std::sync::Arc::new(SqliteMetaStore::open(&path).unwrap()),
        SqliteMetaStore::open(&path).unwrap(),
    );
    let r = RepositoryName::parse("p/r").unwrap();
    let (stuck, pushed) = (
        Digest::compute(Algorithm::Sha256, b"on a hung disk"),
        Digest::compute(Algorithm::Sha256, b"pushed again"),
    );
    assert_ne!(stuck.encoded()[..2], pushed.encoded()[..2], "two shards");
    for d in [&stuck, &pushed] {
        gc.link_blob(&r, d, 1, 1).await.unwrap();
        gc.unlink_blob(&r, d, None).await.unwrap();
    }
    assert_eq!(gc.mark_unlinked_blobs("", 10, 100).await.unwrap().len(), 2);

    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let stalled = {
        let (gc, stuck) = (gc.clone(), stuck.clone());
        tokio::spawn(async move {
            let started_tx = std::sync::Mutex::new(Some(started_tx));
            let never = || -> BoxedRetire<'_> {
                let started = started_tx.lock().unwrap().take();
                Box::pin(async move {
                    if let Some(started) = started {
                        let _ = started.send(());
                    }
                    std::future::pending::<()>().await;
                    Ok(())
                })
            };
            gc.sweep_blob(&stuck, LEASE, &RetireWith(never)).await
        })
    };
    started.await.unwrap();
    let other = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        server.sweep_blob(&pushed, LEASE, &NoBytes),
    )
    .await;
    stalled.abort();
    assert!(
        matches!(other, Ok(Ok(true))),
        "the sweep of another blob waited on the stalled one: {other:?}"
    );
}

/// The upload purge forgets the tombstones of blobs swept longer ago than
/// `SWEPT_BLOBS_KEPT_FOR`, and keeps the others.
#[tokio::test]
async fn the_purge_forgets_only_tombstones_older_than_a_day() {
    use berth_meta::UploadStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = SqliteMetaStore::open(&path).unwrap();
    let kept = berth_meta::SWEPT_BLOBS_KEPT_FOR.as_millis() as i64;
    let now = crate::queries::system_now_ms();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "INSERT INTO swept_blobs (digest, swept_at) VALUES ('old', ?1), ('recent', ?2)",
        [now - kept - 60_000, now - kept + 60_000],
    )
    .unwrap();
    store.purge_ended_uploads(0).await.unwrap();
    let left: Vec<String> = c
        .prepare("SELECT digest FROM swept_blobs ORDER BY digest")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["recent"]);
}
