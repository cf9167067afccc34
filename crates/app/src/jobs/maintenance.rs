//! The registry's own recurring work, as job handlers: the upload purge, audit
//! retention and the job history.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_meta::{AuditStore, JobStore};

use crate::jobs::handler::{Finished, HandlerError, JobContext, JobHandler};
use crate::{Clock, Registry};

/// `now` less `keep`, in Unix milliseconds.
fn cutoff(clock: &dyn Clock, keep: Duration) -> i64 {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    clock.now_ms().saturating_sub(keep_ms)
}

/// Removes idle upload sessions and stray upload bytes (`Registry::purge_stale_uploads`).
pub struct UploadPurge(pub Arc<Registry>);

impl UploadPurge {
    /// The job kind, and the name of its schedule.
    pub const KIND: &str = "upload-purge";
}

#[async_trait]
impl JobHandler for UploadPurge {
    async fn run(&self, _job: &JobContext) -> Result<Finished, HandlerError> {
        let purged = self.0.purge_stale_uploads().await?;
        if purged > 0 {
            tracing::info!(purged, "purged stale uploads");
        }
        Ok(Finished::Done)
    }
}

/// Deletes audit entries older than the retention.
pub struct AuditRetention {
    /// The audit log.
    pub store: Arc<dyn AuditStore>,
    /// How long entries are kept.
    pub keep: Duration,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl AuditRetention {
    /// The job kind, and the name of its schedule.
    pub const KIND: &str = "audit-retention";
}

#[async_trait]
impl JobHandler for AuditRetention {
    async fn run(&self, _job: &JobContext) -> Result<Finished, HandlerError> {
        let deleted = self
            .store
            .purge_audit(cutoff(&*self.clock, self.keep))
            .await?;
        if deleted > 0 {
            tracing::info!(deleted, "deleted audit entries past their retention");
        }
        Ok(Finished::Done)
    }
}

/// Deletes jobs that ended longer ago than the history is kept.
pub struct JobHistory {
    /// The queue.
    pub store: Arc<dyn JobStore>,
    /// How long ended jobs are kept.
    pub keep: Duration,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl JobHistory {
    /// The job kind, and the name of its schedule.
    pub const KIND: &str = "job-history";
}

#[async_trait]
impl JobHandler for JobHistory {
    async fn run(&self, _job: &JobContext) -> Result<Finished, HandlerError> {
        let deleted = self
            .store
            .purge_finished_jobs(cutoff(&*self.clock, self.keep))
            .await?;
        if deleted > 0 {
            tracing::info!(deleted, "deleted ended jobs past the history's length");
        }
        Ok(Finished::Done)
    }
}
