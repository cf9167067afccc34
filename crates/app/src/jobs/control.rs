//! A run's line to the queue: its checkpoints and its log, under its lease.

use std::sync::Arc;

use async_trait::async_trait;
use berth_meta::{Checkpoint, JobError, JobStore, Lease};

use crate::Clock;

/// What a run tells the queue about itself while it works.
#[async_trait]
pub trait JobControl: Send + Sync {
    /// Saves the run's progress; answers whether a stop was requested.
    async fn checkpoint(&self, progress: &str) -> Result<Checkpoint, JobError>;
    /// Appends lines to the job's log.
    async fn log(&self, lines: &[String]) -> Result<(), JobError>;
}

/// The control of a claimed run: the job store, under the claim's lease.
pub(super) struct LeaseControl {
    pub store: Arc<dyn JobStore>,
    pub lease: Lease,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl JobControl for LeaseControl {
    async fn checkpoint(&self, progress: &str) -> Result<Checkpoint, JobError> {
        self.store
            .checkpoint(&self.lease, progress, self.clock.now_ms())
            .await
    }

    async fn log(&self, lines: &[String]) -> Result<(), JobError> {
        self.store
            .append_job_log(&self.lease, lines, self.clock.now_ms())
            .await
    }
}
