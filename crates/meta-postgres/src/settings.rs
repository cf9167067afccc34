//! System settings.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_meta::{AuditEntry, MetaError, SettingsStore};

use crate::audit::insert_audit;
use crate::{PgMetaStore, db_err};

impl PgMetaStore {
    /// Runs `sql` (an insert of the rows `($1[i], $2[i])`) over `values`, and records
    /// `audit`, in one transaction.
    async fn write_settings(
        &self,
        values: &BTreeMap<String, String>,
        sql: &'static str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), MetaError> {
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        let texts: Vec<&str> = values.values().map(String::as_str).collect();
        let mut tx = self.durable().await?;
        sqlx::query(sql)
            .bind(&keys[..])
            .bind(&texts[..])
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl SettingsStore for PgMetaStore {
    async fn settings(&self) -> Result<BTreeMap<String, String>, MetaError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM settings")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().collect())
    }

    async fn put_settings(
        &self,
        values: &BTreeMap<String, String>,
        audit: &AuditEntry,
    ) -> Result<(), MetaError> {
        self.write_settings(
            values,
            "INSERT INTO settings (key, value)
             SELECT key, value FROM unnest($1::text[], $2::text[]) AS s(key, value)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            Some(audit),
        )
        .await
    }

    async fn init_settings(&self, values: &BTreeMap<String, String>) -> Result<(), MetaError> {
        self.write_settings(
            values,
            "INSERT INTO settings (key, value)
             SELECT key, value FROM unnest($1::text[], $2::text[]) AS s(key, value)
             ON CONFLICT (key) DO NOTHING",
            None,
        )
        .await
    }
}
