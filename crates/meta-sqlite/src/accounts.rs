//! Users.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ListQuery, Listed, MetaError, NewUser, ProfileUpdate, User, UserError, UserField,
    UserStore,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{Sequence, SqliteMetaStore, db_err, next_id, unique_violation};

const USER_COLUMNS: &str =
    "id, username, email, realname, comment, password_hash, sysadmin, created_at, updated_at";

impl Columns for UserField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            UserField::Username => ("username", false),
            UserField::Email => ("email", false),
            UserField::CreationTime => ("created_at", true),
            UserField::UpdateTime => ("updated_at", true),
        };
        Column { sql, numeric }
    }
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        realname: r.get(3)?,
        comment: r.get(4)?,
        password_hash: r.get(5)?,
        sysadmin: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

/// Names the unique field a failed insert or update collided on.
fn user_conflict(e: rusqlite::Error, username: &str, email: &str) -> UserError {
    match unique_violation(&e) {
        Some(m) if m.contains("users.username") => UserError::NameTaken(username.to_owned()),
        Some(m) if m.contains("users.email") => UserError::EmailTaken(email.to_owned()),
        _ => UserError::Meta(db_err(e)),
    }
}

fn insert_user(c: &Connection, user: &NewUser, now: i64) -> Result<i64, UserError> {
    let id = next_id(c, Sequence::Users)?;
    c.prepare_cached(
        "INSERT INTO users (username, email, realname, comment, password_hash, sysadmin,
                            created_at, updated_at, id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8) RETURNING id",
    )
    .and_then(|mut s| {
        s.query_row(
            params![
                user.username,
                user.email,
                user.realname,
                user.comment,
                user.password_hash,
                user.sysadmin,
                now,
                id
            ],
            |r| r.get(0),
        )
    })
    .map_err(|e| user_conflict(e, &user.username, &user.email))
}

fn touch_user(
    c: &Connection,
    sql: &str,
    id: i64,
    value: &dyn rusqlite::ToSql,
    now: i64,
) -> rusqlite::Result<bool> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![id, value, now]))
        .map(|n| n > 0)
}

#[async_trait]
impl UserStore for SqliteMetaStore {
    async fn create_user(
        &self,
        user: &NewUser,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, UserError> {
        let (user, audit) = (user.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let id = insert_user(c, &user, now)?;
                insert_audit(c, &audit)?;
                Ok(id)
            })
            .await
    }

    async fn create_first_admin(&self, user: &NewUser, now: i64) -> Result<bool, UserError> {
        let user = user.clone();
        self.writer
            .run(move |c| {
                let exists: bool = c
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM users WHERE sysadmin)",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if exists {
                    return Ok(false);
                }
                let id = insert_user(c, &user, now)?;
                c.execute(
                    "UPDATE projects SET owner_id = ?1 WHERE owner_id IS NULL",
                    params![id],
                )
                .map_err(db_err)?;
                Ok(true)
            })
            .await
    }

    async fn user(&self, id: i64) -> Result<Option<User>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
                .query_row(params![id], user_row)
                .optional()
        })
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
            ))?
            .query_row(params![username], user_row)
            .optional()
        })
    }

    async fn list_users(&self, query: &ListQuery<UserField>) -> Result<Listed<User>, MetaError> {
        let clauses = Clauses::new(query, "1", Vec::new(), "id");
        self.readers
            .with(|c| list(c, "users", USER_COLUMNS, &clauses, query, user_row))
    }

    async fn update_profile(
        &self,
        id: i64,
        update: &ProfileUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, UserError> {
        let (update, audit) = (update.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE users SET email = coalesce(?2, email),
                                      realname = coalesce(?3, realname),
                                      comment = coalesce(?4, comment),
                                      updated_at = ?5
                     WHERE id = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            id,
                            update.email,
                            update.realname,
                            update.comment,
                            now
                        ])
                    })
                    .map(|n| n > 0)
                    .map_err(|e| user_conflict(e, "", update.email.as_deref().unwrap_or("")))?;
                audited(c, changed, &audit).map_err(UserError::from)
            })
            .await
    }

    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (hash, audit) = (password_hash.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let changed = touch_user(
                    c,
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                    id,
                    &hash,
                    now,
                )
                .map_err(db_err)?;
                audited(c, changed, &audit)
            })
            .await
    }

    async fn set_sysadmin(
        &self,
        id: i64,
        sysadmin: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let changed = touch_user(
                    c,
                    "UPDATE users SET sysadmin = ?2, updated_at = ?3 WHERE id = ?1",
                    id,
                    &sysadmin,
                    now,
                )
                .map_err(db_err)?;
                audited(c, changed, &audit)
            })
            .await
    }

    async fn delete_user(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    "DELETE FROM project_members WHERE entity_type = 'u' AND entity_id = ?1",
                    params![id],
                )
                .map_err(db_err)?;
                let deleted = c
                    .execute("DELETE FROM users WHERE id = ?1", params![id])
                    .map(|n| n > 0)
                    .map_err(db_err)?;
                audited(c, deleted, &audit)
            })
            .await
    }
}
