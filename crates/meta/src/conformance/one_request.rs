//! A session completed in one request, its bytes published before the step
//! ([`crate::CollectionStore::pin_new_upload`]): the blob is linked at once only when no
//! sweep can have taken the bytes since; otherwise the session is pinned, and its bytes
//! published again under the pin.
//!
//! These checks mark and sweep blobs: they run after the collection checks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_oci::{Digest, RepositoryName};

use super::support::{digest, new_pin, repo};
use super::sweep_bytes::NoBytes;
use crate::{MetaStore, NewUploadPin, PinOutcome, SWEPT_BLOBS_KEPT_FOR};

/// How long the sweeps of these checks hold a blob.
const LEASE: Duration = Duration::from_millis(200);

/// Runs the one-request completion checks on `store`.
pub(super) async fn run(store: &dyn MetaStore) {
    a_new_blob_published_just_now_is_linked_at_once(store).await;
    a_present_blob_is_linked_at_once_in_another_repository(store).await;
    a_marked_blob_is_revived_and_the_session_pinned(store).await;
    a_swept_blob_is_pinned_for_as_long_as_its_sweep_is_remembered(store).await;
    bytes_published_half_the_tombstones_time_ago_are_pinned(store).await;
    a_blob_of_a_repository_not_there_yet_is_pinned(store).await;
}

/// Milliseconds since the Unix epoch by the system clock, which the stores' own clocks
/// are here.
fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since.as_millis() as i64
}

/// [`new_pin`], its bytes published `ago` before now.
fn published(
    ago: Duration,
    n: u8,
    repository: &RepositoryName,
    digest: &Digest,
    size: u64,
) -> NewUploadPin {
    NewUploadPin {
        published_at: now_ms() - ago.as_millis() as i64,
        ..new_pin(n, repository, digest, size)
    }
}

/// Makes `repository` exist, with a blob of its own.
async fn with_repository(store: &dyn MetaStore, repository: &RepositoryName) {
    let own = digest(&format!("{repository}-own"));
    assert!(store.link_blob(repository, &own, 1, 10).await.unwrap());
}

/// Marks the blob `digest`, which nothing links or pins.
async fn mark(store: &dyn MetaStore, blob: &Digest) {
    let marked = store.mark_unlinked_blobs("", 10_000, 100).await.unwrap();
    assert!(marked.iter().any(|m| &m.digest == blob), "{blob} is marked");
}

/// Asserts what completing `completing` answers, and that its session is recorded
/// (pinned) or not (linked).
async fn assert_completes(store: &dyn MetaStore, completing: &NewUploadPin, expected: PinOutcome) {
    let done = store.pin_new_upload(completing).await.unwrap();
    assert_eq!(done.outcome, expected, "completing {}", completing.digest);
    let id = &completing.session.id;
    let recorded = store.upload(id).await.unwrap();
    match expected {
        PinOutcome::Linked => {
            assert_eq!(recorded, None, "a linked blob's session needs no record");
            assert!(store.upload_ended(id).await.unwrap(), "its id ended");
        }
        _ => assert_eq!(recorded.as_ref(), Some(&completing.session), "pinned"),
    }
}

/// A blob no row knows, published a moment ago, is linked, and its id ended, in the one
/// step.
async fn a_new_blob_published_just_now_is_linked_at_once(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-one/new"), digest("cf-one-new"));
    with_repository(store, &r).await;
    let completing = published(Duration::ZERO, 110, &r, &blob, 6);
    assert_completes(store, &completing, PinOutcome::Linked).await;
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), Some(6));
    assert_eq!(
        store.pin_new_upload(&completing).await.unwrap().outcome,
        PinOutcome::NoSession,
        "an ended id completes nothing"
    );
    let marked = store
        .mark_unlinked_blobs("", 10_000, i64::MAX)
        .await
        .unwrap();
    assert!(
        !marked.iter().any(|m| m.digest == blob),
        "a linked blob stays"
    );
}

/// A blob present elsewhere (its bytes published) is linked at once too.
async fn a_present_blob_is_linked_at_once_in_another_repository(store: &dyn MetaStore) {
    let (first, second, blob) = (
        repo("cf-one/first"),
        repo("cf-one/second"),
        digest("cf-one-shared"),
    );
    assert!(store.link_blob(&first, &blob, 8, 10).await.unwrap());
    with_repository(store, &second).await;
    let completing = published(Duration::ZERO, 111, &second, &blob, 8);
    assert_completes(store, &completing, PinOutcome::Linked).await;
    assert_eq!(store.linked_blob(&second, &blob).await.unwrap(), Some(8));
}

/// A marked blob may be under a sweep: its bytes may be gone. The session is pinned, the
/// blob revived, as by a pin before publishing.
async fn a_marked_blob_is_revived_and_the_session_pinned(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-one/marked"), digest("cf-one-marked"));
    assert!(store.link_blob(&r, &blob, 5, 10).await.unwrap());
    store.unlink_blob(&r, &blob, None).await.unwrap();
    mark(store, &blob).await;
    let completing = published(Duration::ZERO, 112, &r, &blob, 5);
    assert_completes(store, &completing, PinOutcome::Revived).await;
    assert_eq!(
        store.linked_blob(&r, &blob).await.unwrap(),
        None,
        "not linked yet"
    );
    assert!(
        !store.sweep_blob(&blob, LEASE, &NoBytes).await.unwrap(),
        "live again"
    );
    let id = &completing.session.id;
    store.complete_upload(id, &r, &blob, 5, 30).await.unwrap();
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), Some(5));
}

/// Once a sweep deleted a blob's row, bytes published before may be gone with it: a
/// completion of the digest is pinned while the sweep is remembered, even by the upload
/// purge, and even after the digest was pushed again.
async fn a_swept_blob_is_pinned_for_as_long_as_its_sweep_is_remembered(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-one/swept"), digest("cf-one-swept"));
    assert!(store.link_blob(&r, &blob, 4, 10).await.unwrap());
    store.unlink_blob(&r, &blob, None).await.unwrap();
    mark(store, &blob).await;
    assert!(store.sweep_blob(&blob, LEASE, &NoBytes).await.unwrap());
    store.purge_ended_uploads(0).await.unwrap();
    let completing = published(Duration::ZERO, 113, &r, &blob, 4);
    assert_completes(store, &completing, PinOutcome::Pinned).await;
    let id = &completing.session.id;
    store.complete_upload(id, &r, &blob, 4, 30).await.unwrap();
    let again = published(Duration::ZERO, 114, &r, &blob, 4);
    assert_completes(store, &again, PinOutcome::Pinned).await;
}

/// Bytes published too long ago for a sweep since to be remembered for sure are pinned;
/// a little less long ago, they are linked.
async fn bytes_published_half_the_tombstones_time_ago_are_pinned(store: &dyn MetaStore) {
    let r = repo("cf-one/old");
    with_repository(store, &r).await;
    let half = SWEPT_BLOBS_KEPT_FOR / 2;
    let (late, early) = (digest("cf-one-late"), digest("cf-one-early"));
    let stale = published(half + Duration::from_secs(60), 115, &r, &late, 3);
    assert_completes(store, &stale, PinOutcome::Pinned).await;
    let fresh = published(half - Duration::from_secs(60), 116, &r, &early, 3);
    assert_completes(store, &fresh, PinOutcome::Linked).await;
}

/// A repository that does not exist yet is made by the completion after the pin, as
/// for any session.
async fn a_blob_of_a_repository_not_there_yet_is_pinned(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-one/absent"), digest("cf-one-absent"));
    let completing = published(Duration::ZERO, 117, &r, &blob, 2);
    assert_completes(store, &completing, PinOutcome::Pinned).await;
    let id = &completing.session.id;
    store.complete_upload(id, &r, &blob, 2, 30).await.unwrap();
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), Some(2));
}
