//! Garbage collection through the registry's use case, on whichever backends
//! `BERTH_TEST_BACKENDS` selects: what nothing references goes once its grace period
//! is over, what a manifest references stays, and a dry run changes nothing.

use std::sync::Arc;
use std::time::Duration;

use berth_app::{CollectionOptions, CollectionReport, RegistryConfig};
use berth_oci::{Algorithm, Digest};
use berth_testkit::{Backends, LinkHold, ManualClock, OBJECT_COPY_LIMIT, TestRegistry};
use http::StatusCode;

const HOUR: Duration = Duration::from_secs(3600);
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

fn options(dry_run: bool) -> CollectionOptions {
    CollectionOptions {
        dry_run,
        grace: HOUR,
        workers: 2,
        delete_untagged: false,
    }
}

fn digests(report: &CollectionReport) -> Vec<Digest> {
    let mut found: Vec<Digest> = report.blobs.iter().map(|b| b.digest.clone()).collect();
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    found
}

fn sorted(mut d: Vec<Digest>) -> Vec<Digest> {
    d.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    d
}

/// A registry on a manual clock holding `data` in `repo`, pushed two hours (twice the
/// grace period) ago.
async fn aged_blob(repo: &str, data: &[u8]) -> (Arc<ManualClock>, TestRegistry, Digest) {
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let blob = registry.push_blob(repo, data).await;
    clock.advance(2 * HOUR);
    (clock, registry, blob)
}

/// Once the request `hold` holds is waiting, runs a collection, which must collect
/// `blob`, then lets the request go on.
async fn collect_while_held(registry: &TestRegistry, hold: LinkHold, blob: &Digest) {
    hold.reached.await.unwrap();
    let done = registry
        .registry
        .collect_garbage(options(false))
        .await
        .unwrap();
    assert_eq!(digests(&done), std::slice::from_ref(blob), "{done:?}");
    hold.release.send(()).unwrap();
}

async fn blob_status(registry: &TestRegistry, repo: &str, digest: &Digest) -> StatusCode {
    registry
        .get(&format!("/v2/{repo}/blobs/{digest}"))
        .await
        .status
}

#[tokio::test]
async fn what_nothing_references_goes_once_its_grace_is_over() {
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let (only_old, shared, only_new) = (&b"old layer"[..], &b"shared layer"[..], &b"new layer"[..]);
    let (old, _) = registry
        .push_image("gc/app", "old", &[only_old, shared])
        .await;
    registry
        .push_image("gc/app", "new", &[shared, only_new])
        .await;
    let stray = registry.push_blob("gc/app", b"never referenced").await;
    let r = registry
        .send_empty(http::Method::DELETE, &format!("/v2/gc/app/manifests/{old}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    // Within the grace period nothing goes, whatever references it.
    let gc = &registry.registry;
    assert_eq!(gc.collect_garbage(options(true)).await.unwrap().blobs, []);
    assert_eq!(gc.collect_garbage(options(false)).await.unwrap().blobs, []);

    clock.advance(2 * HOUR);
    let expected = sorted(vec![
        Digest::compute(Algorithm::Sha256, only_old),
        stray.clone(),
    ]);
    let bytes = (only_old.len() + b"never referenced".len()) as u64;
    let dry = gc.collect_garbage(options(true)).await.unwrap();
    assert_eq!((digests(&dry), dry.bytes), (expected.clone(), bytes));
    assert_eq!(
        blob_status(&registry, "gc/app", &stray).await,
        StatusCode::OK
    );

    let done = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!((digests(&done), done.bytes), (expected.clone(), bytes));
    assert_eq!(done.links_removed, 2);
    for gone in &expected {
        assert_eq!(
            blob_status(&registry, "gc/app", gone).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            registry.blobs.size(gone).await.unwrap(),
            None,
            "bytes of {gone}"
        );
    }
    for kept in [shared, only_new, CONFIG] {
        let d = Digest::compute(Algorithm::Sha256, kept);
        assert_eq!(blob_status(&registry, "gc/app", &d).await, StatusCode::OK);
    }
    assert_eq!(
        registry.get("/v2/gc/app/manifests/new").await.status,
        StatusCode::OK
    );

    // Nothing is left to collect, and a collected blob can be pushed again.
    let again = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!((again.blobs.len(), again.links_removed), (0, 0));
    assert_eq!(
        registry.push_blob("gc/app", b"never referenced").await,
        stray
    );
    assert_eq!(
        blob_status(&registry, "gc/app", &stray).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_blob_marked_for_deletion_is_uploaded_again_not_mounted() {
    let (_, registry, blob) = aged_blob("gc/source", b"mounted late").await;
    registry
        .registry
        .collect_garbage(options(false))
        .await
        .unwrap();
    // The blob is gone: a mount from its old repository opens an upload instead.
    let r = registry
        .send_empty(
            http::Method::POST,
            &format!("/v2/gc/target/blobs/uploads/?mount={blob}&from=gc/source"),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(registry.push_blob("gc/target", b"mounted late").await, blob);
    assert_eq!(
        blob_status(&registry, "gc/target", &blob).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_mount_racing_a_collection_links_no_blob_whose_bytes_are_gone() {
    let (_, registry, blob) = aged_blob("gc/source", b"mounted while collected").await;
    // The mount finds the blob linked in its source, and pauses before it links it
    // while a collection removes the source's link, the blob and its bytes.
    let hold = registry.faults.hold_next_link();
    let uri = format!("/v2/gc/target/blobs/uploads/?mount={blob}&from=gc/source");
    let mount = registry.send_empty(http::Method::POST, &uri);
    let collect = collect_while_held(&registry, hold, &blob);
    let (mounted, ()) = tokio::join!(mount, collect);
    // The mount opens an upload instead: a blob it linked would have no bytes.
    assert_eq!(mounted.status, StatusCode::ACCEPTED);
    assert_eq!(
        blob_status(&registry, "gc/target", &blob).await,
        StatusCode::NOT_FOUND
    );
}

/// A whole blob pushed while a collection sweeps its digest, paused between publishing
/// (its bytes found in place, the push's own kept) and the step that completes it: the
/// sweep retires those bytes and deletes the blob's row meanwhile. The completion finds
/// the sweep remembered, pins the digest and publishes its own bytes again, so the
/// acknowledged blob is served whole; linked at once, it would have no bytes.
#[tokio::test]
async fn a_whole_blob_pushed_while_its_digest_is_swept_keeps_its_bytes() {
    let data = &b"swept while pushed again"[..];
    let (_, registry, blob) = aged_blob("gc/swept", data).await;
    let hold = registry.faults.hold_next_completion();
    let push = registry.push_whole_blob("gc/swept", data);
    let collect = collect_while_held(&registry, hold, &blob);
    let (pushed, ()) = tokio::join!(push, collect);
    assert_eq!(pushed, blob);
    let pulled = registry.get(&format!("/v2/gc/swept/blobs/{blob}")).await;
    assert_eq!(pulled.status, StatusCode::OK);
    assert_eq!(&pulled.body[..], data);
}

/// A collection stopped between marking a blob and sweeping it: a push of the blob
/// revives it and goes through at once, rather than waiting for the next collection.
#[tokio::test]
async fn a_collection_cut_after_its_mark_holds_up_no_push_of_the_blob() {
    let (_, registry, blob) = aged_blob("gc/cut", b"marked, never swept").await;
    registry.faults.cut_sweeps(1);
    let cut = registry
        .registry
        .collect_garbage(options(false))
        .await
        .unwrap();
    assert_eq!(cut.blobs, []);
    assert_eq!(cut.failed.len(), 1, "the blob stays marked: {cut:?}");
    assert_eq!(
        blob_status(&registry, "gc/cut", &blob).await,
        StatusCode::NOT_FOUND,
        "a marked blob is served no more"
    );

    let started = std::time::Instant::now();
    assert_eq!(
        registry.push_blob("gc/cut", b"marked, never swept").await,
        blob
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        blob_status(&registry, "gc/cut", &blob).await,
        StatusCode::OK
    );
    let pulled = registry.get(&format!("/v2/gc/cut/blobs/{blob}")).await;
    assert_eq!(&pulled.body[..], b"marked, never swept");
    let after = registry
        .registry
        .collect_garbage(options(false))
        .await
        .unwrap();
    assert_eq!(after.blobs, [], "the pushed blob is new again");
}

/// With `delete_untagged`, a manifest whose tag moved on goes once its grace is over,
/// with the blobs only it referenced, in one run; tagged manifests and the referrers of
/// a manifest still there stay.
#[tokio::test]
async fn untagged_manifests_go_with_the_blobs_only_they_referenced() {
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let (first, _) = registry
        .push_image("gc/untag", "latest", &[b"first layer"])
        .await;
    let (second, _) = registry
        .push_image("gc/untag", "latest", &[b"second layer"])
        .await;
    let signature = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": registry.push_blob("gc/untag", b"{}").await.as_str(), "size": 2},
        "layers": [],
        "subject": {"mediaType": berth_oci::media_type::OCI_MANIFEST,
                    "digest": second.as_str(), "size": 1},
    }))
    .unwrap();
    let signature_digest = Digest::compute(Algorithm::Sha256, &signature);
    let r = registry
        .put_manifest(
            "gc/untag",
            signature_digest.as_str(),
            berth_oci::media_type::OCI_MANIFEST,
            &signature,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let untagging = CollectionOptions {
        delete_untagged: true,
        ..options(false)
    };
    let gc = &registry.registry;
    assert_eq!(gc.collect_garbage(untagging).await.unwrap().manifests, []);

    clock.advance(2 * HOUR);
    let dry = gc
        .collect_garbage(CollectionOptions {
            dry_run: true,
            ..untagging
        })
        .await
        .unwrap();
    let listed: Vec<&Digest> = dry.manifests.iter().map(|m| &m.digest).collect();
    assert_eq!(listed, [&first]);
    let manifest = |d: &Digest| format!("/v2/gc/untag/manifests/{d}");
    assert_eq!(registry.get(&manifest(&first)).await.status, StatusCode::OK);

    let done = gc.collect_garbage(untagging).await.unwrap();
    let deleted: Vec<(&str, &Digest)> = (done.manifests.iter())
        .map(|m| (m.repository.as_str(), &m.digest))
        .collect();
    assert_eq!(deleted, [("gc/untag", &first)]);
    assert_eq!(
        digests(&done),
        [Digest::compute(Algorithm::Sha256, b"first layer")],
        "the layer only the untagged manifest referenced goes in the same run"
    );
    assert_eq!(
        registry.get(&manifest(&first)).await.status,
        StatusCode::NOT_FOUND
    );
    for kept in [&second, &signature_digest] {
        assert_eq!(registry.get(&manifest(kept)).await.status, StatusCode::OK);
    }
    assert_eq!(
        registry.get("/v2/gc/untag/manifests/latest").await.status,
        StatusCode::OK
    );
}

/// A dry run that deletes untagged manifests lists what every pass of the run would
/// delete, not only the first: an untagged index, the child only it listed, that child's
/// referrer, and the blobs only they referenced; the run then deletes exactly that.
#[tokio::test]
async fn a_dry_run_lists_what_every_pass_would_delete() {
    use berth_oci::media_type::{OCI_INDEX, OCI_MANIFEST};
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let repo = "gc/graph";
    let (gone_child, gone_bytes) = registry.push_image(repo, "scratch", &[b"gone child"]).await;
    let (kept_child, kept_bytes) = registry.push_image(repo, "scratch", &[b"kept child"]).await;
    registry
        .push_image(repo, "scratch", &[b"tagged image"])
        .await;
    let index = |children: &[(&Digest, &Vec<u8>)]| {
        let manifests: Vec<_> = (children.iter())
            .map(|(d, bytes)| {
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d.as_str(),
                                   "size": bytes.len()})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        }))
        .unwrap()
    };
    let old_index = index(&[(&gone_child, &gone_bytes), (&kept_child, &kept_bytes)]);
    let r = registry
        .put_manifest(repo, "multi", OCI_INDEX, &old_index)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let empty = registry.push_blob(repo, b"{}").await;
    let signature = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": empty.as_str(), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": gone_child.as_str(),
                    "size": gone_bytes.len()},
    }))
    .unwrap();
    let signature_digest = Digest::compute(Algorithm::Sha256, &signature);
    let r = (registry)
        .put_manifest(repo, signature_digest.as_str(), OCI_MANIFEST, &signature)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let new_index = index(&[(&kept_child, &kept_bytes)]);
    let r = registry
        .put_manifest(repo, "multi", OCI_INDEX, &new_index)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    clock.advance(2 * HOUR);

    let untagging = CollectionOptions {
        delete_untagged: true,
        ..options(false)
    };
    let gc = &registry.registry;
    let dry = gc
        .collect_garbage(CollectionOptions {
            dry_run: true,
            ..untagging
        })
        .await
        .unwrap();
    let manifests = |report: &CollectionReport| {
        sorted(report.manifests.iter().map(|m| m.digest.clone()).collect())
    };
    let expected = sorted(vec![
        Digest::compute(Algorithm::Sha256, &old_index),
        gone_child.clone(),
        signature_digest.clone(),
    ]);
    assert_eq!(
        manifests(&dry),
        expected,
        "every pass's manifests are listed"
    );
    let freed = sorted(vec![
        Digest::compute(Algorithm::Sha256, b"gone child"),
        empty,
    ]);
    assert_eq!(digests(&dry), freed, "and the blobs only they referenced");
    assert_eq!(dry.bytes, (b"gone child".len() + 2) as u64);
    let manifest = |d: &Digest| format!("/v2/{repo}/manifests/{d}");
    assert_eq!(
        registry.get(&manifest(&gone_child)).await.status,
        StatusCode::OK
    );

    let done = gc.collect_garbage(untagging).await.unwrap();
    assert_eq!(
        manifests(&done),
        expected,
        "the run deletes what the dry run listed"
    );
    assert_eq!((digests(&done), done.bytes), (freed, dry.bytes));
    assert_eq!(
        registry.get(&manifest(&kept_child)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        registry
            .get(&format!("/v2/{repo}/manifests/multi"))
            .await
            .status,
        StatusCode::OK
    );
}

/// A blob whose link in one repository was collected, while another repository's image
/// keeps it, is linked again by a push into the first, and a manifest there finds it.
#[tokio::test]
async fn a_blob_unlinked_in_one_repository_is_linked_again_by_a_push() {
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    registry
        .push_image("gc/keeper", "v1", &[b"shared layer"])
        .await;
    let layer = registry.push_blob("gc/other", b"shared layer").await;
    clock.advance(2 * HOUR);
    let done = (registry.registry)
        .collect_garbage(options(false))
        .await
        .unwrap();
    assert_eq!(done.links_removed, 1);
    assert_eq!(
        blob_status(&registry, "gc/other", &layer).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(registry.push_blob("gc/other", b"shared layer").await, layer);
    assert_eq!(
        blob_status(&registry, "gc/other", &layer).await,
        StatusCode::OK
    );
    registry
        .push_image("gc/other", "v1", &[b"shared layer"])
        .await;
}

/// Bytes in the blob store that no blob row knows (a crash between publishing and
/// linking) go once they are older than the grace period, and only then.
#[tokio::test]
async fn bytes_no_row_knows_go_once_their_grace_is_over() {
    use berth_blob::BodyLength;
    use berth_oci::{ResumableHasher, UploadId};

    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let kept = registry.push_blob("gc/orphans", b"recorded bytes").await;
    registry
        .push_image("gc/orphans", "v1", &[b"recorded bytes"])
        .await;
    let data: &'static [u8] = b"bytes nothing records";
    let id = UploadId::from_random([7; 16]);
    let store = &registry.blobs;
    store.create_upload(&id).await.unwrap();
    let body = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(
        data,
    ))]));
    let appended = store
        .append_upload(
            &id,
            0,
            ResumableHasher::new(Algorithm::Sha256),
            body,
            BodyLength::Declared(data.len() as u64),
        )
        .await
        .unwrap();
    let orphan = appended.hasher.finish();
    store
        .commit_upload(&id, data.len() as u64, &orphan)
        .await
        .unwrap();

    let gc = &registry.registry;
    assert_eq!(gc.collect_garbage(options(false)).await.unwrap().blobs, []);
    assert!(
        store.size(&orphan).await.unwrap().is_some(),
        "within its grace"
    );

    clock.advance(2 * HOUR);
    let dry = gc.collect_garbage(options(true)).await.unwrap();
    assert_eq!(
        (digests(&dry), dry.bytes),
        (vec![orphan.clone()], data.len() as u64)
    );
    let done = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(
        (digests(&done), done.bytes),
        (vec![orphan.clone()], data.len() as u64)
    );
    assert_eq!(store.size(&orphan).await.unwrap(), None);
    assert_eq!(
        blob_status(&registry, "gc/orphans", &kept).await,
        StatusCode::OK
    );
    // The digest can be pushed like any other.
    assert_eq!(registry.push_blob("gc/orphans", data).await, orphan);
    assert_eq!(
        blob_status(&registry, "gc/orphans", &orphan).await,
        StatusCode::OK
    );
}

/// One DELETE the object store answers with an error (a 503) leaves the blob marked: a
/// push of the digest revives it and goes through at once.
#[tokio::test]
async fn one_failed_deletion_holds_up_no_push_of_the_blob() {
    let (_, registry, blob) = aged_blob("gc/failed", b"deletion failed once").await;
    registry.faults.fail_deletions(1);
    let run = registry
        .registry
        .collect_garbage(options(false))
        .await
        .unwrap();
    assert_eq!(run.failed.len(), 1, "{run:?}");

    let started = std::time::Instant::now();
    let uri = format!("/v2/gc/failed/blobs/uploads/?digest={blob}");
    let r = registry
        .send(
            http::Method::POST,
            &uri,
            &[],
            bytes::Bytes::from_static(b"deletion failed once"),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "after {:?}: {:?}",
        started.elapsed(),
        r.body
    );
}

/// An object store that refuses every DELETE (a bucket under object lock or retention,
/// a policy denying deletes) leaves each swept blob marked for good; a push of the
/// digest revives it and goes through at once, and so does every later push of it.
#[tokio::test]
async fn a_store_refusing_deletions_holds_up_no_push_of_a_collected_blob() {
    let (_, registry, blob) = aged_blob("gc/refused", b"never deletable").await;
    registry.faults.fail_deletions(1_000);
    let run = registry
        .registry
        .collect_garbage(options(false))
        .await
        .unwrap();
    assert_eq!(run.failed.len(), 1, "{run:?}");

    for repo in ["gc/refused", "gc/refused-again"] {
        let uri = format!("/v2/{repo}/blobs/uploads/?digest={blob}");
        let r = registry
            .send(
                http::Method::POST,
                &uri,
                &[],
                bytes::Bytes::from_static(b"never deletable"),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{repo}: {:?}", r.body);
        assert_eq!(blob_status(&registry, repo, &blob).await, StatusCode::OK);
    }
}

/// Whether the blob store holds a retired copy of `digest`.
async fn retired(registry: &TestRegistry, digest: &Digest) -> bool {
    let copies = registry.blobs.retired_copies(digest).await.unwrap();
    !copies.is_empty()
}

/// A sweep cut between retiring a blob's bytes and deleting its row (a crash) leaves a
/// retired copy and a marked row: the next collection sweeps the row and discards the
/// copy.
#[tokio::test]
async fn a_sweep_cut_after_its_retire_is_settled_by_the_next_collection() {
    let (_, registry, blob) = aged_blob("gc/retired", b"retired, never settled").await;
    registry.faults.cut_after_retires(1);
    let gc = &registry.registry;
    let cut = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(cut.blobs, []);
    assert_eq!(cut.failed.len(), 1, "the blob stays marked: {cut:?}");
    assert!(retired(&registry, &blob).await);
    assert_eq!(registry.blobs.size(&blob).await.unwrap(), None);

    let after = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(digests(&after), std::slice::from_ref(&blob));
    assert!(
        !retired(&registry, &blob).await,
        "the copy the cut sweep left is discarded"
    );
    assert_eq!(
        blob_status(&registry, "gc/retired", &blob).await,
        StatusCode::NOT_FOUND
    );
}

/// A stalled sweep's retire that lands after its claim was taken over and the digest
/// pushed again moves the bytes of a live blob aside; if that sweep then dies before it
/// restores them, the next collection does, and keeps the copy while the blob lives
/// (another late delete of the blob is repaired from it). Once the blob is collected,
/// the copy goes too.
#[tokio::test]
async fn bytes_of_a_live_blob_retired_late_are_restored_by_the_next_collection() {
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let (manifest, _) = registry
        .push_image("gc/late", "v1", &[b"retired too late"])
        .await;
    let layer = Digest::compute(Algorithm::Sha256, b"retired too late");
    registry
        .blobs
        .retire(&layer, "stalled0", &|_| {})
        .await
        .unwrap();
    assert_eq!(registry.blobs.size(&layer).await.unwrap(), None);

    let gc = &registry.registry;
    let report = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(report.blobs, []);
    assert_eq!(registry.blobs.size(&layer).await.unwrap(), Some(16));
    assert!(retired(&registry, &layer).await, "the copy is kept");
    registry.blobs.delete(&layer).await.unwrap();
    gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(registry.blobs.size(&layer).await.unwrap(), Some(16));

    let r = registry
        .send_empty(
            http::Method::DELETE,
            &format!("/v2/gc/late/manifests/{manifest}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    clock.advance(2 * HOUR);
    let collected = gc.collect_garbage(options(false)).await.unwrap();
    assert!(digests(&collected).contains(&layer), "{collected:?}");
    assert!(
        !retired(&registry, &layer).await,
        "the copy goes with the blob"
    );
}

/// A pull of a live blob whose bytes a late retire moved aside, before any collection
/// restored them, puts them back from the retired copy and is served.
#[tokio::test]
async fn a_pull_restores_the_bytes_of_a_live_blob_retired_late() {
    let registry = TestRegistry::new();
    registry
        .push_image("gc/pulled", "v1", &[b"retired before the pull"])
        .await;
    let layer = Digest::compute(Algorithm::Sha256, b"retired before the pull");
    registry
        .blobs
        .retire(&layer, "stalled1", &|_| {})
        .await
        .unwrap();
    assert_eq!(registry.blobs.size(&layer).await.unwrap(), None);

    let pulled = registry.get(&format!("/v2/gc/pulled/blobs/{layer}")).await;
    assert_eq!(pulled.status, StatusCode::OK, "{:?}", pulled.body);
    assert_eq!(&pulled.body[..], b"retired before the pull");
    assert_eq!(registry.blobs.size(&layer).await.unwrap(), Some(23));
}

/// Every file below `dir`, recursively.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => found.extend(files_below(&path)),
            false => found.push(path),
        }
    }
    found
}

/// A retired copy the recovery cannot settle (here a file in `retired/` whose token
/// `restore_retired`/`discard_retired` refuse, though `list_retired` listed it) holds up
/// no collection: the marked blob is still swept.
#[tokio::test]
async fn one_retired_copy_that_cannot_be_settled_holds_up_no_collection() {
    let (_, registry, blob) = aged_blob("gc/stuck", b"collectable while a copy is stuck").await;
    let stray = registry
        .push_blob("gc/other", b"a stray retired copy")
        .await;
    registry
        .blobs
        .retire(&stray, "stray0", &|_| {})
        .await
        .unwrap();
    let Some(copy) = files_below(registry.dir.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".stray0"))
    else {
        // Not a filesystem store: nothing to rename.
        return;
    };
    std::fs::rename(&copy, copy.with_extension("stray-0")).unwrap();
    assert!(
        registry
            .blobs
            .list_retired(None, 1000)
            .await
            .unwrap()
            .iter()
            .any(|c| c.token == "stray-0"),
        "the store lists the copy"
    );

    let report = registry.registry.collect_garbage(options(false)).await;
    let report = report.expect("one copy that cannot be settled fails no collection");
    assert_eq!(digests(&report), std::slice::from_ref(&blob));
}

/// A collection given up on (its future dropped: a caller's timeout, a job cancelled)
/// while a sweep's retire is slow leaves that sweep running in its own task, with its
/// claim (on SQLite the lock of a file): a push of the digest meanwhile revives the
/// blob, and when the retire lands the sweep finds its row taken over and puts the
/// bytes back. Dropping the sweep with the collection would leave them moved aside.
#[tokio::test]
async fn a_collection_given_up_on_leaves_no_late_retire_behind() {
    let data = b"retired by a sweep whose collection was given up on";
    let (_, registry, blob) = aged_blob("gc/slow", data).await;
    registry
        .faults
        .stall_next_retire(registry.blobs.clone(), Duration::from_secs(6));
    let collection = registry.registry.collect_garbage(options(false));
    let given_up = tokio::time::timeout(Duration::from_secs(2), collection).await;
    assert!(given_up.is_err(), "the collection waits on the slow retire");

    // The digest is pushed again and acknowledged while the retire is pending.
    assert_eq!(registry.push_blob("gc/slow", data).await, blob);

    // The retire lands, and its sweep settles it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let retired = registry.blobs.list_retired(None, 1000).await.unwrap();
    assert_eq!(
        registry.blobs.size(&blob).await.unwrap(),
        Some(data.len() as u64),
        "the bytes of the acknowledged push were moved aside: retired {retired:?}"
    );
    assert_eq!(
        blob_status(&registry, "gc/slow", &blob).await,
        StatusCode::OK
    );
}

/// `berth fsck --blobs` while a collection sweeps: a blob whose row a page of recorded
/// blobs still listed, marked and its bytes retired since, is no blob missing its
/// bytes; a live blob without bytes is one.
#[tokio::test]
async fn a_check_during_a_collection_reports_no_swept_blob_as_missing() {
    let (_, registry, swept) = aged_blob("gc/fsck", b"swept while checked").await;
    registry.faults.cut_after_retires(1);
    let gc = &registry.registry;
    gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(registry.blobs.size(&swept).await.unwrap(), None);
    let live = registry.push_blob("gc/fsck", b"live, bytes lost").await;
    registry.blobs.delete(&live).await.unwrap();

    registry.faults.stale_present_pages(1);
    let report = gc.check_integrity(false, true).await.unwrap();
    let missing: Vec<&Digest> = report.corrupt.iter().map(|c| &c.digest).collect();
    assert_eq!(missing, [&live], "{report:?}");
}

/// `len` bytes of a layer, repeating every 251.
fn layer_of(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// On an object store, a blob larger than one server-side copy moves (5 GiB on S3; the
/// test registries' limit is lowered to `OBJECT_COPY_LIMIT`) is collected all the same:
/// its retire streams it through the process into a multipart upload at its retired
/// key, and the collection reports it freed. Runs with `BERTH_TEST_BACKENDS=postgres+s3`.
#[tokio::test]
async fn a_blob_past_the_copy_limit_is_collected_and_reported_freed() {
    if Backends::selected() != Backends::PostgresS3 {
        return;
    }
    let data = layer_of(OBJECT_COPY_LIMIT + (1 << 20) + 7);
    let (_, registry, blob) = aged_blob("gc/large", &data).await;
    let report = registry.registry.collect_garbage(options(false)).await;
    let report = report.unwrap();
    assert_eq!(report.failed, [], "{report:?}");
    assert_eq!(digests(&report), std::slice::from_ref(&blob));
    assert_eq!(report.bytes, data.len() as u64);
    assert_eq!(registry.blobs.size(&blob).await.unwrap(), None);
    assert_eq!(registry.blobs.list_retired(None, 10).await.unwrap(), []);
    assert_eq!(
        blob_status(&registry, "gc/large", &blob).await,
        StatusCode::NOT_FOUND
    );
}

/// On an object store, a push revives a blob past the copy limit while its sweep's
/// retire streams it aside: the sweep finds its row taken over and streams the bytes
/// back, so the acknowledged push keeps them. The retire lands 8 s into the sweep, well
/// inside its budget; the push comes 3 s into it. Runs with
/// `BERTH_TEST_BACKENDS=postgres+s3` (the filesystem store retires by a rename).
#[tokio::test]
async fn a_push_during_the_sweep_of_a_blob_past_the_copy_limit_keeps_its_bytes() {
    if Backends::selected() != Backends::PostgresS3 {
        return;
    }
    let data = layer_of(OBJECT_COPY_LIMIT + 1);
    let (_, registry, blob) = aged_blob("gc/huge", &data).await;
    registry
        .faults
        .stall_next_retire(registry.blobs.clone(), Duration::from_secs(8));
    let gc = &registry.registry;
    let push = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        registry.push_blob("gc/huge", &data).await
    };
    let (collected, pushed) = tokio::join!(gc.collect_garbage(options(false)), push);
    let collected = collected.unwrap();
    assert_eq!(pushed, blob, "the push is acknowledged");
    assert_eq!(collected.blobs, [], "the revived blob is not collected");
    assert_eq!(
        collected.failed,
        [],
        "the sweep retired the blob, then put it back"
    );
    let kept = registry.blobs.retired_copies(&blob).await.unwrap();
    assert_eq!(
        kept.len(),
        1,
        "the restored copy is kept while the blob lives"
    );
    assert_eq!(
        registry.blobs.size(&blob).await.unwrap(),
        Some(data.len() as u64),
        "the blob of an acknowledged push has its bytes"
    );
    let pulled = registry.get(&format!("/v2/gc/huge/blobs/{blob}")).await;
    assert_eq!(pulled.status, StatusCode::OK);
    assert!(pulled.body == data, "the bytes pulled are the blob's");
}

/// The recovery lists retired copies a page at a time (1000), and asks for the next page
/// after the last copy listed. A copy whose token is no valid token (one that cannot be
/// settled, which holds up no collection) at the end of a full page still marks the place
/// of the next page: the object store takes the cursor as a key without checking its
/// token. Here 999 copies with valid tokens sort before it. Runs with
/// `BERTH_TEST_BACKENDS=postgres+s3` (the filesystem store's listing takes the cursor as
/// it is).
#[tokio::test]
async fn a_copy_that_cannot_be_settled_at_the_end_of_a_page_fails_no_collection() {
    if Backends::selected() != Backends::PostgresS3 {
        return;
    }
    let (_, registry, blob) = aged_blob("gc/paged", b"collectable past a page of copies").await;
    // The bucket's key prefix, from where the blob's object is.
    let object = (registry.blob_files().into_iter())
        .find(|f| f.file_name().and_then(|n| n.to_str()) == Some(blob.encoded()))
        .expect("the blob's object");
    let prefix: std::path::PathBuf = (object.components())
        .take_while(|c| c.as_os_str() != "blobs")
        .collect();
    let shard = registry.blob_root().join(prefix).join("retired/sha256/00");
    std::fs::create_dir_all(&shard).unwrap();
    // Copies of blobs with no row, retired (by their time) after the run's cutoff, so
    // that the recovery leaves them to their sweeps; the last one's token is invalid.
    let young = std::time::SystemTime::now() + 3 * HOUR;
    for i in 0..1000u32 {
        let token = if i == 999 { "stray-0" } else { "young0" };
        let file = std::fs::File::create(shard.join(format!("00{i:062x}.{token}"))).unwrap();
        file.set_modified(young).unwrap();
    }
    let listed = registry.blobs.list_retired(None, 1000).await.unwrap();
    assert_eq!(listed.len(), 1000);
    assert_eq!(listed.last().map(|c| c.token.as_str()), Some("stray-0"));

    let report = registry.registry.collect_garbage(options(false)).await;
    let report = report.expect("one copy that cannot be settled fails no collection");
    assert_eq!(digests(&report), std::slice::from_ref(&blob));
}

/// With `delete_untagged`, a manifest is unreferenced from the moment it loses its last
/// tag, not from its push: one whose tag moved on, or was deleted, less than the grace
/// period ago stays (and so do the blobs only it references) until the grace is over.
#[tokio::test]
async fn a_manifest_untagged_within_the_grace_period_stays() {
    let clock = ManualClock::new();
    let registry = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let (moved, _) = registry
        .push_image("gc/moved", "latest", &[b"moved layer"])
        .await;
    let (deleted, _) = registry
        .push_image("gc/deleted", "latest", &[b"deleted layer"])
        .await;
    clock.advance(2 * HOUR);
    // The tag moves on to another image, and the other is untagged.
    registry
        .push_image("gc/moved", "latest", &[b"newer layer"])
        .await;
    let r = registry
        .send_empty(http::Method::DELETE, "/v2/gc/deleted/manifests/latest")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    let untagging = CollectionOptions {
        delete_untagged: true,
        ..options(false)
    };
    let done = registry.registry.collect_garbage(untagging).await.unwrap();
    let gone: Vec<&Digest> = done.manifests.iter().map(|m| &m.digest).collect();
    assert_eq!(gone, Vec::<&Digest>::new(), "untagged a moment ago");
    assert_eq!(digests(&done), []);
    for (repo, digest) in [("gc/moved", &moved), ("gc/deleted", &deleted)] {
        let uri = format!("/v2/{repo}/manifests/{digest}");
        assert_eq!(registry.get(&uri).await.status, StatusCode::OK, "{uri}");
    }

    clock.advance(2 * HOUR);
    let done = registry.registry.collect_garbage(untagging).await.unwrap();
    let gone = sorted(done.manifests.iter().map(|m| m.digest.clone()).collect());
    assert_eq!(gone, sorted(vec![moved, deleted]), "once the grace is over");
}

/// A dry run lists the blobs a run would sweep: those a collection cut short left
/// marked for deletion too, which the next run deletes.
#[tokio::test]
async fn a_dry_run_lists_the_blobs_a_cut_collection_left_marked() {
    let (_, registry, blob) = aged_blob("gc/left", b"marked by a cut collection").await;
    registry.faults.cut_sweeps(1);
    let gc = &registry.registry;
    let cut = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(cut.failed.len(), 1, "the blob stays marked: {cut:?}");

    let dry = gc.collect_garbage(options(true)).await.unwrap();
    let done = gc.collect_garbage(options(false)).await.unwrap();
    assert_eq!(digests(&done), [blob], "the next run deletes it");
    assert_eq!(
        (digests(&dry), dry.bytes),
        (digests(&done), done.bytes),
        "the dry run lists what the run deletes"
    );
}
