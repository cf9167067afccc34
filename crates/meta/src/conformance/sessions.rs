//! Checks of [`crate::SessionStore`]: browser sessions, their end and their purge.

use crate::Metadata;
use crate::StoredSession;

/// Runs the session checks.
pub(super) async fn run(store: &dyn Metadata) {
    sessions_last_until_they_end(store).await;
    ended_sessions_are_purged(store).await;
}

/// A session of `username` with an id hash made of `label`, ending at `expires_at`.
fn session(label: &str, username: &str, expires_at: i64) -> StoredSession {
    StoredSession {
        id_hash: format!("cf-session-{label}"),
        username: username.into(),
        csrf_hash: format!("cf-csrf-{label}"),
        expires_at,
    }
}

/// A session is found until its end, exclusive; it ends alone, or with every session of
/// its account.
async fn sessions_last_until_they_end(store: &dyn Metadata) {
    let first = session("first", "cf-sess-ann", 1000);
    let second = session("second", "cf-sess-ann", 2000);
    let other = session("other", "cf-sess-bob", 3000);
    for s in [&first, &second, &other] {
        store.create_session(s).await.unwrap();
    }
    let found = async |s: &StoredSession, now| store.session(&s.id_hash, now).await.unwrap();
    assert_eq!(found(&first, 999).await.as_ref(), Some(&first));
    assert_eq!(found(&first, 1000).await, None, "it ends at its end");
    assert_eq!(store.session("cf-session-none", 0).await.unwrap(), None);

    assert!(store.end_session(&second.id_hash).await.unwrap());
    assert!(!store.end_session(&second.id_hash).await.unwrap());
    assert_eq!(found(&second, 0).await, None);
    assert_eq!(store.end_sessions_of("cf-sess-ann").await.unwrap(), 1);
    assert_eq!(found(&first, 0).await, None);
    assert_eq!(store.end_sessions_of("cf-sess-ann").await.unwrap(), 0);
    assert_eq!(found(&other, 0).await.as_ref(), Some(&other));
}

/// A purge deletes the sessions ended by its time, says how many, and keeps the others.
async fn ended_sessions_are_purged(store: &dyn Metadata) {
    let sessions = [
        session("old", "cf-sess-carl", 500),
        session("at the limit", "cf-sess-carl", 600),
        session("later", "cf-sess-carl", 5000),
    ];
    for s in &sessions {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(store.purge_sessions(600).await.unwrap(), 2);
    for (s, kept) in sessions.iter().zip([false, false, true]) {
        let found = store.session(&s.id_hash, 0).await.unwrap();
        assert_eq!(found.is_some(), kept, "{}", s.id_hash);
    }
    assert_eq!(store.purge_sessions(600).await.unwrap(), 0);
    assert_eq!(store.end_sessions_of("cf-sess-carl").await.unwrap(), 1);
}
