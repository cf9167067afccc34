//! Garbage collection's steps: a blob is marked only when nothing links or pins it, a
//! marked blob is linked by nobody, a pin revives it, and a sweep removes it once.
//!
//! Marking takes every blob of the store that qualifies, so this check runs after the
//! others and looks only at its own blobs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_oci::Digest;

use super::support::{advance, digest, manifest, new_pin, pin, repo, upload_session};
use super::sweep_bytes::{BoxedRetire, MemoryBytes, NoBytes, RetireWith};
use crate::{
    MarkedBlob, MetaStore, PinOutcome, RecordedBlob, SessionLimits, SweepError, SweepFailed,
    UploadLease, UploadPin, UploadSession,
};

/// How long the sweeps of these checks hold a blob.
const LEASE: Duration = Duration::from_millis(200);

/// Runs the collection checks on `store`.
pub(super) async fn run(store: &dyn MetaStore) {
    a_blob_is_marked_only_when_nothing_links_or_pins_it(store).await;
    unreferenced_links_go_once_their_grace_is_over(store).await;
    a_link_made_again_starts_its_grace_anew(store).await;
    a_pinned_blob_does_not_end_the_marking(store).await;
    a_pin_revives_a_marked_blob(store).await;
    a_completing_pin_records_its_last_chunk(store).await;
    a_session_recorded_as_it_completes_is_pinned_and_claimed(store).await;
    a_session_recorded_as_it_completes_revives_a_marked_blob(store).await;
    untagged_manifests_go_from_the_top_of_each_graph(store).await;
    bytes_no_row_knows_are_claimed_unless_pinned(store).await;
}

/// Asserts that `blob`, revived, is live again: not listed as marked, and no sweep
/// deletes it.
async fn assert_live_again(store: &dyn MetaStore, blob: &Digest) {
    let live = store.live_blobs(std::slice::from_ref(blob)).await.unwrap();
    assert_eq!(
        live.into_iter().map(|b| b.digest).collect::<Vec<_>>(),
        vec![blob.clone()]
    );
    let listed = store.marked_blobs("", 10_000).await.unwrap();
    assert!(!listed.iter().any(|m| &m.digest == blob));
    assert!(!store.sweep_blob(blob, LEASE, &NoBytes).await.unwrap());
}

async fn bytes_no_row_knows_are_claimed_unless_pinned(store: &dyn MetaStore) {
    let r = repo("cf-gc/orphans");
    let (recorded, pinned, orphan) = (
        digest("cf-orphan-recorded"),
        digest("cf-orphan-pinned"),
        digest("cf-orphan"),
    );
    store.link_blob(&r, &recorded, 4, 1).await.unwrap();
    let pinning = upload_session(76, &r);
    store
        .create_upload(&pinning, SessionLimits::NONE)
        .await
        .unwrap();
    assert_eq!(
        pin(store, &pinning.id, &r, &pinned).await,
        PinOutcome::Pinned
    );
    let all = [recorded.clone(), pinned.clone(), orphan.clone()];
    assert_eq!(
        store.unrecorded_blobs(&all).await.unwrap(),
        vec![orphan.clone()]
    );
    let candidates: Vec<MarkedBlob> = (all.iter())
        .map(|d| MarkedBlob {
            digest: d.clone(),
            size: 9,
        })
        .collect();
    let claimed = store.claim_orphan_blobs(&candidates, 5).await.unwrap();
    assert_eq!(
        claimed,
        [MarkedBlob {
            digest: orphan.clone(),
            size: 9
        }]
    );
    assert_eq!(
        store.claim_orphan_blobs(&candidates, 5).await.unwrap(),
        [],
        "claimed once"
    );
    // Claimed, the bytes are a marked blob: listed, refused to links, swept.
    let listed = store.marked_blobs("", 10_000).await.unwrap();
    assert!(listed.iter().any(|m| m.digest == orphan));
    assert!(!store.link_blob(&r, &orphan, 9, 6).await.unwrap());
    // The sweep retires the bytes and, having deleted the row, discards them.
    let bytes = MemoryBytes::default();
    bytes.publish(&orphan);
    assert!(store.sweep_blob(&orphan, LEASE, &bytes).await.unwrap());
    assert!(!bytes.is_published(&orphan));
    assert_eq!(bytes.retired(), 0, "the retired copy is discarded");
    assert!(!store.sweep_blob(&orphan, LEASE, &NoBytes).await.unwrap());
    assert_eq!(
        store.unrecorded_blobs(&all).await.unwrap(),
        vec![orphan.clone()]
    );
    store.delete_upload(&pinning.id, 1000).await.unwrap();
}

/// The untagged manifests of `repository` pushed before `before`, paged 2 at a time.
async fn untagged_in(store: &dyn MetaStore, repository: &str, before: i64) -> Vec<Digest> {
    let (mut found, mut after) = (Vec::new(), (0, String::new()));
    loop {
        let page = store
            .untagged_manifests((after.0, &after.1), 2, before)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return found;
        };
        after = (last.repository_id, last.digest.to_string());
        found.extend(
            (page.into_iter())
                .filter(|m| m.repository.as_str() == repository)
                .map(|m| m.digest),
        );
    }
}

async fn untagged_manifests_go_from_the_top_of_each_graph(store: &dyn MetaStore) {
    let name = "cf-gc/untagged";
    let r = repo(name);
    store
        .link_blob(&r, &digest("cf-u-layer"), 3, 1)
        .await
        .unwrap();
    let image = |body: &str, tags: &[&str]| manifest(name, body, &[("cf-u-layer", 3)], tags);
    let tagged = image("cf-u-tagged", &["v1"]);
    let loose = image("cf-u-loose", &[]);
    let child = image("cf-u-child", &[]);
    let mut index = manifest(name, "cf-u-index", &[], &[]);
    index.children = vec![(child.digest.clone(), child.content.len() as u64)];
    let mut signature = image("cf-u-signature", &[]);
    signature.subject = Some(tagged.digest.clone());
    let mut loose_sbom = image("cf-u-loose-sbom", &[]);
    loose_sbom.subject = Some(loose.digest.clone());
    let mut recent = image("cf-u-recent", &[]);
    recent.pushed_at = 50;
    for m in [
        &tagged,
        &loose,
        &child,
        &index,
        &signature,
        &loose_sbom,
        &recent,
    ] {
        store.put_manifest(m).await.unwrap();
    }
    let sorted = |mut d: Vec<Digest>| {
        d.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        d
    };

    // Only the tops of the graph: not the index's child, nor the referrers of a manifest
    // still there, nor what was pushed within the grace.
    assert_eq!(
        untagged_in(store, name, 50).await,
        sorted(vec![loose.digest.clone(), index.digest.clone()])
    );
    assert!(
        !store
            .delete_untagged_manifest(&r, &tagged.digest, 50)
            .await
            .unwrap(),
        "a tagged manifest stays"
    );
    assert!(
        !store
            .delete_untagged_manifest(&r, &child.digest, 50)
            .await
            .unwrap(),
        "an index's child stays"
    );
    assert!(
        !store
            .delete_untagged_manifest(&r, &recent.digest, 50)
            .await
            .unwrap(),
        "a manifest pushed within the grace stays"
    );
    for top in [&loose.digest, &index.digest] {
        assert!(store.delete_untagged_manifest(&r, top, 50).await.unwrap());
        assert!(
            !store.delete_untagged_manifest(&r, top, 50).await.unwrap(),
            "deleted once"
        );
    }

    // What they held up is next; the tagged manifest and its signature stay.
    assert_eq!(
        untagged_in(store, name, 50).await,
        sorted(vec![child.digest.clone(), loose_sbom.digest.clone()])
    );
    for next in [&child.digest, &loose_sbom.digest] {
        assert!(store.delete_untagged_manifest(&r, next, 50).await.unwrap());
    }
    assert_eq!(untagged_in(store, name, 50).await, []);
    assert_eq!(untagged_in(store, name, 51).await, [recent.digest.clone()]);
    for kept in [&tagged.digest, &signature.digest, &recent.digest] {
        let found = store
            .manifest(&r, &berth_oci::Reference::Digest(kept.clone()))
            .await
            .unwrap();
        assert!(found.is_some(), "{kept} stays");
    }
}

/// A pin that carries the completing request's last chunk moves the session over it,
/// compare-and-set on the offset: from any other offset it changes nothing, pins
/// nothing, and says the session moved.
async fn a_completing_pin_records_its_last_chunk(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-gc/last-chunk"), digest("cf-gc-last-chunk"));
    store.link_blob(&r, &blob, 5, 10).await.unwrap();
    store.unlink_blob(&r, &blob, None).await.unwrap();
    let completing = UploadSession {
        verified_by: Some(7),
        ..upload_session(75, &r)
    };
    (store.create_upload(&completing, SessionLimits::NONE).await).unwrap();
    let pin = |append| UploadPin {
        id: completing.id.clone(),
        repository: r.clone(),
        digest: blob.clone(),
        append: Some(append),
    };
    let stale = store.pin_upload_digest(&pin(advance(3, 8, 2, 7, 20))).await;
    assert_eq!(stale.unwrap().outcome, PinOutcome::Moved);
    assert_eq!(
        store.upload(&completing.id).await.unwrap().as_ref(),
        Some(&completing),
        "a pin from another offset changes nothing"
    );
    assert!(
        marks(store, &blob, 100).await,
        "a pin from another offset pins nothing"
    );

    let pinned = store.pin_upload_digest(&pin(advance(0, 5, 2, 7, 20))).await;
    assert_eq!(pinned.unwrap().outcome, PinOutcome::Revived);
    let moved = store.upload(&completing.id).await.unwrap().unwrap();
    assert_eq!(
        (
            moved.offset,
            moved.hash_state,
            moved.updated_at,
            moved.verified_by
        ),
        (5, vec![2], 20, Some(7)),
        "moved over the chunk, still vouched for by its only writer"
    );
    assert!(!marks(store, &blob, 100).await, "a pinned blob stays");
    store.delete_upload(&completing.id, 1000).await.unwrap();
    let gone = store.pin_upload_digest(&pin(advance(5, 6, 3, 7, 21))).await;
    assert_eq!(gone.unwrap().outcome, PinOutcome::NoSession);
}

/// A session recorded as it completes is recorded as given, pinned on its digest (which
/// is not marked while the session lasts) and claimed by its holder; its id is then
/// taken.
async fn a_session_recorded_as_it_completes_is_pinned_and_claimed(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-gc/new-pin"), digest("cf-gc-new-pin"));
    store.link_blob(&r, &blob, 6, 10).await.unwrap();
    store.unlink_blob(&r, &blob, None).await.unwrap();
    let recorded = new_pin(78, &r, &blob, 6);
    let id = &recorded.session.id;
    let pinned = store.pin_new_upload(&recorded).await.unwrap();
    assert_eq!(pinned.outcome, PinOutcome::Pinned);
    assert_eq!(
        store.upload(id).await.unwrap().as_ref(),
        Some(&recorded.session),
        "recorded with its offset and hash state"
    );
    let (holder, until) = (recorded.holder, recorded.until);
    assert_eq!(
        store
            .lease_upload(id, holder + 1, until - 1, until + 100)
            .await
            .unwrap(),
        UploadLease::Held,
        "claimed by its holder"
    );
    assert!(
        store
            .renew_upload_lease(id, holder, until + 10)
            .await
            .unwrap()
    );
    assert!(!marks(store, &blob, 100).await, "a pinned blob stays");
    let again = store.pin_new_upload(&recorded).await.unwrap();
    assert_eq!(again.outcome, PinOutcome::Taken);
    assert!(store.delete_upload(id, 1000).await.unwrap());
    assert!(marks(store, &blob, 100).await, "unpinned with its session");
}

/// A session recorded as it completes, on the digest of a marked blob, revives it as a
/// pin does.
async fn a_session_recorded_as_it_completes_revives_a_marked_blob(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-gc/new-revived"), digest("cf-gc-new-revived"));
    store.link_blob(&r, &blob, 5, 10).await.unwrap();
    store.unlink_blob(&r, &blob, None).await.unwrap();
    assert!(marks(store, &blob, 100).await);
    let recorded = new_pin(79, &r, &blob, 5);
    let pinned = store.pin_new_upload(&recorded).await.unwrap();
    assert_eq!(pinned.outcome, PinOutcome::Revived);
    assert_live_again(store, &blob).await;
    let id = &recorded.session.id;
    store.complete_upload(id, &r, &blob, 5, 30).await.unwrap();
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), Some(5));
}

/// Whether marking blobs recorded before `before` marks `blob`.
async fn marks(store: &dyn MetaStore, blob: &Digest, before: i64) -> bool {
    let marked = store.mark_unlinked_blobs("", 10_000, before).await.unwrap();
    marked.iter().any(|m| &m.digest == blob)
}

async fn a_blob_is_marked_only_when_nothing_links_or_pins_it(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-gc/app"), digest("cf-gc-layer"));
    let roomy = SessionLimits::NONE;
    store.link_blob(&r, &blob, 7, 10).await.unwrap();
    assert!(!marks(store, &blob, 100).await, "a linked blob stays");
    store.unlink_blob(&r, &blob, None).await.unwrap();
    assert!(
        !marks(store, &blob, 10).await,
        "a blob recorded since stays"
    );

    let pinning = upload_session(71, &r);
    store.create_upload(&pinning, roomy).await.unwrap();
    assert_eq!(pin(store, &pinning.id, &r, &blob).await, PinOutcome::Pinned);
    assert!(!marks(store, &blob, 100).await, "a pinned blob stays");
    store.delete_upload(&pinning.id, 1000).await.unwrap();
    assert_eq!(
        pin(store, &pinning.id, &r, &blob).await,
        PinOutcome::NoSession
    );

    assert!(
        marks(store, &blob, 100).await,
        "unlinked and unpinned, it is marked"
    );
    assert!(!marks(store, &blob, 100).await, "a blob is marked once");
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), None);
    assert!(
        !store.link_blob(&r, &blob, 7, 20).await.unwrap(),
        "a marked blob is not linked again"
    );
    assert!(
        !store.mount_blob(&r, &blob, 20).await.unwrap(),
        "nor mounted"
    );
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), None);
    let completing = upload_session(72, &r);
    store.create_upload(&completing, roomy).await.unwrap();
    let listed = store.marked_blobs("", 10_000).await.unwrap();
    assert!(listed.iter().any(|m| m.digest == blob && m.size == 7));

    // A sweep whose deletion fails leaves the blob marked, for a sweep once its lease
    // has lapsed.
    let failing = || -> BoxedRetire<'_> { Box::pin(async { Err(SweepFailed("disk".into())) }) };
    assert!(matches!(
        store.sweep_blob(&blob, LEASE, &RetireWith(failing)).await,
        Err(SweepError::Bytes(_))
    ));
    let listed = store.marked_blobs("", 10_000).await.unwrap();
    assert!(listed.iter().any(|m| m.digest == blob));
    tokio::time::sleep(LEASE).await;
    let deletions = AtomicUsize::new(0);
    let deleting = RetireWith(|| -> BoxedRetire<'_> {
        deletions.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    assert_eq!(
        store.live_blobs(std::slice::from_ref(&blob)).await.unwrap(),
        vec![]
    );
    let present = store.present_blobs("", 10_000).await.unwrap();
    assert!(
        !present.iter().any(|p| p.digest == blob),
        "marked: not present"
    );
    assert!(store.sweep_blob(&blob, LEASE, &deleting).await.unwrap());
    assert!(
        !store.sweep_blob(&blob, LEASE, &deleting).await.unwrap(),
        "swept once"
    );
    assert_eq!(deletions.load(Ordering::SeqCst), 1);
    assert!(
        !store.mount_blob(&r, &blob, 25).await.unwrap(),
        "a swept blob has no bytes to mount"
    );
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), None);
    let listed = store.marked_blobs("", 10_000).await.unwrap();
    assert!(!listed.iter().any(|m| m.digest == blob));

    // Swept, the digest is new again: a completion pins it and links it.
    assert_eq!(
        pin(store, &completing.id, &r, &blob).await,
        PinOutcome::Pinned
    );
    store
        .complete_upload(&completing.id, &r, &blob, 7, 30)
        .await
        .unwrap();
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), Some(7));
    assert_eq!(
        store.live_blobs(std::slice::from_ref(&blob)).await.unwrap(),
        vec![RecordedBlob {
            digest: blob.clone(),
            size: 7
        }],
        "linked again, the blob is live, with its recorded size"
    );
    let present = store.present_blobs("", 10_000).await.unwrap();
    assert!(present.iter().any(|p| p.digest == blob && p.size == 7));
    assert!(
        present
            .windows(2)
            .all(|w| w[0].digest.as_str() < w[1].digest.as_str()),
        "in digest order"
    );
    let later = store.present_blobs(blob.as_str(), 10_000).await.unwrap();
    assert!(
        !later.iter().any(|p| p.digest == blob),
        "after it: not listed"
    );
}

/// Walks every repository in batches of two, as a collection does; returns the links
/// removed.
async fn unlink_all(store: &dyn MetaStore, before: i64) -> u64 {
    let (mut after, mut unlinked) = (0, 0);
    loop {
        let batch = store.unlink_unreferenced(after, 2, before).await.unwrap();
        unlinked += batch.unlinked;
        match batch.last_repository {
            Some(last) => after = last,
            None => return unlinked,
        }
    }
}

async fn unreferenced_links_go_once_their_grace_is_over(store: &dyn MetaStore) {
    let r = repo("cf-gc/links");
    let (kept, dropped, young) = (
        digest("cf-gc-kept"),
        digest("cf-gc-dropped"),
        digest("cf-gc-young"),
    );
    store.link_blob(&r, &kept, 3, 10).await.unwrap();
    store.link_blob(&r, &dropped, 4, 10).await.unwrap();
    store.link_blob(&r, &young, 5, 50).await.unwrap();
    store
        .put_manifest(&manifest(
            "cf-gc/links",
            "cf-gc-m",
            &[("cf-gc-kept", 3)],
            &["v1"],
        ))
        .await
        .unwrap();
    // The dry run lists what a collection now would delete, and changes nothing.
    let listed = store
        .collectable_blobs("", 10_000, 40, false)
        .await
        .unwrap();
    assert!(listed.iter().any(|b| b.digest == dropped && b.size == 4));
    assert!(!listed.iter().any(|b| b.digest == kept || b.digest == young));
    assert_eq!(store.linked_blob(&r, &dropped).await.unwrap(), Some(4));

    assert!(unlink_all(store, 40).await >= 1);
    assert_eq!(store.linked_blob(&r, &dropped).await.unwrap(), None);
    assert_eq!(
        store.linked_blob(&r, &kept).await.unwrap(),
        Some(3),
        "referenced"
    );
    assert_eq!(
        store.linked_blob(&r, &young).await.unwrap(),
        Some(5),
        "within its grace"
    );
    assert_eq!(unlink_all(store, 40).await, 0, "nothing left to unlink");
    let marked = store.mark_unlinked_blobs("", 10_000, 40).await.unwrap();
    assert!(marked.iter().any(|b| b.digest == dropped));
    assert!(!marked.iter().any(|b| b.digest == kept || b.digest == young));

    // Deleting the manifest at 60 starts its blobs' grace period then.
    let deleted = store
        .delete_manifest(&r, &digest("cf-gc-m"), None, None, 60)
        .await
        .unwrap();
    assert_eq!(deleted, crate::Deletion::Deleted);
    unlink_all(store, 55).await;
    assert_eq!(
        store.linked_blob(&r, &kept).await.unwrap(),
        Some(3),
        "deleted since"
    );
    assert_eq!(store.linked_blob(&r, &young).await.unwrap(), None);
    unlink_all(store, 61).await;
    assert_eq!(store.linked_blob(&r, &kept).await.unwrap(), None);
}

async fn a_link_made_again_starts_its_grace_anew(store: &dyn MetaStore) {
    let r = repo("cf-gc/again");
    let (uploaded, mounted) = (digest("cf-gc-again-up"), digest("cf-gc-again-mount"));
    store.link_blob(&r, &uploaded, 3, 10).await.unwrap();
    store.link_blob(&r, &mounted, 4, 10).await.unwrap();
    // Both are pushed again at 100, into links set at 10: an upload completes, a mount
    // links. Each acknowledges the blob, which gets a grace period from then.
    let again = upload_session(73, &r);
    store
        .create_upload(&again, SessionLimits::NONE)
        .await
        .unwrap();
    assert_eq!(
        pin(store, &again.id, &r, &uploaded).await,
        PinOutcome::Pinned
    );
    store
        .complete_upload(&again.id, &r, &uploaded, 3, 100)
        .await
        .unwrap();
    assert!(store.mount_blob(&r, &mounted, 100).await.unwrap());
    unlink_all(store, 50).await;
    assert_eq!(
        store.linked_blob(&r, &uploaded).await.unwrap(),
        Some(3),
        "uploaded again at 100"
    );
    assert_eq!(
        store.linked_blob(&r, &mounted).await.unwrap(),
        Some(4),
        "mounted again at 100"
    );
    // A link is never set back by an earlier time.
    assert!(store.mount_blob(&r, &mounted, 20).await.unwrap());
    unlink_all(store, 50).await;
    assert_eq!(store.linked_blob(&r, &mounted).await.unwrap(), Some(4));
    unlink_all(store, 101).await;
    assert_eq!(store.linked_blob(&r, &uploaded).await.unwrap(), None);
    assert_eq!(store.linked_blob(&r, &mounted).await.unwrap(), None);
}

/// Marking a batch whose first blob is pinned still marks the blobs after it: a batch
/// that marks nothing ends a collection's marking.
async fn a_pinned_blob_does_not_end_the_marking(store: &dyn MetaStore) {
    // Whatever else qualifies is marked first, so what follows sees only its own blobs.
    store.mark_unlinked_blobs("", 10_000, 100).await.unwrap();
    let r = repo("cf-gc/pinned");
    let mut blobs = [digest("cf-gc-pinned-a"), digest("cf-gc-pinned-b")];
    blobs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let [first, second] = blobs;
    for blob in [&first, &second] {
        store.link_blob(&r, blob, 2, 10).await.unwrap();
        store.unlink_blob(&r, blob, None).await.unwrap();
    }
    let pinning = upload_session(74, &r);
    store
        .create_upload(&pinning, SessionLimits::NONE)
        .await
        .unwrap();
    assert_eq!(
        pin(store, &pinning.id, &r, &first).await,
        PinOutcome::Pinned
    );
    let marked = store.mark_unlinked_blobs("", 1, 100).await.unwrap();
    assert_eq!(
        marked.iter().map(|m| &m.digest).collect::<Vec<_>>(),
        [&second],
        "the blob after the pinned one"
    );
    store.delete_upload(&pinning.id, 1000).await.unwrap();
}

/// A completion that pins the digest of a marked blob revives it: the blob is live
/// again, no sweep deletes its row, and a sweep under way when the pin came (here the
/// pin lands during its retire) leaves the row, to restore what it retired.
async fn a_pin_revives_a_marked_blob(store: &dyn MetaStore) {
    let (r, blob) = (repo("cf-gc/revived"), digest("cf-gc-revived"));
    store.link_blob(&r, &blob, 5, 10).await.unwrap();
    store.unlink_blob(&r, &blob, None).await.unwrap();
    assert!(marks(store, &blob, 100).await);
    let completing = upload_session(77, &r);
    (store.create_upload(&completing, SessionLimits::NONE).await).unwrap();

    let (id, repository, revived) = (&completing.id, &r, &blob);
    let pinned_during_retire = RetireWith(move || -> BoxedRetire<'_> {
        Box::pin(async move {
            match pin(store, id, repository, revived).await {
                PinOutcome::Revived => Ok(()),
                other => Err(SweepFailed(format!("the pin answered {other:?}"))),
            }
        })
    });
    let swept = store.sweep_blob(&blob, LEASE, &pinned_during_retire).await;
    assert!(!swept.unwrap(), "the revived row stays");
    assert_live_again(store, &blob).await;
    assert!(
        !marks(store, &blob, 100).await,
        "pinned, it is not marked again"
    );
    assert_eq!(
        pin(store, id, &r, &blob).await,
        PinOutcome::Pinned,
        "revived once"
    );
    store.complete_upload(id, &r, &blob, 5, 30).await.unwrap();
    assert_eq!(store.linked_blob(&r, &blob).await.unwrap(), Some(5));
}
