//! Tag retention as Harbor's `/retentions` shows it: a project's one policy (created,
//! read, replaced, deleted; its id in the project's metadata as `retention_id`), its
//! executions (started now, dry or not, listed, stopped), their tasks and each task's
//! log. Executions run as jobs of the queue ([`TagRetention`]); a policy's schedule is
//! kept with it and fired by the runner ([`crate::jobs::RetentionSchedules`]).
//!
//! Permissions are the project's `tag-retention` ones, as in Harbor's handler: `read`
//! (a policy, a task's log), `create`, `update` (a policy, starting and stopping an
//! execution), `delete`, `list` (executions and tasks). A policy the caller's project
//! does not show is "not found", as is one its project's `retention_id` no longer names
//! (for the calls Harbor checks that on).

use std::sync::Arc;

use berth_authz::{Action, Resource};
use berth_meta::{
    AuditEntry, CronSchedule, ExecutionStart, ExecutionStatus, JobState, JobStore, Listed,
    MetaError, Period, Project, RETENTION_ID_KEY, RetentionExecution, RetentionPolicy,
    RetentionPolicyError, RetentionTask,
};

use super::projects::Projects;
use super::{ManageError, Requester};
use crate::Registry;
use crate::identity::Identity;
use crate::jobs::{KEPT_EXECUTIONS, TRIGGER_MANUAL, TagRetention};
use crate::retention::PolicyDefinition;

/// A stored policy as Harbor shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyView {
    /// Its id.
    pub id: i64,
    /// What it says.
    pub definition: PolicyDefinition,
    /// When its schedule fires next, if it has one.
    pub next_fire: Option<i64>,
}

/// The tag retention use cases.
pub struct Retentions {
    identity: Arc<Identity>,
    registry: Arc<Registry>,
    jobs: Arc<dyn JobStore>,
}

impl Retentions {
    /// The use cases over `identity` (who may), `registry` (its store holds the
    /// policies) and `jobs` (the queue running the executions).
    pub fn new(identity: Arc<Identity>, registry: Arc<Registry>, jobs: Arc<dyn JobStore>) -> Self {
        Retentions {
            identity,
            registry,
            jobs,
        }
    }

    /// Harbor's `/retentions/metadatas` asks only for a logged-in caller.
    pub fn metadata(&self, who: &Requester) -> Result<(), ManageError> {
        who.account().map(drop)
    }

    async fn project(
        &self,
        who: &Requester,
        project_id: i64,
        action: Action,
    ) -> Result<Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(
                who,
                &project_id.to_string(),
                false,
                Resource::TagRetention,
                action,
            )
            .await
    }

    /// Policy `id`, once the caller may perform `action` on its project's retention.
    async fn policy(
        &self,
        who: &Requester,
        id: i64,
        action: Action,
    ) -> Result<(RetentionPolicy, Project, PolicyDefinition), ManageError> {
        let stored = (self.registry.meta)
            .retention_policy(id)
            .await?
            .ok_or_else(|| policy_not_found(id))?;
        let project = self.project(who, stored.project_id, action).await?;
        let definition = PolicyDefinition::from_json(&stored.definition).map_err(|e| {
            ManageError::Meta(MetaError(format!(
                "stored retention policy {id} is invalid: {e}"
            )))
        })?;
        Ok((stored, project, definition))
    }

    /// Harbor's `requirePolicyAccess`: the project's `retention_id` names the policy.
    fn require_named(project: &Project, id: i64) -> Result<(), ManageError> {
        match project.metadata.get(RETENTION_ID_KEY) {
            Some(named) if *named == id.to_string() => Ok(()),
            _ => Err(ManageError::NotFound(format!(
                "the retention policy id {id} does not match"
            ))),
        }
    }

    /// Execution `eid` of policy `id` (Harbor's `requireExecutionInProject`).
    async fn execution(
        &self,
        project: &Project,
        id: i64,
        eid: i64,
    ) -> Result<RetentionExecution, ManageError> {
        (self.registry.meta)
            .retention_execution(eid)
            .await?
            .filter(|e| e.policy_id == id)
            .ok_or_else(|| {
                ManageError::NotFound(format!(
                    "project: {}, execution id {eid} not found",
                    project.id
                ))
            })
    }

    fn audit(
        &self,
        who: &Requester,
        operation: &str,
        project: &Project,
        id: Option<i64>,
    ) -> AuditEntry {
        let resource = match id {
            Some(id) => format!("{}/retentions/{id}", project.name),
            None => format!("{}/retentions", project.name),
        };
        let now = self.identity.clock.now_ms();
        who.actor().audit(
            operation,
            "retention_policy",
            &resource,
            Some(project.id),
            now,
        )
    }

    /// When a schedule of `cron` first fires from now.
    fn first_fire(&self, cron: Option<&str>) -> Result<Option<i64>, ManageError> {
        let now = self.identity.clock.now_ms();
        cron.map(|c| {
            c.parse::<CronSchedule>()
                .map(|c| Period::Cron(c).first_fire(now))
                .map_err(|e| ManageError::Invalid(format!("invalid cron {c:?}: {e}")))
        })
        .transpose()
    }

    /// Creates a project's policy (the project named by its scope, which must have none)
    /// and names it in the project's metadata; returns its id.
    pub async fn create(
        &self,
        who: &Requester,
        definition: PolicyDefinition,
    ) -> Result<i64, ManageError> {
        let definition = definition.without_shown_fields();
        definition.validate().map_err(invalid)?;
        let project_id = definition.project_id().unwrap_or_default();
        let project = self.project(who, project_id, Action::Create).await?;
        let next_fire = self.first_fire(definition.cron())?;
        let audit = self.audit(who, "create", &project, None);
        let now = self.identity.clock.now_ms();
        (self.registry.meta)
            .create_retention_policy(project.id, &definition.to_json(), next_fire, now, &audit)
            .await
            .map_err(|e| match e {
                RetentionPolicyError::Exists { .. } => ManageError::Invalid(e.to_string()),
                RetentionPolicyError::NoProject(_) => ManageError::NotFound(e.to_string()),
                RetentionPolicyError::Meta(e) => ManageError::Meta(e),
            })
    }

    /// One policy, with when its schedule fires next.
    pub async fn get(&self, who: &Requester, id: i64) -> Result<PolicyView, ManageError> {
        let (stored, _, definition) = self.policy(who, id, Action::Read).await?;
        let now = self.identity.clock.now_ms();
        let next_fire = match stored.next_fire {
            Some(next) if next >= now => Some(next),
            _ => self.first_fire(definition.cron())?,
        };
        Ok(PolicyView {
            id,
            definition,
            next_fire,
        })
    }

    /// Replaces a policy; its scope stays. A changed cron is counted from now; an
    /// unchanged one keeps its next fire time.
    pub async fn update(
        &self,
        who: &Requester,
        id: i64,
        definition: PolicyDefinition,
    ) -> Result<(), ManageError> {
        let definition = definition.without_shown_fields();
        definition.validate().map_err(invalid)?;
        let (stored, project, old) = self.policy(who, id, Action::Update).await?;
        Self::require_named(&project, id)?;
        if definition.project_id() != Some(stored.project_id) {
            return Err(ManageError::Invalid(
                "the scope of a retention policy cannot change".into(),
            ));
        }
        let next_fire = if definition.cron() == old.cron() {
            stored.next_fire
        } else {
            self.first_fire(definition.cron())?
        };
        let audit = self.audit(who, "update", &project, Some(id));
        let now = self.identity.clock.now_ms();
        let found = (self.registry.meta)
            .update_retention_policy(id, &definition.to_json(), next_fire, now, &audit)
            .await?;
        found.then_some(()).ok_or_else(|| policy_not_found(id))
    }

    /// Deletes a policy with its executions (running ones are asked to stop) and its
    /// project's `retention_id`.
    pub async fn delete(&self, who: &Requester, id: i64) -> Result<(), ManageError> {
        let (_, project, _) = self.policy(who, id, Action::Delete).await?;
        let running = self.running_executions(id).await?;
        let now = self.identity.clock.now_ms();
        for job in running.iter().filter_map(|e| e.job_id) {
            self.jobs.request_stop(job, now).await?;
        }
        let audit = self.audit(who, "delete", &project, Some(id));
        let found = (self.registry.meta)
            .delete_retention_policy(id, &audit)
            .await?;
        found.then_some(()).ok_or_else(|| policy_not_found(id))
    }

    /// The policy's executions still marked running.
    async fn running_executions(&self, id: i64) -> Result<Vec<RetentionExecution>, ManageError> {
        let mut running = Vec::new();
        let mut offset = 0;
        loop {
            let page = (self.registry.meta)
                .list_retention_executions(id, offset, 100)
                .await?;
            let n = page.items.len() as u64;
            running
                .extend((page.items.into_iter()).filter(|e| e.status == ExecutionStatus::Running));
            offset += n;
            if n == 0 || offset >= page.total {
                return Ok(running);
            }
        }
    }

    /// Starts an execution now (a dry run deletes nothing); returns its id.
    pub async fn trigger(
        &self,
        who: &Requester,
        id: i64,
        dry_run: bool,
    ) -> Result<i64, ManageError> {
        self.policy(who, id, Action::Update).await?;
        let start = ExecutionStart {
            policy_id: id,
            trigger: TRIGGER_MANUAL.into(),
            dry_run,
            operator: who.actor().name,
            job: TagRetention::job(id, dry_run),
            keep: KEPT_EXECUTIONS,
            fire: None,
        };
        let now = self.identity.clock.now_ms();
        let started = (self.registry.meta)
            .start_retention_execution(&start, now)
            .await?
            .ok_or_else(|| policy_not_found(id))?;
        Ok(started.execution_id)
    }

    /// A page of a policy's executions, newest first, each as it stands (see
    /// [`Retentions::current`]).
    pub async fn executions(
        &self,
        who: &Requester,
        id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<RetentionExecution>, ManageError> {
        self.policy(who, id, Action::List).await?;
        let listed = (self.registry.meta)
            .list_retention_executions(id, offset, limit)
            .await?;
        let mut items = Vec::with_capacity(listed.items.len());
        for execution in listed.items {
            items.push(self.current(execution).await?);
        }
        Ok(Listed {
            items,
            total: listed.total,
        })
    }

    /// `execution` as it stands. One still marked running whose job has ended is read
    /// again: a runner ends its execution before its job, so it may have ended since.
    /// If it has not, its job ended without ending it (the job failed for good, was
    /// stopped before it ran, lost its runner, or was forgotten since), and the end is
    /// written now, with the job's end time, its open tasks ended with it: the first
    /// end written wins, so the execution shows one end from then on, even to a runner
    /// that ends it later or after its job is forgotten. A write that fails is logged,
    /// and the end shown as it would have been written.
    async fn current(
        &self,
        execution: RetentionExecution,
    ) -> Result<RetentionExecution, ManageError> {
        if execution.status.is_final() {
            return Ok(execution);
        }
        let job = match execution.job_id {
            Some(id) => self.jobs.job(id).await?,
            None => None,
        };
        let status = match job.as_ref().map(|j| j.state) {
            Some(JobState::Queued | JobState::Running) => return Ok(execution),
            Some(JobState::Stopped) => ExecutionStatus::Stopped,
            // A job done without ending its execution did not do its work.
            Some(JobState::Succeeded | JobState::Failed) | None => ExecutionStatus::Error,
        };
        let (meta, id) = (&self.registry.meta, execution.id);
        match meta.retention_execution(id).await? {
            Some(again) if again.status.is_final() => return Ok(again),
            Some(_) => {}
            // Its policy went meanwhile, and the execution with it.
            None => return Ok(execution),
        }
        let at = (job.and_then(|j| j.finished_at)).unwrap_or_else(|| self.identity.clock.now_ms());
        let ended = RetentionExecution {
            status,
            ended_at: Some(at),
            ..execution
        };
        if let Err(e) = meta.end_retention_execution(id, status, at).await {
            tracing::warn!(
                execution = id,
                error = %e,
                "could not record the end of a retention execution whose job ended"
            );
            return Ok(ended);
        }
        Ok(meta.retention_execution(id).await?.unwrap_or(ended))
    }

    /// Asks an execution to stop: a queued one stops at once, a running one after the
    /// task it works on; one that ended stays as it is.
    pub async fn stop(&self, who: &Requester, id: i64, eid: i64) -> Result<(), ManageError> {
        let (_, project, _) = self.policy(who, id, Action::Update).await?;
        Self::require_named(&project, id)?;
        let execution = self.execution(&project, id, eid).await?;
        let (ExecutionStatus::Running, Some(job)) = (execution.status, execution.job_id) else {
            return Ok(());
        };
        self.jobs
            .request_stop(job, self.identity.clock.now_ms())
            .await?;
        // A job that never ran (stopped at once), or one that ended before, will not
        // end the execution: it ends here.
        self.current(execution).await?;
        Ok(())
    }

    /// An execution and a page of its tasks, in id order.
    pub async fn tasks(
        &self,
        who: &Requester,
        id: i64,
        eid: i64,
        offset: u64,
        limit: u64,
    ) -> Result<(RetentionExecution, Listed<RetentionTask>), ManageError> {
        let (_, project, _) = self.policy(who, id, Action::List).await?;
        Self::require_named(&project, id)?;
        let execution = self.execution(&project, id, eid).await?;
        // Its tasks as they stand: ended with it if its job ended without ending it.
        let execution = self.current(execution).await?;
        let tasks = (self.registry.meta)
            .list_retention_tasks(eid, offset, Some(limit))
            .await?;
        Ok((execution, tasks))
    }

    /// A task's log.
    pub async fn task_log(
        &self,
        who: &Requester,
        id: i64,
        eid: i64,
        tid: i64,
    ) -> Result<String, ManageError> {
        let (_, project, _) = self.policy(who, id, Action::Read).await?;
        Self::require_named(&project, id)?;
        self.execution(&project, id, eid).await?;
        let meta = &self.registry.meta;
        let task = meta
            .retention_task(tid)
            .await?
            .filter(|t| t.execution_id == eid);
        if task.is_none() {
            return Err(ManageError::NotFound(format!(
                "project: {}, execution id {eid} not found",
                project.id
            )));
        }
        Ok(meta.retention_task_log(tid).await?.unwrap_or_default())
    }
}

fn policy_not_found(id: i64) -> ManageError {
    ManageError::NotFound(format!("no such Retention policy with id {id}"))
}

fn invalid(e: crate::retention::InvalidPolicy) -> ManageError {
    if e.is_conflict() {
        ManageError::Conflict(e.to_string())
    } else {
        ManageError::Invalid(e.to_string())
    }
}
