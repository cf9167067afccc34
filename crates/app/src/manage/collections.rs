//! Garbage collection as Harbor's `/system/gc` shows it: the schedule, runs asked for
//! now, their history and logs, and stopping one. Runs are jobs of the queue
//! ([`GarbageCollection`]); the schedule is the queue's schedule of that name.

use std::sync::Arc;

use berth_authz::{Action, Permission, Resource};
use berth_meta::{
    CronSchedule, Enqueued, JobId, JobLogLine, JobRecord, JobSpec, JobState, JobStore, NewJob,
    Period, RetryPolicy, Schedule, StopRequest,
};

use super::{ManageError, Requester};
use crate::identity::Identity;
use crate::jobs::{CollectionParameters, GarbageCollection, Trigger};

const GC_CREATE: Permission = Permission::new(Resource::GarbageCollection, Action::Create);
const GC_READ: Permission = Permission::new(Resource::GarbageCollection, Action::Read);
const GC_LIST: Permission = Permission::new(Resource::GarbageCollection, Action::List);
const GC_UPDATE: Permission = Permission::new(Resource::GarbageCollection, Action::Update);
const GC_STOP: Permission = Permission::new(Resource::GarbageCollection, Action::Stop);
/// Log lines one read of the store returns.
const LOG_PAGE: u32 = 1000;

/// Harbor's schedule types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleType {
    /// No schedule.
    None,
    /// One run, now.
    Manual,
    /// Every hour, on the hour (`0 0 * * * *`).
    Hourly,
    /// Every day at midnight, UTC (`0 0 0 * * *`).
    Daily,
    /// Every Sunday at midnight, UTC (`0 0 0 * * 0`).
    Weekly,
    /// As the given cron says.
    Custom,
}

impl ScheduleType {
    /// The cron of a preset type.
    fn preset(self) -> Option<&'static str> {
        match self {
            ScheduleType::Hourly => Some("0 0 * * * *"),
            ScheduleType::Daily => Some("0 0 0 * * *"),
            ScheduleType::Weekly => Some("0 0 0 * * 0"),
            ScheduleType::None | ScheduleType::Manual | ScheduleType::Custom => None,
        }
    }

    /// The type a stored cron shows as: the preset it is, or `Custom`.
    fn of_cron(cron: &str) -> Self {
        [
            ScheduleType::Hourly,
            ScheduleType::Daily,
            ScheduleType::Weekly,
        ]
        .into_iter()
        .find(|t| t.preset() == Some(cron))
        .unwrap_or(ScheduleType::Custom)
    }
}

/// What a caller asks of the schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    /// The type.
    pub kind: ScheduleType,
    /// The cron, for `Custom` (six fields, seconds first).
    pub cron: Option<String>,
    /// How the runs go (the trigger is set here).
    pub parameters: CollectionParameters,
}

/// The stored schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSchedule {
    /// Its type.
    pub kind: ScheduleType,
    /// Its cron.
    pub cron: String,
    /// The parameters of the runs it starts.
    pub parameters: CollectionParameters,
    /// When it fires next (Unix milliseconds).
    pub next_fire: i64,
}

/// The garbage-collection use cases.
pub struct Collections {
    identity: Arc<Identity>,
    jobs: Arc<dyn JobStore>,
}

impl Collections {
    /// The use cases over `identity`, with runs on `jobs`.
    pub fn new(identity: Arc<Identity>, jobs: Arc<dyn JobStore>) -> Self {
        Collections { identity, jobs }
    }

    /// The schedule, if there is one.
    pub async fn schedule(&self, who: &Requester) -> Result<Option<GcSchedule>, ManageError> {
        who.require_system(GC_READ)?;
        let schedules = self.jobs.schedules().await?;
        let Some(stored) = schedules
            .into_iter()
            .find(|s| s.name == GarbageCollection::KIND)
        else {
            return Ok(None);
        };
        let Period::Cron(cron) = &stored.period else {
            return Ok(None);
        };
        Ok(Some(GcSchedule {
            kind: ScheduleType::of_cron(cron.expression()),
            cron: cron.expression().to_owned(),
            parameters: parameters_of(&stored.spec)?,
            next_fire: stored.next_fire,
        }))
    }

    /// Applies `request`: `Manual` enqueues a run now and returns its id (`Conflict`
    /// while another has not ended); `None` deletes the schedule; the other types
    /// replace it.
    pub async fn set_schedule(
        &self,
        who: &Requester,
        request: ScheduleRequest,
    ) -> Result<Option<JobId>, ManageError> {
        let permission = match request.kind {
            ScheduleType::Manual => GC_CREATE,
            _ => GC_UPDATE,
        };
        who.require_system(permission)?;
        let now = self.identity.clock.now_ms();
        let cron = match (request.kind, request.cron.as_deref().map(str::trim)) {
            (ScheduleType::Manual, _) => return self.start_now(request.parameters, now).await,
            (ScheduleType::None, _) => {
                self.jobs.delete_schedule(GarbageCollection::KIND).await?;
                return Ok(None);
            }
            (ScheduleType::Custom, Some(cron)) if !cron.is_empty() => cron.to_owned(),
            (ScheduleType::Custom, _) => {
                return Err(ManageError::Invalid(
                    "a custom schedule needs a cron".into(),
                ));
            }
            (preset, _) => preset.preset().unwrap_or_default().to_owned(),
        };
        let cron: CronSchedule = cron
            .parse()
            .map_err(|e| ManageError::Invalid(format!("invalid cron {cron:?}: {e}")))?;
        let period = Period::Cron(cron);
        let parameters = CollectionParameters {
            trigger: Trigger::Schedule,
            ..request.parameters
        };
        // Harbor replaces the schedule: the next fire time is counted from now.
        self.jobs.delete_schedule(GarbageCollection::KIND).await?;
        let schedule = Schedule {
            name: GarbageCollection::KIND.into(),
            spec: spec(&parameters)?,
            next_fire: period.first_fire(now),
            period,
        };
        self.jobs.put_schedule(&schedule).await?;
        Ok(None)
    }

    /// Enqueues a run now, unless one has not ended. Starts asked for at once are told
    /// apart by the newest run each saw: they share a dedup key, so one of them
    /// enqueues and the others find its job.
    async fn start_now(
        &self,
        parameters: CollectionParameters,
        now: i64,
    ) -> Result<Option<JobId>, ManageError> {
        let runs = self.all_runs().await?;
        let conflict =
            |id: JobId| ManageError::Conflict(format!("garbage collection {id} has not ended yet"));
        let unfinished = |r: &&JobRecord| matches!(r.state, JobState::Queued | JobState::Running);
        if let Some(ongoing) = runs.iter().find(unfinished) {
            return Err(conflict(ongoing.id));
        }
        let parameters = CollectionParameters {
            trigger: Trigger::Manual,
            ..parameters
        };
        let newest = runs.first().map_or(0, |r| r.id);
        let job = NewJob {
            spec: spec(&parameters)?,
            run_after: now,
            dedup_key: Some(format!("gc-manual-after-{newest}")),
        };
        match self.jobs.enqueue(&job, now).await? {
            Enqueued::New(id) => Ok(Some(id)),
            Enqueued::Duplicate(id) => Err(conflict(id)),
        }
    }

    /// One page (from 1) of the runs, newest first, and how many there are.
    pub async fn runs(
        &self,
        who: &Requester,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<JobRecord>, u64), ManageError> {
        who.require_system(GC_LIST)?;
        let all = self.all_runs().await?;
        let total = all.len() as u64;
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let page = (all.into_iter())
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(page_size).unwrap_or(usize::MAX))
            .collect();
        Ok((page, total))
    }

    /// One run.
    pub async fn run(&self, who: &Requester, id: JobId) -> Result<JobRecord, ManageError> {
        who.require_system(GC_READ)?;
        self.find(id).await
    }

    /// A run's log, oldest line first.
    pub async fn log(&self, who: &Requester, id: JobId) -> Result<Vec<JobLogLine>, ManageError> {
        who.require_system(GC_READ)?;
        self.find(id).await?;
        let mut lines: Vec<JobLogLine> = Vec::new();
        loop {
            let after = lines.last().map_or(0, |l| l.seq);
            let page = self.jobs.job_log(id, after, LOG_PAGE).await?;
            let done = page.len() < LOG_PAGE as usize;
            lines.extend(page);
            if done {
                return Ok(lines);
            }
        }
    }

    /// Asks a run to stop; a run that ended stays as it is.
    pub async fn stop(&self, who: &Requester, id: JobId) -> Result<(), ManageError> {
        who.require_system(GC_STOP)?;
        self.find(id).await?;
        let now = self.identity.clock.now_ms();
        match self.jobs.request_stop(id, now).await? {
            StopRequest::NotFound => Err(not_found(id)),
            StopRequest::Stopped | StopRequest::Requested | StopRequest::AlreadyEnded => Ok(()),
        }
    }

    /// Every run the history keeps, newest first.
    async fn all_runs(&self) -> Result<Vec<JobRecord>, ManageError> {
        let mut runs: Vec<JobRecord> = Vec::new();
        loop {
            let before = runs.last().map(|r| r.id);
            let page = (self.jobs)
                .jobs_of_kind(GarbageCollection::KIND, before, LOG_PAGE)
                .await?;
            let done = page.len() < LOG_PAGE as usize;
            runs.extend(page);
            if done {
                return Ok(runs);
            }
        }
    }

    /// The collection run `id`, or `NotFound` (also for a job of another kind).
    async fn find(&self, id: JobId) -> Result<JobRecord, ManageError> {
        match self.jobs.job(id).await? {
            Some(job) if job.spec.kind == GarbageCollection::KIND => Ok(job),
            _ => Err(not_found(id)),
        }
    }
}

fn not_found(id: JobId) -> ManageError {
    ManageError::NotFound(format!("garbage collection {id} not found"))
}

/// A collection run's job. A run that fails, or whose node dies, is run again from its
/// last checkpoint, a few times.
fn spec(parameters: &CollectionParameters) -> Result<JobSpec, ManageError> {
    Ok(JobSpec {
        kind: GarbageCollection::KIND.into(),
        payload: serde_json::to_string(parameters)
            .map_err(|e| ManageError::Invalid(e.to_string()))?,
        retry: RetryPolicy {
            max_attempts: 5,
            backoff_ms: 60_000,
        },
    })
}

/// The parameters a run's job holds.
pub fn parameters_of(spec: &JobSpec) -> Result<CollectionParameters, ManageError> {
    serde_json::from_str(&spec.payload)
        .map_err(|e| ManageError::Invalid(format!("a collection job's payload: {e}")))
}
