//! Browser sessions.

use async_trait::async_trait;
use berth_meta::{MetaError, SessionStore, StoredSession};

use crate::{PgMetaStore, db_err};

impl PgMetaStore {
    /// Runs a deletion of sessions with one parameter; returns how many went.
    async fn delete_sessions<'q, T>(&self, sql: &'q str, key: T) -> Result<u64, MetaError>
    where
        T: 'q + Send + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        sqlx::query(sql)
            .bind(key)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(db_err)
    }
}

#[async_trait]
impl SessionStore for PgMetaStore {
    async fn create_session(&self, session: &StoredSession) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, username, csrf_hash, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.id_hash)
        .bind(&session.username)
        .bind(&session.csrf_hash)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(db_err)
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<StoredSession>, MetaError> {
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id_hash, username, csrf_hash, expires_at FROM sessions
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(
            row.map(|(id_hash, username, csrf_hash, expires_at)| StoredSession {
                id_hash,
                username,
                csrf_hash,
                expires_at,
            }),
        )
    }

    async fn end_session(&self, id_hash: &str) -> Result<bool, MetaError> {
        self.delete_sessions("DELETE FROM sessions WHERE id_hash = $1", id_hash)
            .await
            .map(|n| n > 0)
    }

    async fn end_sessions_of(&self, username: &str) -> Result<u64, MetaError> {
        self.delete_sessions("DELETE FROM sessions WHERE username = $1", username)
            .await
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, MetaError> {
        self.delete_sessions("DELETE FROM sessions WHERE expires_at <= $1", now)
            .await
    }
}
