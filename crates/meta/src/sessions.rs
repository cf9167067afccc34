//! Browser sessions, stored so that every node knows them and a logout ends them.

use async_trait::async_trait;

use crate::store::MetaError;

/// A stored session. Only hashes of its id and CSRF token are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Hash of the session id (the cookie's value).
    pub id_hash: String,
    /// The account's name.
    pub username: String,
    /// Hash of the session's CSRF token.
    pub csrf_hash: String,
    /// When it ends (Unix milliseconds).
    pub expires_at: i64,
}

/// Browser sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &StoredSession) -> Result<(), MetaError>;
    /// The session with this id hash, if `now` is before its end (`expires_at`).
    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<StoredSession>, MetaError>;
    /// Ends a session; returns whether it existed.
    async fn end_session(&self, id_hash: &str) -> Result<bool, MetaError>;
    /// Ends every session of `username` (after its password changed or it was
    /// deleted); returns how many.
    async fn end_sessions_of(&self, username: &str) -> Result<u64, MetaError>;
    /// Deletes the sessions ended at `now` (`expires_at <= now`); returns how many.
    async fn purge_sessions(&self, now: i64) -> Result<u64, MetaError>;
}
