//! Claims on upload sessions: one writer at a time across nodes, lapsing when the
//! holder stops renewing, and the proof of who hashed the bytes.

use berth_oci::{Algorithm, RepositoryName, UploadId};

use super::support::advance;
use crate::{MetaStore, SessionLimits, UploadLease, UploadSession};

const ROOMY: SessionLimits = SessionLimits {
    total: 1000,
    per_repository: 1000,
};

/// Runs the lease checks on `store`.
pub(super) async fn run(store: &dyn MetaStore) {
    one_holder_at_a_time(store).await;
    a_writer_other_than_the_first_ends_its_vouching(store).await;
    a_granted_claim_counts_the_bytes_of_open_sessions(store).await;
}

fn session(id: &UploadId, verified_by: Option<i64>) -> UploadSession {
    UploadSession {
        id: id.clone(),
        repository: RepositoryName::parse("leases/r").unwrap(),
        algorithm: Algorithm::Sha256,
        offset: 0,
        hash_state: vec![0],
        verified_by,
        verified_digest: None,
        created_at: 1,
        updated_at: 1,
    }
}

async fn one_holder_at_a_time(store: &dyn MetaStore) {
    let id = UploadId::from_random([40; 16]);
    store
        .create_upload(&session(&id, None), ROOMY)
        .await
        .unwrap();
    let (a, b) = (1, 2);
    let stored = store.upload(&id).await.unwrap().unwrap();
    assert!(
        matches!(
            store.lease_upload(&id, a, 100, 200).await.unwrap(),
            UploadLease::Granted(granted) if granted.session == stored
        ),
        "a granted claim comes with the session"
    );
    assert_eq!(
        store.lease_upload(&id, b, 150, 250).await.unwrap(),
        UploadLease::Held
    );
    // The holder renews its own claim.
    assert!(matches!(
        store.lease_upload(&id, a, 190, 300).await.unwrap(),
        UploadLease::Granted(_)
    ));
    assert_eq!(
        store.lease_upload(&id, b, 250, 350).await.unwrap(),
        UploadLease::Held
    );
    // A claim lapses at its end; the next holder takes it, and the lapsed holder's
    // release does not end the new claim.
    assert!(matches!(
        store.lease_upload(&id, b, 300, 400).await.unwrap(),
        UploadLease::Granted(_)
    ));
    store.release_upload(&id, a).await.unwrap();
    assert_eq!(
        store.lease_upload(&id, a, 310, 410).await.unwrap(),
        UploadLease::Held
    );
    // A renewal extends only a claim still held: a lapsed holder's renewal fails even
    // once the claim is free again.
    assert!(store.renew_upload_lease(&id, b, 450).await.unwrap());
    assert!(!store.renew_upload_lease(&id, a, 460).await.unwrap());
    assert_eq!(
        store.lease_upload(&id, a, 420, 520).await.unwrap(),
        UploadLease::Held
    );
    // A release ends the claim at once.
    store.release_upload(&id, b).await.unwrap();
    assert!(!store.renew_upload_lease(&id, b, 470).await.unwrap());
    assert!(matches!(
        store.lease_upload(&id, a, 320, 420).await.unwrap(),
        UploadLease::Granted(_)
    ));
    assert!(store.delete_upload(&id, 1000).await.unwrap());
    assert_eq!(
        store.lease_upload(&id, a, 330, 430).await.unwrap(),
        UploadLease::Missing
    );
    store.release_upload(&id, a).await.unwrap();
}

async fn a_writer_other_than_the_first_ends_its_vouching(store: &dyn MetaStore) {
    let id = UploadId::from_random([41; 16]);
    store
        .create_upload(&session(&id, Some(7)), ROOMY)
        .await
        .unwrap();
    assert!(
        store
            .advance_upload(&id, &advance(0, 3, 1, 7, 10))
            .await
            .unwrap()
    );
    let same = store.upload(&id).await.unwrap().unwrap();
    assert_eq!(same.verified_by, Some(7), "the same writer keeps vouching");
    assert!(
        store
            .advance_upload(&id, &advance(3, 6, 2, 8, 11))
            .await
            .unwrap()
    );
    let other = store.upload(&id).await.unwrap().unwrap();
    assert_eq!(other.verified_by, None, "no one process wrote every byte");
    assert!(
        store
            .advance_upload(&id, &advance(6, 9, 3, 7, 12))
            .await
            .unwrap()
    );
    let back = store.upload(&id).await.unwrap().unwrap();
    assert_eq!(back.verified_by, None, "nor after the first writes again");
    assert!(store.delete_upload(&id, 1000).await.unwrap());
}

/// The bytes of all open sessions, as a claim on `id` granted now reads them.
async fn open_bytes(store: &dyn MetaStore, id: &UploadId) -> u64 {
    let UploadLease::Granted(granted) = store.lease_upload(id, 9, 1_000, 1_100).await.unwrap()
    else {
        panic!("the claim on {id} is not granted");
    };
    store.release_upload(id, 9).await.unwrap();
    granted.open_bytes
}

async fn a_granted_claim_counts_the_bytes_of_open_sessions(store: &dyn MetaStore) {
    let (first, second) = (
        UploadId::from_random([42; 16]),
        UploadId::from_random([43; 16]),
    );
    for id in [&first, &second] {
        store
            .create_upload(&session(id, None), ROOMY)
            .await
            .unwrap();
    }
    // Sessions other checks left open count too.
    let others = open_bytes(store, &first).await;
    assert!(
        store
            .advance_upload(&first, &advance(0, 5, 1, 7, 10))
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_upload(&second, &advance(0, 3, 1, 7, 10))
            .await
            .unwrap()
    );
    assert_eq!(
        open_bytes(store, &second).await,
        others + 8,
        "every open session counts"
    );
    assert!(store.delete_upload(&first, 1000).await.unwrap());
    assert_eq!(
        open_bytes(store, &second).await,
        others + 3,
        "an ended session counts no more"
    );
    assert!(store.delete_upload(&second, 1000).await.unwrap());
}
