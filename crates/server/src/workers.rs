//! Work of one node that is not the cluster's: stamping its batched pull times. The
//! cluster's background work runs on the job queue (`jobs.rs`).

use std::sync::Arc;
use std::time::Duration;

use berth_app::Registry;
use tokio::sync::watch;

/// How often batched pull times are written.
const PULL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Runs until `shutdown` flips, then flushes pending pull times once more.
pub async fn run(registry: Arc<Registry>, mut shutdown: watch::Receiver<bool>) {
    let mut flush = tokio::time::interval(PULL_FLUSH_INTERVAL);
    loop {
        tokio::select! {
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
