//! Background work of one node: purging stale uploads and stamping pull times.

use std::sync::Arc;
use std::time::Duration;

use berth_app::Registry;
use tokio::sync::watch;

/// How often batched pull times are written.
const PULL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Runs until `shutdown` flips, then flushes pending pull times once more.
pub async fn run(
    registry: Arc<Registry>,
    purge_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut purge = tokio::time::interval(purge_every);
    let mut flush = tokio::time::interval(PULL_FLUSH_INTERVAL);
    loop {
        tokio::select! {
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

async fn flush_pulls(registry: &Registry) {
    if let Err(e) = registry.flush_pulls().await {
        tracing::warn!(error = %e, "recording pull times failed");
    }
}
