//! Background work of one node: purging stale uploads, stamping pull times, dropping
//! audit entries past their retention, and noticing changes other nodes made to
//! accounts, projects and settings.

use std::sync::Arc;
use std::time::Duration;

use berth_app::identity::Identity;
use berth_app::{Clock, Registry};
use berth_meta::AuditStore;
use tokio::sync::watch;

/// How often batched pull times are written.
const PULL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// How often old audit entries are looked for.
const AUDIT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the store is asked whether another node changed accounts, projects or
/// settings: the longest such a change goes unseen by this node's caches.
const CHANGE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Audit entries older than `keep` are deleted.
pub struct AuditRetention {
    /// The audit log.
    pub store: Arc<dyn AuditStore>,
    /// How long entries are kept.
    pub keep: Duration,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// Runs until `shutdown` flips, then flushes pending pull times once more.
pub async fn run(
    registry: Arc<Registry>,
    identity: Arc<Identity>,
    purge_every: Duration,
    retention: Option<AuditRetention>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut purge = tokio::time::interval(purge_every);
    let mut flush = tokio::time::interval(PULL_FLUSH_INTERVAL);
    let mut audit = tokio::time::interval(AUDIT_PURGE_INTERVAL);
    let mut changes = tokio::time::interval(CHANGE_POLL_INTERVAL);
    let mut change_mark = None;
    loop {
        tokio::select! {
            _ = changes.tick() => {
                if let Err(e) = identity.follow_changes(&mut change_mark).await {
                    tracing::warn!(error = %e, "checking for changes made by other nodes failed");
                }
            }
            _ = audit.tick(), if retention.is_some() => {
                if let Some(r) = &retention {
                    purge_audit(r).await;
                }
            }
            _ = purge.tick() => match registry.purge_stale_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged stale uploads"),
                Err(e) => tracing::warn!(error = %e, "purging stale uploads failed"),
            },
            _ = flush.tick() => flush_pulls(&registry).await,
            _ = shutdown.changed() => break,
        }
    }
    flush_pulls(&registry).await;
}

async fn purge_audit(retention: &AuditRetention) {
    let keep_ms = i64::try_from(retention.keep.as_millis()).unwrap_or(i64::MAX);
    let before = retention.clock.now_ms().saturating_sub(keep_ms);
    match retention.store.purge_audit(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "deleted audit entries past their retention"),
        Err(e) => tracing::warn!(error = %e, "deleting old audit entries failed"),
    }
}

async fn flush_pulls(registry: &Registry) {
    if let Err(e) = registry.flush_pulls().await {
        tracing::warn!(error = %e, "recording pull times failed");
    }
}
