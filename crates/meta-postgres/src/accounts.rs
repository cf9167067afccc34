//! Users.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ListQuery, Listed, MetaError, NewUser, ProfileUpdate, User, UserError, UserField,
    UserStore,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{Lock, PgMetaStore, columns, db_err, unique_violation};

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

fn user_row(r: &PgRow) -> Result<User, MetaError> {
    let (id, username, email, realname, comment, password_hash, sysadmin, created_at, updated_at) =
        columns(r)?;
    Ok(User {
        id,
        username,
        email,
        realname,
        comment,
        password_hash,
        sysadmin,
        created_at,
        updated_at,
    })
}

/// Names the unique field a failed insert or update collided on.
fn user_conflict(e: sqlx::Error, username: &str, email: &str) -> UserError {
    match unique_violation(&e) {
        Some("users_username_key") => UserError::NameTaken(username.to_owned()),
        Some("users_email") => UserError::EmailTaken(email.to_owned()),
        _ => UserError::Meta(db_err(e)),
    }
}

async fn insert_user(c: &mut PgConnection, user: &NewUser, now: i64) -> Result<i64, UserError> {
    sqlx::query_scalar(
        "INSERT INTO users (username, email, realname, comment, password_hash, sysadmin,
                            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.realname)
    .bind(&user.comment)
    .bind(&user.password_hash)
    .bind(user.sysadmin)
    .bind(now)
    .fetch_one(c)
    .await
    .map_err(|e| user_conflict(e, &user.username, &user.email))
}

impl PgMetaStore {
    /// Runs `sql` (an update of user `$1` to `$2` at `$3`) and records `audit` when it
    /// changed something, in one transaction.
    async fn update_user<'q, T>(
        &self,
        sql: &'q str,
        id: i64,
        value: T,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>
    where
        T: 'q + Send + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let mut tx = self.durable().await?;
        let changed = sqlx::query(sql)
            .bind(id)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(db_err)?;
        audited(&mut tx, changed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }
}

#[async_trait]
impl UserStore for PgMetaStore {
    async fn create_user(
        &self,
        user: &NewUser,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, UserError> {
        let mut tx = self.durable().await?;
        let id = insert_user(&mut tx, user, now).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn create_first_admin(&self, user: &NewUser, now: i64) -> Result<bool, UserError> {
        let mut tx = self.durable().await?;
        // Nodes starting together take turns: the second sees the first one's account.
        Lock::FirstAdmin.exclusive(&mut tx).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE sysadmin)")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists {
            return Ok(false);
        }
        let id = insert_user(&mut tx, user, now).await?;
        sqlx::query("UPDATE projects SET owner_id = $1 WHERE owner_id IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn user(&self, id: i64) -> Result<Option<User>, MetaError> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, MetaError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(user_row)
        .transpose()
    }

    async fn list_users(&self, query: &ListQuery<UserField>) -> Result<Listed<User>, MetaError> {
        let clauses = Clauses::new(query, "TRUE", Vec::new(), "id");
        list(&self.pool, "users", USER_COLUMNS, &clauses, query, user_row).await
    }

    async fn update_profile(
        &self,
        id: i64,
        update: &ProfileUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, UserError> {
        let mut tx = self.durable().await?;
        let changed = sqlx::query(
            "UPDATE users SET email = coalesce($2, email),
                              realname = coalesce($3, realname),
                              comment = coalesce($4, comment),
                              updated_at = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(&update.email)
        .bind(&update.realname)
        .bind(&update.comment)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(|e| user_conflict(e, "", update.email.as_deref().unwrap_or("")))?;
        audited(&mut tx, changed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }

    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.update_user(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
            id,
            password_hash,
            now,
            audit,
        )
        .await
    }

    async fn set_sysadmin(
        &self,
        id: i64,
        sysadmin: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        self.update_user(
            "UPDATE users SET sysadmin = $2, updated_at = $3 WHERE id = $1",
            id,
            sysadmin,
            now,
            audit,
        )
        .await
    }

    async fn delete_user(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        // The account goes first: a membership being added meanwhile holds the account's
        // row (see `projects::insert_member`), so it is either refused or committed
        // before the memberships are deleted, never left behind.
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(db_err)?;
        sqlx::query("DELETE FROM project_members WHERE entity_type = 'u' AND entity_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        audited(&mut tx, deleted, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }
}
