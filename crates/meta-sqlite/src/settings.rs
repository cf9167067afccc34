//! System settings.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_meta::{AuditEntry, MetaError, SettingsStore};
use rusqlite::params;

use crate::audit::insert_audit;
use crate::{SqliteMetaStore, db_err};

impl SqliteMetaStore {
    async fn write_settings(
        &self,
        values: &BTreeMap<String, String>,
        sql: &'static str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), MetaError> {
        let (values, audit) = (values.clone(), audit.cloned());
        self.writer
            .run(move |c| {
                let mut s = c.prepare_cached(sql).map_err(db_err)?;
                for (key, value) in &values {
                    s.execute(params![key, value]).map_err(db_err)?;
                }
                audit.map_or(Ok(()), |a| insert_audit(c, &a))
            })
            .await
    }
}

#[async_trait]
impl SettingsStore for SqliteMetaStore {
    async fn settings(&self) -> Result<BTreeMap<String, String>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached("SELECT key, value FROM settings")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    async fn put_settings(
        &self,
        values: &BTreeMap<String, String>,
        audit: &AuditEntry,
    ) -> Result<(), MetaError> {
        self.write_settings(
            values,
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            Some(audit),
        )
        .await
    }

    async fn init_settings(&self, values: &BTreeMap<String, String>) -> Result<(), MetaError> {
        self.write_settings(
            values,
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            None,
        )
        .await
    }
}
