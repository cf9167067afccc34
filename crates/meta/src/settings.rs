//! System settings shared by every node (Harbor's `/configurations`).

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::store::MetaError;

/// System settings as key → JSON value text.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Every stored setting.
    async fn settings(&self) -> Result<BTreeMap<String, String>, MetaError>;
    /// Stores each setting given, replacing earlier values, and records `audit`, in one
    /// transaction.
    async fn put_settings(
        &self,
        values: &BTreeMap<String, String>,
        audit: &AuditEntry,
    ) -> Result<(), MetaError>;
    /// Stores each setting that has no value yet (first start); existing values stay.
    async fn init_settings(&self, values: &BTreeMap<String, String>) -> Result<(), MetaError>;
}
