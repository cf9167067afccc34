//! Checks of [`crate::QuotaStore`] and of the usage the registry's writes keep: each
//! counted digest once per project, released with the last manifest holding it, limits
//! enforced in the push's transaction, also under concurrent pushes, and the
//! recomputation agreeing with the counters after every step.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::support::{
    PROJECT_ADMIN, advance, audit, audit_trail, digest, manifest, new_pin, new_project, repo,
    upload_session,
};

use crate::{
    Deletion, Metadata, NewManifest, NewProject, PinOutcome, PutManifestError, QuotaExceeded,
    QuotaField, SessionLimits, UNLIMITED, UploadPin, WarningMark,
};

/// Runs the quota checks.
pub(super) async fn run(store: Arc<dyn Metadata>) {
    usage_counts_each_digest_once_per_project(&*store).await;
    limits_refuse_pushes_past_them(&*store).await;
    a_blob_listed_twice_counts_once(&*store).await;
    a_pin_over_the_quota_changes_nothing(&*store).await;
    a_new_session_over_the_quota_is_not_recorded(&*store).await;
    a_pin_of_the_largest_size_is_answered(&*store).await;
    new_projects_get_the_default_limit(&*store).await;
    the_warning_is_recorded_once_per_crossing(&*store).await;
    a_push_tells_whether_its_warning_mark_needs_a_look(&*store).await;
    a_limit_near_the_largest_is_warned_exactly(&*store).await;
    concurrent_pushes_never_pass_the_limit(store.clone()).await;
    concurrent_pushes_without_a_limit_count_exactly(store.clone()).await;
    assert_clean(&*store).await;
}

/// Fails when the stored counters differ from their recomputation anywhere.
pub(super) async fn assert_clean(store: &dyn Metadata) {
    assert_eq!(store.usage_drift().await.unwrap(), Vec::new());
}

/// Creates project `name` with `limit` (or the default) and returns its quota's id.
async fn project_with_limit(store: &dyn Metadata, name: &str, limit: Option<i64>) -> i64 {
    let project = NewProject {
        storage_limit: limit,
        ..new_project(name, None, false)
    };
    let id = store
        .create_project(
            &project,
            PROJECT_ADMIN,
            1,
            &audit("cf-quota", "create", name),
        )
        .await
        .unwrap();
    let quota = store.quota(id).await.unwrap().unwrap();
    assert_eq!((quota.project_id, quota.used), (id, 0));
    id
}

/// Links the blobs `m` references to its repository and pushes it.
async fn push(store: &dyn Metadata, m: &NewManifest) -> Result<WarningMark, PutManifestError> {
    for (d, size) in &m.blobs {
        store.link_blob(&m.repository, d, *size, 1).await.unwrap();
    }
    store.put_manifest(m).await
}

async fn used(store: &dyn Metadata, id: i64) -> u64 {
    store.quota(id).await.unwrap().unwrap().used
}

async fn usage_counts_each_digest_once_per_project(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-count", None).await;
    let first = manifest(
        "cf-q-count/a",
        "qm-one",
        &[("q-cfg", 3), ("q-l1", 4)],
        &["v1"],
    );
    push(store, &first).await.unwrap();
    assert_eq!(used(store, id).await, 6 + 3 + 4);
    // The same manifest again, and its layer from another repository: nothing new.
    push(store, &first).await.unwrap();
    let second = manifest(
        "cf-q-count/b",
        "qm-two",
        &[("q-l1", 4), ("q-l2", 5)],
        &["v1"],
    );
    push(store, &second).await.unwrap();
    assert_eq!(used(store, id).await, 13 + 6 + 5);
    let third = manifest(
        "cf-q-count/b",
        "qm-one",
        &[("q-cfg", 3), ("q-l1", 4)],
        &["v2"],
    );
    push(store, &third).await.unwrap();
    assert_eq!(
        used(store, id).await,
        24,
        "the same digest in two repositories"
    );
    // A blob only linked counts nothing.
    store
        .link_blob(&repo("cf-q-count/a"), &digest("q-loose"), 50, 1)
        .await
        .unwrap();
    let found = store
        .blob_quota(&repo("cf-q-count/a"), &digest("q-loose"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.quota.used, found.counted), (24, false));
    let found = store
        .blob_quota(&repo("cf-q-count/z"), &digest("q-l2"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        found.counted,
        "counted in the project, whatever the repository"
    );
    a_pin_with_room_answers_no_refusal(store).await;
    assert_clean(store).await;
    // Deletes release what no other manifest of the project holds.
    let deleted = store
        .delete_manifest(&repo("cf-q-count/a"), &digest("qm-one"), None, None, 2)
        .await
        .unwrap();
    assert_eq!(deleted, Deletion::Deleted);
    assert_eq!(
        used(store, id).await,
        24,
        "cf-q-count/b still holds all of it"
    );
    store
        .delete_manifest(&repo("cf-q-count/b"), &digest("qm-two"), None, None, 2)
        .await
        .unwrap();
    assert_eq!(used(store, id).await, 6 + 3 + 4);
    assert_clean(store).await;
    let gone = store
        .delete_repository(
            &repo("cf-q-count/b"),
            None,
            &audit("cf-quota", "delete", "b"),
        )
        .await
        .unwrap();
    assert_eq!(gone, crate::Deletion::Deleted);
    assert_eq!(used(store, id).await, 0);
    assert_clean(store).await;
}

async fn limits_refuse_pushes_past_them(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-limit", Some(40)).await;
    let fits = manifest("cf-q-limit/a", "ql-one", &[("ql-l1", 20)], &["v1"]);
    push(store, &fits).await.unwrap();
    assert_eq!(used(store, id).await, 26);
    let over = manifest(
        "cf-q-limit/a",
        "ql-two",
        &[("ql-l1", 20), ("ql-l2", 9)],
        &["v2"],
    );
    match push(store, &over).await {
        Err(PutManifestError::QuotaExceeded(e)) => assert_eq!(
            e,
            QuotaExceeded {
                project: "cf-q-limit".into(),
                used: 26,
                limit: 40,
                needed: 6 + 9,
            }
        ),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(used(store, id).await, 26, "a refused push counts nothing");
    let tags = store
        .tags(&repo("cf-q-limit/a"), None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tags.names(), ["v1".to_string()], "and writes nothing");
    // Exactly at the limit fits; what the project holds already adds nothing.
    let edge = manifest("cf-q-limit/b", "ql-3", &[("ql-l1", 20), ("ql-l3", 10)], &[]);
    push(store, &edge).await.unwrap();
    assert_eq!(used(store, id).await, 40);
    let again = manifest("cf-q-limit/c", "ql-one", &[("ql-l1", 20)], &["v1"]);
    push(store, &again).await.unwrap();
    let audited = audit("cf-quota-admin", "update", "cf-q-limit");
    assert!(
        store
            .set_quota_limit(id, UNLIMITED, 5, &audited)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_quota_limit(i64::MAX, 5, 5, &audited)
            .await
            .unwrap()
    );
    assert_eq!(audit_trail(store, "cf-quota-admin").await, vec![audited]);
    push(store, &over).await.unwrap();
    let quota = store.quota(id).await.unwrap().unwrap();
    assert_eq!(
        (quota.hard, quota.used, quota.updated_at),
        (UNLIMITED, 55, 5)
    );
    assert_eq!(quota.project_name, "cf-q-limit");
    let by_project =
        super::support::query(&[(QuotaField::ProjectId, super::support::exact(id))], &[]);
    let listed = store.quotas(&by_project).await.unwrap();
    assert_eq!((listed.total, listed.items), (1, vec![quota]));
    assert_clean(store).await;
}

/// A completion's pin with room for its blob answers no refusal, in a project as outside
/// any.
async fn a_pin_with_room_answers_no_refusal(store: &dyn Metadata) {
    for (n, repository, blob) in [
        (81, "cf-q-count/a", "q-loose"),
        (82, "cf-q-count/z", "q-l2"),
        (83, "cf-q-nowhere/a", "q-l2"),
    ] {
        let (repository, blob) = (repo(repository), digest(blob));
        let session = upload_session(n, &repository);
        store
            .create_upload(&session, SessionLimits::NONE)
            .await
            .unwrap();
        let pin = UploadPin {
            id: session.id.clone(),
            repository: repository.clone(),
            digest: blob.clone(),
            append: None,
        };
        let pinned = store.pin_upload_digest(&pin).await.unwrap();
        assert_eq!(pinned.outcome, PinOutcome::Pinned);
        assert_eq!(pinned.refusal, None, "{repository}");
        store.delete_upload(&session.id, 1000).await.unwrap();
    }
}

/// A manifest that lists one blob twice (as config and layer, or as two layers) holds it
/// once: its project counts it once, and deleting the manifest releases it.
async fn a_blob_listed_twice_counts_once(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-twice", None).await;
    let twice = manifest(
        "cf-q-twice/a",
        "qt-one",
        &[("qt-l1", 4), ("qt-l1", 4), ("qt-l2", 5)],
        &["v1"],
    );
    push(store, &twice).await.unwrap();
    assert_eq!(used(store, id).await, 6 + 4 + 5);
    assert_clean(store).await;
    let deleted = store
        .delete_manifest(&repo("cf-q-twice/a"), &digest("qt-one"), None, None, 2)
        .await
        .unwrap();
    assert_eq!(deleted, Deletion::Deleted);
    assert_eq!(used(store, id).await, 0, "released with the manifest");
    assert_clean(store).await;
}

/// A completion's pin that its project's quota refuses (at the session's offset after
/// the pin's append) pins nothing, moves nothing and revives no marked blob.
async fn a_pin_over_the_quota_changes_nothing(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-pin", Some(10)).await;
    let (r, blob) = (repo("cf-q-pin/a"), digest("qp-marked"));
    store.link_blob(&r, &blob, 20, 1).await.unwrap();
    store.unlink_blob(&r, &blob, None).await.unwrap();
    let marked = store.mark_unlinked_blobs("", 1000, 2).await.unwrap();
    assert!(marked.iter().any(|m| m.digest == blob), "{marked:?}");
    let session = upload_session(84, &r);
    store
        .create_upload(&session, SessionLimits::NONE)
        .await
        .unwrap();
    let pin = |to| UploadPin {
        id: session.id.clone(),
        repository: r.clone(),
        digest: blob.clone(),
        append: Some(advance(0, to, 1, 7, 5)),
    };
    let refused = store.pin_upload_digest(&pin(20)).await.unwrap();
    assert_eq!(refused.outcome, PinOutcome::OverQuota);
    assert_eq!(
        refused.refusal,
        Some(QuotaExceeded {
            project: "cf-q-pin".into(),
            used: 0,
            limit: 10,
            needed: 20,
        })
    );
    assert_eq!(
        store.upload(&session.id).await.unwrap().as_ref(),
        Some(&session),
        "a refused pin moves nothing"
    );
    let live = store.live_blobs(std::slice::from_ref(&blob)).await.unwrap();
    assert!(live.is_empty(), "a refused pin revives nothing");
    let fits = store.pin_upload_digest(&pin(10)).await.unwrap();
    assert_eq!(
        fits.outcome,
        PinOutcome::Revived,
        "exactly at the limit fits"
    );
    store.delete_upload(&session.id, 1000).await.unwrap();
    assert_eq!(used(store, id).await, 0);
}

/// A session recorded as it completes that its project's quota refuses (at its offset)
/// is not recorded, and revives no marked blob.
async fn a_new_session_over_the_quota_is_not_recorded(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-new-pin", Some(10)).await;
    let (r, blob) = (repo("cf-q-new-pin/a"), digest("qnp-marked"));
    store.link_blob(&r, &blob, 20, 1).await.unwrap();
    store.unlink_blob(&r, &blob, None).await.unwrap();
    let marked = store.mark_unlinked_blobs("", 1000, 2).await.unwrap();
    assert!(marked.iter().any(|m| m.digest == blob), "{marked:?}");
    let over = new_pin(85, &r, &blob, 20);
    let refused = store.pin_new_upload(&over).await.unwrap();
    assert_eq!(refused.outcome, PinOutcome::OverQuota);
    assert_eq!(
        refused.refusal,
        Some(QuotaExceeded {
            project: "cf-q-new-pin".into(),
            used: 0,
            limit: 10,
            needed: 20,
        })
    );
    let session = &over.session.id;
    assert_eq!(store.upload(session).await.unwrap(), None, "not recorded");
    let live = store.live_blobs(std::slice::from_ref(&blob)).await.unwrap();
    assert!(live.is_empty(), "a refused session revives nothing");
    let fits = store
        .pin_new_upload(&new_pin(85, &r, &blob, 10))
        .await
        .unwrap();
    assert_eq!(
        fits.outcome,
        PinOutcome::Revived,
        "exactly at the limit fits"
    );
    store.delete_upload(session, 1000).await.unwrap();
    assert_eq!(used(store, id).await, 0);
}

/// A session recorded as it completes with the largest size a store keeps is refused by
/// a quota with some usage, and pinned where the project already counts its digest: the
/// check of room never overflows.
async fn a_pin_of_the_largest_size_is_answered(store: &dyn Metadata) {
    project_with_limit(store, "cf-q-largest", Some(100)).await;
    let r = repo("cf-q-largest/a");
    push(
        store,
        &manifest("cf-q-largest/a", "qlg-one", &[("qlg-layer", 30)], &[]),
    )
    .await
    .unwrap();
    let largest = i64::MAX as u64;
    let refused = store
        .pin_new_upload(&new_pin(86, &r, &digest("qlg-new"), largest))
        .await
        .unwrap();
    assert_eq!(refused.outcome, PinOutcome::OverQuota);
    assert_eq!(
        refused.refusal,
        Some(QuotaExceeded {
            project: "cf-q-largest".into(),
            used: 30 + 7,
            limit: 100,
            needed: largest,
        })
    );
    let counted = new_pin(87, &r, &digest("qlg-layer"), largest);
    let pinned = store.pin_new_upload(&counted).await.unwrap();
    assert_eq!(
        (pinned.outcome, pinned.refusal),
        (PinOutcome::Pinned, None),
        "a digest the project counts needs no room"
    );
    store
        .delete_upload(&counted.session.id, 1000)
        .await
        .unwrap();
}

async fn new_projects_get_the_default_limit(store: &dyn Metadata) {
    let setting = |v: &str| BTreeMap::from([("storage_per_project".to_string(), v.to_string())]);
    let actor = audit("cf-quota", "update", "configurations");
    store.put_settings(&setting("1024"), &actor).await.unwrap();
    let limited = project_with_limit(store, "cf-q-default", None).await;
    let chosen = project_with_limit(store, "cf-q-chosen", Some(UNLIMITED)).await;
    store.put_settings(&setting("-1"), &actor).await.unwrap();
    let implicit = manifest("cf-q-implicit/a", "qd-one", &[], &[]);
    push(store, &implicit).await.unwrap();
    let hard = async |id| store.quota(id).await.unwrap().unwrap().hard;
    assert_eq!(hard(limited).await, 1024);
    assert_eq!(hard(chosen).await, UNLIMITED);
    let found = store
        .blob_quota(&repo("cf-q-implicit/a"), &digest("qd-one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.quota.hard, found.quota.used), (UNLIMITED, 6));
}

async fn the_warning_is_recorded_once_per_crossing(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-warn", Some(100)).await;
    let r = repo("cf-q-warn/a");
    let entry = audit("cf-quota-warn", "quota_warning", "cf-q-warn");
    let warn = async || store.warn_quota(&r, 85, &entry).await.unwrap();
    push(
        store,
        &manifest("cf-q-warn/a", "qw-one", &[("qw-l1", 70)], &[]),
    )
    .await
    .unwrap();
    assert_eq!(warn().await, None, "76 % is below the threshold");
    push(
        store,
        &manifest("cf-q-warn/a", "qw-two", &[("qw-l2", 4)], &[]),
    )
    .await
    .unwrap();
    assert_eq!(warn().await.map(|q| q.used), Some(86));
    assert_eq!(warn().await, None, "once per crossing");
    store
        .delete_manifest(&r, &digest("qw-two"), None, None, 2)
        .await
        .unwrap();
    assert_eq!(warn().await, None);
    push(
        store,
        &manifest("cf-q-warn/a", "qw-two", &[("qw-l2", 4)], &[]),
    )
    .await
    .unwrap();
    assert!(warn().await.is_some(), "crossed again");
    // A delete below the threshold clears the mark by itself, with no warning asked for
    // in between; one that stays above keeps it.
    let three = manifest("cf-q-warn/a", "qw-three", &[("qw-l3", 2)], &[]);
    push(store, &three).await.unwrap();
    assert_eq!(warn().await, None, "96 %: still marked");
    let delete = async |body: &str, now| {
        store
            .delete_manifest(&r, &digest(body), None, None, now)
            .await
            .unwrap()
    };
    delete("qw-three", 3).await;
    push(store, &three).await.unwrap();
    assert_eq!(
        warn().await,
        None,
        "at least 86 % throughout: no new crossing"
    );
    delete("qw-three", 4).await;
    delete("qw-two", 4).await;
    push(
        store,
        &manifest("cf-q-warn/a", "qw-two", &[("qw-l2", 4)], &[]),
    )
    .await
    .unwrap();
    assert!(warn().await.is_some(), "crossed again after deletes alone");
    // A limit that puts usage below the threshold clears the mark too; one that leaves
    // it at the threshold (85 % of 101 is 85.85: 86 bytes) keeps it.
    let actor = audit("cf-quota", "update", "quota");
    assert!(store.set_quota_limit(id, 101, 5, &actor).await.unwrap());
    assert_eq!(warn().await, None, "86 of 101: still marked");
    assert!(store.set_quota_limit(id, 102, 6, &actor).await.unwrap());
    assert!(store.set_quota_limit(id, 100, 7, &actor).await.unwrap());
    assert!(warn().await.is_some(), "crossed again by a lowered limit");
    let trail = audit_trail(store, "cf-quota-warn").await;
    assert_eq!(trail.len(), 4);
    assert!(trail.iter().all(|e| e.project_id == Some(id)));
}

async fn a_push_tells_whether_its_warning_mark_needs_a_look(store: &dyn Metadata) {
    let id = project_with_limit(store, "cf-q-look", Some(UNLIMITED)).await;
    let first = manifest("cf-q-look/a", "ql-one", &[("cf-q-look-layer", 10)], &["v1"]);
    let second = manifest("cf-q-look/a", "ql-two", &[("cf-q-look-layer", 10)], &[]);
    let pushed = async |m| push(store, m).await.unwrap();
    assert_eq!(
        pushed(&first).await,
        WarningMark::Unwatched,
        "no limit, no mark"
    );
    let actor = audit("cf-quota", "update", "quota");
    assert!(store.set_quota_limit(id, 1000, 2, &actor).await.unwrap());
    assert_eq!(pushed(&second).await, WarningMark::Watched, "a limit");
    assert_eq!(
        pushed(&first).await,
        WarningMark::Watched,
        "a push that counts nothing new still reads the limit"
    );
    assert!(
        store
            .set_quota_limit(id, UNLIMITED, 3, &actor)
            .await
            .unwrap()
    );
    assert_eq!(
        pushed(&first).await,
        WarningMark::Unwatched,
        "the limit removed"
    );
    let implicit = manifest("cf-q-look-implicit/a", "ql-three", &[], &[]);
    assert_eq!(
        pushed(&implicit).await,
        WarningMark::Unwatched,
        "a project created by its first push has the default limit, none here"
    );
}

async fn a_limit_near_the_largest_is_warned_exactly(store: &dyn Metadata) {
    // 85 % of the largest limit is 7_839_866_231_326_559_435.95 bytes: the warning
    // starts at the next whole byte, and no step of its test may overflow.
    let id = project_with_limit(store, "cf-q-huge", Some(i64::MAX)).await;
    let r = repo("cf-q-huge/a");
    let entry = audit("cf-quota-huge", "quota_warning", "cf-q-huge");
    let threshold = 7_839_866_231_326_559_436;
    // A 6-byte manifest and its layer: one byte short of the threshold.
    let layer = threshold - 1 - 6;
    push(
        store,
        &manifest("cf-q-huge/a", "qh-one", &[("qh-l1", layer)], &[]),
    )
    .await
    .unwrap();
    assert_eq!(used(store, id).await, threshold - 1);
    assert_eq!(store.warn_quota(&r, 85, &entry).await.unwrap(), None);
    // A 2-byte manifest reaches it.
    push(store, &manifest("cf-q-huge/a", "qh", &[], &[]))
        .await
        .unwrap();
    let warned = store.warn_quota(&r, 85, &entry).await.unwrap();
    assert_eq!(warned.map(|q| q.used), Some(threshold + 1));
}

async fn concurrent_pushes_never_pass_the_limit(store: Arc<dyn Metadata>) {
    let id = project_with_limit(&*store, "cf-q-race", Some(1000)).await;
    // 24 pushes of 6 + 94 bytes each, in 4 repositories: 10 fit.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let body = format!("qr-{i:03}");
                let layer = format!("qr-layer-{i}");
                let m = manifest(
                    &format!("cf-q-race/r{}", i % 4),
                    &body,
                    &[(&layer, 94)],
                    &[],
                );
                push(&*store, &m).await
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => stored += 1,
            Err(PutManifestError::QuotaExceeded(_)) => {}
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    assert_eq!(stored, 10);
    assert_eq!(used(&*store, id).await, 1000);
    assert_clean(&*store).await;
}

/// 24 concurrent pushes into a project without a limit, sharing two layers listed in
/// either order: each push is stored, the shared layers count once, deletes release
/// exactly, and a limit set afterwards holds against the usage so counted.
async fn concurrent_pushes_without_a_limit_count_exactly(store: Arc<dyn Metadata>) {
    let id = project_with_limit(&*store, "cf-q-free", Some(UNLIMITED)).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let own = format!("qf-own-{i}");
                let mut layers = vec![("qf-shared-a", 100), ("qf-shared-b", 200), (&own, 7)];
                if i % 2 == 1 {
                    layers.reverse();
                }
                let m = manifest(
                    &format!("cf-q-free/r{}", i % 4),
                    &format!("qf-{i:03}"),
                    &layers,
                    &[],
                );
                push(&*store, &m).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // Manifests of 6 bytes, 7 bytes of each push's own layer, the shared ones once.
    assert_eq!(used(&*store, id).await, 24 * (6 + 7) + 300);
    assert_clean(&*store).await;
    for i in 0..12 {
        let r = repo(&format!("cf-q-free/r{}", i % 4));
        let deleted = store
            .delete_manifest(&r, &digest(&format!("qf-{i:03}")), None, None, 2)
            .await
            .unwrap();
        assert_eq!(deleted, Deletion::Deleted);
    }
    assert_eq!(used(&*store, id).await, 12 * (6 + 7) + 300);
    assert_clean(&*store).await;
    let limit = 12 * (6 + 7) + 300 + 13;
    let entry = audit("cf-quota", "update", "cf-q-free");
    assert!(store.set_quota_limit(id, limit, 3, &entry).await.unwrap());
    let fits = manifest("cf-q-free/r0", "qf-100", &[("qf-own-100", 7)], &[]);
    push(&*store, &fits).await.unwrap();
    let over = manifest("cf-q-free/r0", "qf-101", &[("qf-own-101", 7)], &[]);
    assert!(matches!(
        push(&*store, &over).await,
        Err(PutManifestError::QuotaExceeded(_))
    ));
    assert_eq!(used(&*store, id).await, limit as u64);
    assert_clean(&*store).await;
}
