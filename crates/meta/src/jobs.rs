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
//! Times are Unix milliseconds, given by the caller.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

use crate::store::MetaError;

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
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The job is done.
    Succeeded,
    /// The run failed: the job runs again after its backoff, unless this was its last
    /// attempt.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// The error recorded on a job whose runner was lost on its last attempt.
pub const RUNNER_LOST: &str = "its runner stopped answering on its last attempt (lease expired)";

/// What a run's end leaves in the job's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd<'a> {
    /// The job's next state: succeeded, queued again or failed.
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
    /// `retry`; every adapter applies this, so retries behave alike on each.
    pub fn end(&self, attempt: u32, retry: RetryPolicy, now: i64) -> RunEnd<'_> {
        match self {
            JobOutcome::Succeeded => RunEnd {
                state: JobState::Succeeded,
                due_at: None,
                finished_at: Some(now),
                error: None,
            },
            JobOutcome::Failed { error } if attempt < retry.max_attempts => RunEnd {
                state: JobState::Queued,
                due_at: Some(now.saturating_add(retry.delay_after(attempt))),
                finished_at: None,
                error: Some(error),
            },
            JobOutcome::Failed { error } => RunEnd {
                state: JobState::Failed,
                due_at: None,
                finished_at: Some(now),
                error: Some(error),
            },
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
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
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
    /// When it succeeded or failed for good.
    pub finished_at: Option<i64>,
    /// The error of its last failed run.
    pub last_error: Option<String>,
    /// Its dedup key, if it has one.
    pub dedup_key: Option<String>,
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

/// How often a schedule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Every so many milliseconds (at least one).
    EveryMs(i64),
}

impl Period {
    /// The first fire time after `now` on this period's grid through `fired`: periods
    /// missed while no node ran are skipped, not made up for.
    pub fn next_after(self, fired: i64, now: i64) -> i64 {
        match self {
            Period::EveryMs(every) => {
                let every = every.max(1);
                let missed = now.saturating_sub(fired).max(0) / every;
                fired.saturating_add(every.saturating_mul(missed + 1))
            }
        }
    }
}

/// Stored as `@every <n>ms`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::EveryMs(every) => write!(f, "@every {every}ms"),
        }
    }
}

impl FromStr for Period {
    type Err = MetaError;

    fn from_str(s: &str) -> Result<Self, MetaError> {
        s.strip_prefix("@every ")
            .and_then(|rest| rest.strip_suffix("ms"))
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|&every| every > 0)
            .map(Period::EveryMs)
            .ok_or_else(|| MetaError(format!("unknown schedule period {s:?}")))
    }
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
    /// expired on its last attempt is marked failed instead.
    async fn claim(
        &self,
        kinds: &[String],
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, MetaError>;
    /// Extends the lease to `now + lease_ms`; returns the new expiry. Refused once
    /// another runner claimed the job, or the lease was released or finished.
    async fn heartbeat(&self, lease: &Lease, now: i64, lease_ms: i64) -> Result<i64, JobError>;
    /// Ends a run: done, or failed (queued again after the backoff of the job's retry
    /// policy, or failed for good after its last attempt).
    async fn finish(&self, lease: &Lease, outcome: &JobOutcome, now: i64) -> Result<(), JobError>;
    /// Gives the job back unrun (its runner is stopping): queued again, due at `now`,
    /// and this run not counted as an attempt.
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
    /// Deletes jobs that succeeded or failed before `before`; returns how many.
    async fn purge_finished_jobs(&self, before: i64) -> Result<u64, MetaError>;

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
    /// [`Schedule::dedup_key`]). Returns the job when this call fired it; `None` when
    /// another node did first or the schedule is gone.
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
    fn periods_skip_missed_fires_and_round_trip_as_text() {
        let p = Period::EveryMs(100);
        assert_eq!(p.next_after(1000, 1000), 1100);
        assert_eq!(p.next_after(1000, 1099), 1100);
        assert_eq!(p.next_after(1000, 1100), 1200);
        assert_eq!(p.next_after(1000, 1550), 1600);
        assert_eq!(p.to_string().parse::<Period>().unwrap(), p);
        for bad in ["@every 0ms", "@every 5s", "*/5 * * * *"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }
}
