//! Upload ids: an id is taken while it has a session, and an ended id (completed or
//! deleted, with a session or without) is remembered as ended, never opened again,
//! until it is purged.

use std::sync::Arc;

use berth_oci::UploadId;

use super::support::{digest, new_pin, repo, upload_session};
use crate::{CreateUploadError, MetaStore, Metadata, PinOutcome, SessionLimits, UploadSession};

/// Runs the upload-id checks.
pub(super) async fn run(store: Arc<dyn Metadata>) {
    completed_and_deleted_ids_are_ended(&*store).await;
    an_id_without_a_session_is_ended_once(&*store).await;
    an_id_with_a_session_is_taken(&*store).await;
    concurrent_recordings_of_one_id_record_it_once(store.clone()).await;
    a_purge_forgets_only_ids_ended_before_it(&*store).await;
}

/// A new session of the upload checks' repository, its id made of `n`.
fn session(n: u8) -> UploadSession {
    upload_session(n, &repo("cf-ids/r"))
}

/// Asserts that `id` is ended: it opens no session again, neither by its first chunk nor
/// as it completes, and records nothing.
async fn assert_ended(store: &dyn MetaStore, id: &UploadId) {
    assert!(store.upload_ended(id).await.unwrap(), "{id} is ended");
    let again = UploadSession {
        id: id.clone(),
        ..session(0)
    };
    assert!(
        matches!(
            store.create_upload(&again, SessionLimits::NONE).await,
            Err(CreateUploadError::Taken)
        ),
        "{id} is not created again"
    );
    let mut completing = new_pin(0, &again.repository, &digest("cf-ids-again"), 3);
    completing.session.id = id.clone();
    let pinned = store.pin_new_upload(&completing).await.unwrap();
    assert_eq!(
        pinned.outcome,
        PinOutcome::NoSession,
        "{id} is not recorded again"
    );
    assert_eq!(store.upload(id).await.unwrap(), None, "{id} has no session");
}

/// Ids completed (into a new repository, then into one that exists) and deleted are
/// ended.
async fn completed_and_deleted_ids_are_ended(store: &dyn MetaStore) {
    let (into_new, into_existing, deleted) = (session(90), session(97), session(91));
    for s in [&into_new, &into_existing, &deleted] {
        store.create_upload(s, SessionLimits::NONE).await.unwrap();
        assert!(!store.upload_ended(&s.id).await.unwrap(), "open, not ended");
    }
    for (s, blob) in [
        (&into_new, "cf-ids-new"),
        (&into_existing, "cf-ids-existing"),
    ] {
        store
            .complete_upload(&s.id, &s.repository, &digest(blob), 4, 20)
            .await
            .unwrap();
    }
    assert!(store.delete_upload(&deleted.id, 20).await.unwrap());
    for s in [&into_new, &into_existing, &deleted] {
        assert_ended(store, &s.id).await;
    }
    assert!(
        !store.delete_upload(&into_new.id, 21).await.unwrap(),
        "a completed id is no longer open"
    );
}

async fn an_id_without_a_session_is_ended_once(store: &dyn MetaStore) {
    let id = UploadId::from_random([92; 16]);
    assert!(!store.upload_ended(&id).await.unwrap());
    assert!(
        store.delete_upload(&id, 30).await.unwrap(),
        "an id never recorded was open"
    );
    assert_ended(store, &id).await;
    assert!(!store.delete_upload(&id, 31).await.unwrap(), "ended once");
}

async fn an_id_with_a_session_is_taken(store: &dyn MetaStore) {
    let open = session(93);
    store
        .create_upload(&open, SessionLimits::NONE)
        .await
        .unwrap();
    let again = UploadSession {
        offset: 7,
        ..open.clone()
    };
    assert!(matches!(
        store.create_upload(&again, SessionLimits::NONE).await,
        Err(CreateUploadError::Taken)
    ));
    assert_eq!(
        store.upload(&open.id).await.unwrap().as_ref(),
        Some(&open),
        "a refused creation changes nothing"
    );
    assert!(!store.upload_ended(&open.id).await.unwrap());
    assert!(store.delete_upload(&open.id, 40).await.unwrap());
}

/// Creations and recordings as it completes of one id, racing each other: exactly one
/// records the session, the others find the id taken.
async fn concurrent_recordings_of_one_id_record_it_once(store: Arc<dyn Metadata>) {
    let first = session(94);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, first) = (store.clone(), first.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    match store.create_upload(&first, SessionLimits::NONE).await {
                        Ok(()) => true,
                        Err(CreateUploadError::Taken) => false,
                        Err(e) => panic!("{e}"),
                    }
                } else {
                    let pin = new_pin(94, &first.repository, &digest("cf-ids-race"), 2);
                    match store.pin_new_upload(&pin).await.unwrap().outcome {
                        PinOutcome::Pinned => true,
                        PinOutcome::Taken => false,
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut recorded = 0;
    for task in tasks {
        recorded += usize::from(task.await.unwrap());
    }
    assert_eq!(recorded, 1, "one recording wins");
    assert!(store.delete_upload(&first.id, 50).await.unwrap());
}

async fn a_purge_forgets_only_ids_ended_before_it(store: &dyn MetaStore) {
    // Later than any other check ends an id: first, whatever they ended goes.
    let at = 1 << 40;
    store.purge_ended_uploads(at).await.unwrap();
    let (early, late) = (
        UploadId::from_random([95; 16]),
        UploadId::from_random([96; 16]),
    );
    assert!(store.delete_upload(&early, at).await.unwrap());
    assert!(store.delete_upload(&late, at + 10).await.unwrap());
    assert_eq!(store.purge_ended_uploads(at).await.unwrap(), 0);
    assert_eq!(store.purge_ended_uploads(at + 10).await.unwrap(), 1);
    assert!(!store.upload_ended(&early).await.unwrap(), "forgotten");
    assert!(store.upload_ended(&late).await.unwrap(), "ended since");
    assert_eq!(store.purge_ended_uploads(at + 10).await.unwrap(), 0);
    assert_eq!(store.purge_ended_uploads(at + 11).await.unwrap(), 1);
    assert!(!store.upload_ended(&late).await.unwrap());
}
