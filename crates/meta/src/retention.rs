//! Tag retention (Harbor's `retention_policy` and the executions and tasks of its task
//! framework): a project's one policy, stored as the definition it was given (what
//! it means is the application's business) with the next time its schedule fires; the
//! executions of a policy, each run by a job of the queue; their tasks, one per
//! repository, each with its log; and what retention reads of a repository (its
//! candidates, a page at a time).

use std::str::FromStr;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};

use crate::artifacts::TagInfo;
use crate::audit::AuditEntry;
use crate::jobs::{JobId, JobSpec};
use crate::listing::Listed;
use crate::store::MetaError;

/// The project metadata key that names a project's retention policy.
pub const RETENTION_ID_KEY: &str = "retention_id";

/// A stored retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Stable id, never reused.
    pub id: i64,
    /// Its project (the policy's scope).
    pub project_id: i64,
    /// The definition as JSON text.
    pub definition: String,
    /// When its schedule fires next, if it has one (Unix milliseconds).
    pub next_fire: Option<i64>,
    /// When it was created.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// Why a policy could not be created.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RetentionPolicyError {
    /// The project already has a policy, or its metadata names one (the value of its
    /// `retention_id`).
    #[error("project {project_id} already has retention policy {existing}")]
    Exists {
        /// The project.
        project_id: i64,
        /// The policy it has.
        existing: String,
    },
    /// The project does not exist (any more).
    #[error("project {0} does not exist")]
    NoProject(i64),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Where an execution is, as Harbor's task framework names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    /// Started, not ended.
    Running,
    /// Every task ended well.
    Success,
    /// A task, or the execution itself, failed.
    Error,
    /// Stopped on request.
    Stopped,
}

/// Where a task is, as Harbor's job service names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Waiting for its turn.
    Pending,
    /// Being worked on.
    Running,
    /// Done.
    Success,
    /// Failed.
    Error,
    /// Stopped before it was done.
    Stopped,
}

macro_rules! named_states {
    ($ty:ident { $($state:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$state => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = MetaError;

            fn from_str(s: &str) -> Result<Self, MetaError> {
                match s {
                    $($name => Ok($ty::$state),)+
                    _ => Err(MetaError(format!(
                        "unknown {} {s:?}",
                        stringify!($ty)
                    ))),
                }
            }
        }
    };
}

named_states!(ExecutionStatus {
    Running => "Running",
    Success => "Success",
    Error => "Error",
    Stopped => "Stopped",
});

named_states!(TaskStatus {
    Pending => "Pending",
    Running => "Running",
    Success => "Success",
    Error => "Error",
    Stopped => "Stopped",
});

impl ExecutionStatus {
    /// Whether the execution has ended.
    pub fn is_final(self) -> bool {
        self != ExecutionStatus::Running
    }

    /// What the tasks an execution ending this way leaves open end as: stopped with a
    /// stopped execution, in error otherwise.
    pub fn open_tasks_end(self) -> TaskStatus {
        match self {
            ExecutionStatus::Stopped => TaskStatus::Stopped,
            _ => TaskStatus::Error,
        }
    }
}

impl TaskStatus {
    /// Whether the task has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }
}

/// A stored execution of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionExecution {
    /// Stable id, never reused.
    pub id: i64,
    /// Its policy.
    pub policy_id: i64,
    /// `MANUAL` or `SCHEDULE`.
    pub trigger: String,
    /// Whether it deletes nothing.
    pub dry_run: bool,
    /// Who started it.
    pub operator: String,
    /// Its status as last written; a `Running` one whose job ended without saying is
    /// the application's to read otherwise.
    pub status: ExecutionStatus,
    /// The job that runs it; `None` once the queue forgot the job.
    pub job_id: Option<JobId>,
    /// The policy's definition when the execution started, which it runs.
    pub policy: String,
    /// When it started.
    pub started_at: i64,
    /// When it ended.
    pub ended_at: Option<i64>,
}

/// A firing of a policy's schedule: its stored next fire time must still be `seen`,
/// and becomes `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleFire {
    /// The fire time read.
    pub seen: i64,
    /// The next one.
    pub next: i64,
}

/// An execution to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionStart {
    /// The policy.
    pub policy_id: i64,
    /// `MANUAL` or `SCHEDULE`.
    pub trigger: String,
    /// Delete nothing.
    pub dry_run: bool,
    /// Who starts it.
    pub operator: String,
    /// The job that runs it, enqueued due at once in the same transaction.
    pub job: JobSpec,
    /// Ended executions of the policy kept besides the new one; older ones go.
    pub keep: u64,
    /// For a scheduled start: the firing, which starts nothing while an execution of
    /// the policy is still running (its job queued or running).
    pub fire: Option<ScheduleFire>,
}

/// An execution started, and its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedExecution {
    /// The execution.
    pub execution_id: i64,
    /// Its job.
    pub job_id: JobId,
}

/// A stored task: one repository of an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionTask {
    /// Stable id, never reused.
    pub id: i64,
    /// Its execution.
    pub execution_id: i64,
    /// The repository's full name.
    pub repository: String,
    /// Where it is.
    pub status: TaskStatus,
    /// When work on it started.
    pub started_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Candidates it looked at.
    pub total: u64,
    /// Candidates it kept.
    pub retained: u64,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    /// A final status.
    pub status: TaskStatus,
    /// Candidates looked at.
    pub total: u64,
    /// Candidates kept.
    pub retained: u64,
    /// Its log.
    pub log: String,
}

/// An artifact retention may keep or delete: a manifest of the repository that is not
/// about another one (no `subject`), and that is tagged or not a child of an index of
/// the repository (Harbor's candidates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionCandidate {
    /// The artifact's id.
    pub id: i64,
    /// Its digest.
    pub digest: Digest,
    /// When it was pushed.
    pub pushed_at: i64,
    /// When it was last pulled, if ever.
    pub pulled_at: Option<i64>,
    /// Its tags, by name.
    pub tags: Vec<TagInfo>,
    /// The names of the labels it carries, in order.
    pub labels: Vec<String>,
}

/// Tag retention's policies, executions and tasks, and its reads of repositories.
/// Changes to a policy record their `audit` entry in their own transaction; deleting a
/// project deletes its policy, whose executions and tasks go with it.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Creates the policy of a project that has none (neither a policy nor a
    /// `retention_id` in its metadata), and sets the project's `retention_id` to its
    /// id, in one transaction; returns the id.
    async fn create_retention_policy(
        &self,
        project_id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RetentionPolicyError>;
    /// One policy.
    async fn retention_policy(&self, id: i64) -> Result<Option<RetentionPolicy>, MetaError>;
    /// Replaces a policy's definition and next fire time; returns whether it exists.
    async fn update_retention_policy(
        &self,
        id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Deletes a policy with its executions and tasks, and its project's
    /// `retention_id` when that names it; returns whether it existed.
    async fn delete_retention_policy(&self, id: i64, audit: &AuditEntry)
    -> Result<bool, MetaError>;
    /// The policies whose schedule is due at `now`, by id.
    async fn due_retention_policies(&self, now: i64) -> Result<Vec<RetentionPolicy>, MetaError>;

    /// Starts an execution of a policy as it stands: records it running, with the
    /// policy's definition, and enqueues its job, in one transaction; older ended
    /// executions past `keep` go. A scheduled start first moves the policy's next fire
    /// time (a compare-and-set); it starts nothing when another firing came first or an
    /// execution of the policy is still running. `None` when nothing started (also for
    /// a policy that no longer exists).
    async fn start_retention_execution(
        &self,
        start: &ExecutionStart,
        now: i64,
    ) -> Result<Option<StartedExecution>, MetaError>;
    /// One execution.
    async fn retention_execution(&self, id: i64) -> Result<Option<RetentionExecution>, MetaError>;
    /// The execution job `job` runs.
    async fn retention_execution_of_job(
        &self,
        job: JobId,
    ) -> Result<Option<RetentionExecution>, MetaError>;
    /// A page of a policy's executions, newest first.
    async fn list_retention_executions(
        &self,
        policy_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<RetentionExecution>, MetaError>;
    /// Ends a running execution with a final status, and the tasks of it that had not
    /// ended with it (as [`ExecutionStatus::open_tasks_end`] says), in one transaction;
    /// returns whether it was running (an execution that ended keeps its end, and its
    /// tasks theirs).
    async fn end_retention_execution(
        &self,
        id: i64,
        status: ExecutionStatus,
        now: i64,
    ) -> Result<bool, MetaError>;

    /// Records an execution's tasks, pending, one per repository in the order given,
    /// unless it has tasks already or has ended (its end ends no task added after it);
    /// returns its tasks either way, in id order.
    async fn add_retention_tasks(
        &self,
        execution_id: i64,
        repositories: &[String],
    ) -> Result<Vec<RetentionTask>, MetaError>;
    /// A page of an execution's tasks in id order; `limit` `None` for all of them.
    async fn list_retention_tasks(
        &self,
        execution_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<RetentionTask>, MetaError>;
    /// One task.
    async fn retention_task(&self, id: i64) -> Result<Option<RetentionTask>, MetaError>;
    /// Marks a task running; returns whether it had not ended.
    async fn start_retention_task(&self, id: i64, now: i64) -> Result<bool, MetaError>;
    /// Ends a task that had not ended, with its counts and log; returns whether it had
    /// not ended.
    async fn end_retention_task(&self, id: i64, end: &TaskEnd, now: i64)
    -> Result<bool, MetaError>;
    /// A task's log, empty until it ended; `None` for no such task.
    async fn retention_task_log(&self, id: i64) -> Result<Option<String>, MetaError>;

    /// Up to `limit` candidates of `repository` whose id is above `after`, in id
    /// order, each with its tags and labels, read in one query.
    async fn retention_candidates(
        &self,
        repository: &RepositoryName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RetentionCandidate>, MetaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_as_text() {
        for s in [
            ExecutionStatus::Running,
            ExecutionStatus::Success,
            ExecutionStatus::Error,
            ExecutionStatus::Stopped,
        ] {
            assert_eq!(s.as_str().parse::<ExecutionStatus>().unwrap(), s);
        }
        for s in [
            TaskStatus::Pending,
            TaskStatus::Running,
            TaskStatus::Success,
            TaskStatus::Error,
            TaskStatus::Stopped,
        ] {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), s);
        }
        assert!("Done".parse::<TaskStatus>().is_err());
        assert!(!ExecutionStatus::Running.is_final() && ExecutionStatus::Stopped.is_final());
        assert!(!TaskStatus::Pending.is_final() && TaskStatus::Error.is_final());
    }
}
