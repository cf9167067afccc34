//! What a kind of job does.

use async_trait::async_trait;
use berth_meta::JobId;

/// Why a run failed; the queue retries it as the job's retry policy says.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The job a handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    /// The job's id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its input, as JSON text.
    pub payload: String,
    /// This run's number, from 1.
    pub attempt: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
}

/// Runs the jobs of one kind.
///
/// A run may be cut short at any await (its lease was taken over, or the node stops)
/// and a job may run again after a run that did its work but was not recorded as done,
/// so a handler must leave things consistent when dropped and tolerate running twice.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Does the job's work.
    async fn run(&self, job: &JobContext) -> Result<(), HandlerError>;
}
