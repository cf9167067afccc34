//! Work of one node that is not the cluster's: stamping its batched pull times, and
//! noticing changes other nodes made to accounts, projects and settings. The cluster's
//! background work runs on the job queue (`jobs.rs`).

use std::sync::Arc;
use std::time::Duration;

use berth_app::Registry;
use berth_app::identity::Identity;
use tokio::sync::watch;

/// How often batched pull times are written.
const PULL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the store is asked whether another node changed accounts, projects or
/// settings: the longest such a change goes unseen by this node's caches.
const CHANGE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until `shutdown` flips, then flushes pending pull times once more.
pub async fn run(
    registry: Arc<Registry>,
    identity: Arc<Identity>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut flush = tokio::time::interval(PULL_FLUSH_INTERVAL);
    let mut changes = tokio::time::interval(CHANGE_POLL_INTERVAL);
    let mut change_mark = None;
    loop {
        tokio::select! {
            _ = changes.tick() => {
                if let Err(e) = identity.follow_changes(&mut change_mark).await {
                    tracing::warn!(error = %e, "checking for changes made by other nodes failed");
                }
            }
            _ = flush.tick() => flush_pulls(&registry).await,
            _ = shutdown.changed() => break,
        }
    }
    flush_pulls(&registry).await;
}

async fn flush_pulls(registry: &Registry) {
    if let Err(e) = registry.flush_pulls().await {
        tracing::warn!(error = %e, "recording pull times failed");
    }
}
