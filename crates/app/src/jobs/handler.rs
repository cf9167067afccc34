//! What a kind of job does, and what a run is given to do it with.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use berth_meta::{Checkpoint, ClaimedJob, JobId, JobStore};

use crate::Clock;
use crate::jobs::control::{JobControl, LeaseControl};

/// Why a run failed; the queue retries it as the job's retry policy says.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The work is done: the job succeeded.
    Done,
    /// The run ended early because a checkpoint answered that a stop was requested: the
    /// job ends stopped and is not run again.
    Stopped,
}

/// The job a handler runs, and its line to the queue.
#[derive(Clone)]
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
    /// The last checkpoint an earlier run of the job saved: where this run resumes.
    pub progress: Option<String>,
    /// Where this run's checkpoints and log lines go.
    pub control: Arc<dyn JobControl>,
}

impl JobContext {
    /// The context of `job`, claimed from `store`: its checkpoints and log lines are
    /// stored under the claim's lease, at `clock`'s times.
    pub fn claimed(job: ClaimedJob, store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        JobContext {
            id: job.lease.job,
            kind: job.kind,
            payload: job.payload,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            progress: job.progress,
            control: Arc::new(LeaseControl {
                store,
                lease: job.lease,
                clock,
            }),
        }
    }

    /// Saves `progress` (the handler's own text, e.g. JSON), which a later run of the job
    /// resumes from; answers whether a stop was requested, in which case the handler
    /// should return [`Finished::Stopped`] soon. A lost lease is an error: the run must
    /// end.
    pub async fn checkpoint(&self, progress: &str) -> Result<Checkpoint, HandlerError> {
        Ok(self.control.checkpoint(progress).await?)
    }

    /// Appends `lines` to the job's log. A lost lease is an error: the run must end.
    pub async fn log<I>(&self, lines: I) -> Result<(), HandlerError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let lines: Vec<String> = lines.into_iter().map(Into::into).collect();
        Ok(self.control.log(&lines).await?)
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("payload", &self.payload)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Runs the jobs of one kind.
///
/// A run may be cut short at any await (its lease was taken over, or the node stops)
/// and a job may run again after a run that did its work but was not recorded as done,
/// so a handler must leave things consistent when dropped and tolerate running twice.
/// A long run saves checkpoints ([`JobContext::checkpoint`]) so that the next run
/// resumes where it stopped, and ends with [`Finished::Stopped`] when one answers that a
/// stop was requested; a handler that never checkpoints runs to its end.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Does the job's work.
    async fn run(&self, job: &JobContext) -> Result<Finished, HandlerError>;
}
