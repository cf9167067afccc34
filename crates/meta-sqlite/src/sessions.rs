//! Browser sessions.

use async_trait::async_trait;
use berth_meta::{MetaError, SessionStore, StoredSession};
use rusqlite::{OptionalExtension, params};

use crate::{SqliteMetaStore, db_err};

#[async_trait]
impl SessionStore for SqliteMetaStore {
    async fn create_session(&self, session: &StoredSession) -> Result<(), MetaError> {
        let s = session.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    "INSERT INTO sessions (id_hash, username, csrf_hash, expires_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![s.id_hash, s.username, s.csrf_hash, s.expires_at],
                )
                .map(drop)
                .map_err(db_err)
            })
            .await
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<StoredSession>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(
                "SELECT id_hash, username, csrf_hash, expires_at FROM sessions
                 WHERE id_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![id_hash, now], |r| {
                Ok(StoredSession {
                    id_hash: r.get(0)?,
                    username: r.get(1)?,
                    csrf_hash: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .optional()
        })
    }

    async fn end_session(&self, id_hash: &str) -> Result<bool, MetaError> {
        let id_hash = id_hash.to_owned();
        self.writer
            .run(move |c| {
                c.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])
                    .map(|n| n > 0)
                    .map_err(db_err)
            })
            .await
    }

    async fn end_sessions_of(&self, username: &str) -> Result<u64, MetaError> {
        let username = username.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "DELETE FROM sessions WHERE username = ?1",
                    params![username],
                )
                .map(|n| n as u64)
                .map_err(db_err)
            })
            .await
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, MetaError> {
        self.writer
            .run(move |c| {
                c.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])
                    .map(|n| n as u64)
                    .map_err(db_err)
            })
            .await
    }
}
