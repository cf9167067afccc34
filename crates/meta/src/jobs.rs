//! The durable job queue: background work of the whole cluster, and the schedules that
//! put work on it.
//!
//! A job is a row. A runner claims a due job with a lease (an expiry time and a token
//! naming this claim), extends it with heartbeats while it works, and finishes it with
//! the token. Whoever holds the newest token is the job's only runner: when a lease
//! expires, another runner may claim the job, and from then on the old holder's
//! heartbeats and finish are refused. A schedule fires once per period cluster-wide:
//! advancing its next fire time (a compare-and-set on the time seen) and enqueueing its
//! job are one transaction, and the job's dedup key (`name@fire time`) is unique.
//!
//! A run can save its progress (checkpoints, which the next attempt resumes from) and
//! append to the job's log, both under its lease. A stop request ends a queued job at
//! once and flags a running one; its runner sees the flag at its next checkpoint and
//! ends the run as stopped. A flagged job is never run again: when its runner is lost,
//! the claim that would take it over ends it as stopped instead.
//!
//! Times are Unix milliseconds, given by the caller.

mod period;

use std::str::FromStr;

use async_trait::async_trait;

use crate::store::MetaError;

pub use period::{CronError, CronSchedule, Period, PeriodError};

/// A job's id; ids are never reused.
pub type JobId = i64;

/// What a job does and how often it is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Which handler runs it, e.g. `upload-purge`.
    pub kind: String,
    /// The handler's input, as JSON text.
    pub payload: String,
    /// How failures are retried.
    pub retry: RetryPolicy,
}

/// How a failed job is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs in all, the first included; a job that fails its last one stays failed.
    pub max_attempts: u32,
    /// Wait before the second run; each later wait doubles, up to [`MAX_BACKOFF_MS`].
    pub backoff_ms: i64,
}

/// The longest wait between two runs of a failing job (one hour).
pub const MAX_BACKOFF_MS: i64 = 3_600_000;

impl RetryPolicy {
    /// How long after its `attempt`-th run (counted from 1) failed a job waits.
    pub fn delay_after(&self, attempt: u32) -> i64 {
        let doublings = attempt.saturating_sub(1).min(32);
        self.backoff_ms
            .max(0)
            .saturating_mul(1_i64 << doublings)
            .min(MAX_BACKOFF_MS)
    }
}

impl Default for RetryPolicy {
    /// Three runs, a minute apart and then two.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_ms: 60_000,
        }
    }
}

/// A job to put on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What it does.
    pub spec: JobSpec,
    /// It is not run before this time.
    pub run_after: i64,
    /// When set, at most one job ever has this key: enqueueing it again finds the first.
    pub dedup_key: Option<String>,
}

/// What [`JobStore::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job.
    New(JobId),
    /// A job with the same dedup key was already there (in any state); nothing was added.
    Duplicate(JobId),
}

impl Enqueued {
    /// The job's id, new or found.
    pub fn id(self) -> JobId {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// The right to run a job, held by the runner that claimed it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// Names this claim; a later claim of the job gets another.
    pub token: String,
}

/// A job claimed for running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The lease to heartbeat and finish with.
    pub lease: Lease,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input, as JSON text.
    pub payload: String,
    /// This run's number, from 1; a run whose runner was lost counts too.
    pub attempt: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// When the lease ends unless a heartbeat extends it.
    pub lease_expires_at: i64,
    /// The last checkpoint an earlier run of the job saved, to resume from.
    pub progress: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The job is done.
    Succeeded,
    /// The run failed: the job runs again after its backoff, unless this was its last
    /// attempt or a stop was requested.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// The run stopped early, as a stop request asked: the job ends stopped, for good.
    Stopped,
}

/// The error recorded on a job whose runner was lost on its last attempt.
pub const RUNNER_LOST: &str = "its runner stopped answering on its last attempt (lease expired)";

/// What a run's end leaves in the job's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd<'a> {
    /// The job's next state: succeeded, queued again, failed or stopped.
    pub state: JobState,
    /// When it is due again, when queued again.
    pub due_at: Option<i64>,
    /// When it ended for good.
    pub finished_at: Option<i64>,
    /// The run's error, when it failed.
    pub error: Option<&'a str>,
}

impl JobOutcome {
    /// What ending the `attempt`-th run (counted from 1) this way at `now` leaves, under
    /// `retry`, when a stop was (`stop_requested`) or was not asked for; every adapter
    /// applies this, so runs end alike on each. A failed run of a job asked to stop is
    /// not retried: the job ends stopped, its error kept.
    pub fn end(
        &self,
        attempt: u32,
        retry: RetryPolicy,
        stop_requested: bool,
        now: i64,
    ) -> RunEnd<'_> {
        match self {
            JobOutcome::Succeeded => RunEnd::ended(JobState::Succeeded, now, None),
            JobOutcome::Stopped => RunEnd::ended(JobState::Stopped, now, None),
            JobOutcome::Failed { error } if stop_requested => {
                RunEnd::ended(JobState::Stopped, now, Some(error))
            }
            JobOutcome::Failed { error } if attempt < retry.max_attempts => RunEnd {
                state: JobState::Queued,
                due_at: Some(now.saturating_add(retry.delay_after(attempt))),
                finished_at: None,
                error: Some(error),
            },
            JobOutcome::Failed { error } => RunEnd::ended(JobState::Failed, now, Some(error)),
        }
    }
}

impl<'a> RunEnd<'a> {
    /// The job ended for good at `now`, in `state`.
    fn ended(state: JobState, now: i64, error: Option<&'a str>) -> RunEnd<'a> {
        RunEnd {
            state,
            due_at: None,
            finished_at: Some(now),
            error,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to be run (again) once due.
    Queued,
    /// Claimed by a runner whose lease has not been given up.
    Running,
    /// Done.
    Succeeded,
    /// Failed its last attempt.
    Failed,
    /// Stopped on request, for good.
    Stopped,
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Stopped => "stopped",
        }
    }
}

impl FromStr for JobState {
    type Err = MetaError;

    fn from_str(s: &str) -> Result<Self, MetaError> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Stopped,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| MetaError(format!("unknown job state {s:?}")))
    }
}

/// A stored job, as status queries show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Runs so far (the one in progress included).
    pub attempts: u32,
    /// When it was enqueued.
    pub created_at: i64,
    /// While queued, when it is next run; while running, when its lease ends.
    pub due_at: i64,
    /// When it succeeded, failed for good or stopped.
    pub finished_at: Option<i64>,
    /// The error of its last failed run.
    pub last_error: Option<String>,
    /// Its dedup key, if it has one.
    pub dedup_key: Option<String>,
    /// The last checkpoint a run saved.
    pub progress: Option<String>,
    /// Whether a stop was requested.
    pub stop_requested: bool,
}

/// Why a lease holder was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The job was claimed again (its lease had expired), released or finished: the
    /// caller is no longer its runner.
    #[error("the lease on job {0} is no longer held")]
    LeaseLost(JobId),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Work that recurs: each time it fires, its job is enqueued once, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Unique name, e.g. `upload-purge`.
    pub name: String,
    /// The job each firing enqueues.
    pub spec: JobSpec,
    /// How often it fires.
    pub period: Period,
    /// When it fires next.
    pub next_fire: i64,
}

impl Schedule {
    /// The dedup key of the job fired at `fire_time`.
    pub fn dedup_key(name: &str, fire_time: i64) -> String {
        format!("{name}@{fire_time}")
    }
}

/// What a checkpoint answers the run that saved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// Go on.
    Continue,
    /// A stop was requested: the run should end, as [`JobOutcome::Stopped`].
    StopRequested,
}

impl Checkpoint {
    /// The answer when a stop was (`true`) or was not requested.
    pub fn when_stop_requested(stop_requested: bool) -> Checkpoint {
        if stop_requested {
            Checkpoint::StopRequested
        } else {
            Checkpoint::Continue
        }
    }
}

/// What [`JobStore::request_stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// The job was queued: it is stopped now and will not run.
    Stopped,
    /// The job is running: its runner sees the request at its next checkpoint (or, when
    /// the runner is lost, the job is stopped once its lease expires).
    Requested,
    /// The job had already ended (succeeded, failed or stopped); nothing changed.
    AlreadyEnded,
    /// There is no such job.
    NotFound,
}

/// A line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLogLine {
    /// Its number in the job's log: 1 for the first line, each next one more, across
    /// the runs of the job.
    pub seq: i64,
    /// When it was appended.
    pub at: i64,
    /// The text.
    pub line: String,
}

/// The job queue and its schedules.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Puts a job on the queue, durably; with a dedup key already used, finds that job
    /// instead.
    async fn enqueue(&self, job: &NewJob, now: i64) -> Result<Enqueued, MetaError>;
    /// Claims the due job of one of `kinds` that has waited longest, with a lease until
    /// `now + lease_ms`: a queued job whose run time has come, or a running one whose
    /// lease expired (its runner is presumed lost; the claim counts as a new attempt).
    /// Among concurrent claimers, each job goes to one only. A running job whose lease
    /// expired is not taken over but ended when it must not run again: stopped when a
    /// stop was requested, failed when it was on its last attempt. The claim carries
    /// the job's last checkpoint.
    async fn claim(
        &self,
        kinds: &[String],
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, MetaError>;
    /// Extends the lease to `now + lease_ms`; returns the new expiry. Refused once
    /// another runner claimed the job, or the lease was released or finished.
    async fn heartbeat(&self, lease: &Lease, now: i64, lease_ms: i64) -> Result<i64, JobError>;
    /// Ends a run: done, stopped, or failed (queued again after the backoff of the job's
    /// retry policy; failed for good after its last attempt; stopped when a stop was
    /// requested), as [`JobOutcome::end`] says.
    async fn finish(&self, lease: &Lease, outcome: &JobOutcome, now: i64) -> Result<(), JobError>;
    /// Gives the job back unrun (its runner is stopping): queued again, due at `now`,
    /// and this run not counted as an attempt; or, when a stop was requested, stopped.
    async fn release(&self, lease: &Lease, now: i64) -> Result<(), JobError>;
    /// One job, in whatever state.
    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, MetaError>;
    /// Up to `limit` jobs of `kind`, newest first, those older than `before` when given.
    async fn jobs_of_kind(
        &self,
        kind: &str,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, MetaError>;
    /// Deletes jobs that ended (succeeded, failed or stopped) before `before`, with their
    /// logs; returns how many jobs.
    async fn purge_finished_jobs(&self, before: i64) -> Result<u64, MetaError>;

    /// Saves the run's progress (the handler's own text, e.g. JSON), checked against the
    /// lease; answers whether a stop was requested. The job's next claim carries it.
    async fn checkpoint(
        &self,
        lease: &Lease,
        progress: &str,
        now: i64,
    ) -> Result<Checkpoint, JobError>;
    /// Asks a job to stop: a queued job is stopped at once; a running one is flagged,
    /// and its runner sees the flag at its next checkpoint; an ended job is left as it
    /// is. A flagged job is not run again: a claim finding its lease expired stops it,
    /// and so does its run's end, unless the run succeeded.
    async fn request_stop(&self, id: JobId, now: i64) -> Result<StopRequest, MetaError>;
    /// Appends lines to the job's log, checked against the lease; they are numbered on
    /// from the log's last line.
    async fn append_job_log(
        &self,
        lease: &Lease,
        lines: &[String],
        now: i64,
    ) -> Result<(), JobError>;
    /// The job's log lines with sequence numbers after `after`, oldest first, up to
    /// `limit`; none for an unknown job.
    async fn job_log(
        &self,
        id: JobId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<JobLogLine>, MetaError>;

    /// Creates the schedule, or updates its job and period. Its stored next fire time is
    /// kept unless the period changed, so nodes starting with the same schedule do not
    /// postpone it.
    async fn put_schedule(&self, schedule: &Schedule) -> Result<(), MetaError>;
    /// Every schedule, by name.
    async fn schedules(&self) -> Result<Vec<Schedule>, MetaError>;
    /// Deletes a schedule; returns whether it existed.
    async fn delete_schedule(&self, name: &str) -> Result<bool, MetaError>;
    /// Fires the schedule if its next fire time is still `seen`: in one transaction,
    /// moves it to `next` and enqueues its job (due at `seen`, dedup key
    /// [`Schedule::dedup_key`]), unless a job of its kind is still queued or running:
    /// runs never pile up behind a slow one. Returns the job when this call enqueued
    /// it; `None` when another node fired first, the schedule is gone, or a job of the
    /// kind had not ended.
    async fn fire_schedule(
        &self,
        name: &str,
        seen: i64,
        next: i64,
        now: i64,
    ) -> Result<Option<JobId>, MetaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let retry = RetryPolicy {
            max_attempts: 40,
            backoff_ms: 1000,
        };
        let delays: Vec<i64> = (1..=4).map(|a| retry.delay_after(a)).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000]);
        assert_eq!(retry.delay_after(40), MAX_BACKOFF_MS);
    }

    #[test]
    fn runs_end_as_their_outcome_and_stop_requests_say() {
        let retry = RetryPolicy {
            max_attempts: 2,
            backoff_ms: 1000,
        };
        let failed = JobOutcome::Failed {
            error: "boom".into(),
        };
        let end = |outcome: &JobOutcome, attempt, stop| {
            let end = outcome.end(attempt, retry, stop, 10);
            (
                end.state,
                end.due_at,
                end.finished_at,
                end.error.map(str::to_owned),
            )
        };
        assert_eq!(
            end(&failed, 1, false),
            (JobState::Queued, Some(1010), None, Some("boom".into()))
        );
        assert_eq!(
            end(&failed, 2, false),
            (JobState::Failed, None, Some(10), Some("boom".into()))
        );
        assert_eq!(
            end(&failed, 1, true),
            (JobState::Stopped, None, Some(10), Some("boom".into())),
            "not retried once a stop was requested"
        );
        for stop in [false, true] {
            assert_eq!(
                end(&JobOutcome::Stopped, 1, stop),
                (JobState::Stopped, None, Some(10), None)
            );
            assert_eq!(
                end(&JobOutcome::Succeeded, 1, stop),
                (JobState::Succeeded, None, Some(10), None)
            );
        }
    }

    #[test]
    fn states_round_trip_as_text() {
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Stopped,
        ] {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("paused".parse::<JobState>().is_err());
    }
}
