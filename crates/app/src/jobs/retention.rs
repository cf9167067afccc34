//! Tag retention executions as jobs of the queue ([`TagRetention`]), and the
//! policies' schedules, fired by the runner's poll ([`RetentionSchedules`]).
//!
//! An execution's job plans its tasks on its first run: one per repository of the
//! project that an enabled rule selects (as Harbor's launcher does), recorded pending.
//! Then it works them in order: reads the repository's candidates (a query per page of
//! a thousand, with their tags and labels), evaluates the policy, deletes what it
//! decided through the registry's delete (which checks immutability again, under its
//! guard, and writes the audit entry), and ends the task with its counts and its log.
//! A checkpoint after each task answers stop requests; a run taken over after its node
//! died goes on with the tasks not ended. A dry run deletes nothing.

use std::sync::Arc;

use async_trait::async_trait;
use berth_meta::{
    Checkpoint, CronSchedule, ExecutionStart, ExecutionStatus, JobSpec, ListQuery, Period,
    RepositoryField, RetentionExecution, RetentionTask, RetryPolicy, ScheduleFire, TaskEnd,
    TaskStatus,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag};

use crate::identity::{Actor, Identity};
use crate::jobs::handler::{Finished, HandlerError, JobContext, JobHandler};
use crate::jobs::runner::ScheduleSource;
use crate::retention::{Candidate, CompiledPolicy, Line, Mark, PolicyDefinition, Verdict, table};
use crate::{Registry, RegistryError};

/// Candidates read per query.
const CANDIDATE_PAGE: u32 = 1000;
/// Ended executions a policy keeps (Harbor's default for retention).
pub const KEPT_EXECUTIONS: u64 = 50;
/// Who starts the executions a schedule fires (Harbor's job service user).
pub const SCHEDULE_OPERATOR: &str = "harbor-jobservice";
/// Harbor's trigger of an execution asked for.
pub const TRIGGER_MANUAL: &str = "MANUAL";
/// Harbor's trigger of an execution a schedule fired.
pub const TRIGGER_SCHEDULE: &str = "SCHEDULE";

/// Runs retention executions ([`TagRetention::KIND`]).
pub struct TagRetention {
    /// The registry: its store, and the deletes.
    pub registry: Arc<Registry>,
    /// The projects and repositories.
    pub identity: Arc<Identity>,
}

impl TagRetention {
    /// The job kind.
    pub const KIND: &str = "retention";

    /// The job of an execution of policy `policy_id`. A run that fails is run again a
    /// few times; each goes on with the tasks not yet ended.
    pub fn job(policy_id: i64, dry_run: bool) -> JobSpec {
        JobSpec {
            kind: Self::KIND.into(),
            payload: serde_json::json!({ "policy_id": policy_id, "dry_run": dry_run }).to_string(),
            retry: RetryPolicy {
                max_attempts: 3,
                backoff_ms: 60_000,
            },
        }
    }
}

/// What an execution applies: its policy's rules, in its project.
struct Plan {
    compiled: CompiledPolicy,
    algorithm: String,
    project: String,
}

impl Plan {
    /// The name of `repository` without its project.
    fn short<'a>(&self, repository: &'a str) -> &'a str {
        repository
            .strip_prefix(&self.project)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(repository)
    }
}

#[async_trait]
impl JobHandler for TagRetention {
    async fn run(&self, job: &JobContext) -> Result<Finished, HandlerError> {
        let meta = &self.registry.meta;
        let Some(execution) = meta.retention_execution_of_job(job.id).await? else {
            job.log(["no retention execution belongs to this job: its policy was deleted"])
                .await?;
            return Ok(Finished::Done);
        };
        if execution.status.is_final() {
            return Ok(Finished::Done);
        }
        let plan = match self.plan(&execution).await? {
            Ok(plan) => plan,
            Err(message) => {
                job.log([format!("execution {}: {message}", execution.id)])
                    .await?;
                self.end(&execution, ExecutionStatus::Error).await?;
                return Ok(Finished::Done);
            }
        };
        let tasks = match job.progress {
            // A run before this one planned the tasks.
            Some(_) => {
                meta.list_retention_tasks(execution.id, 0, None)
                    .await?
                    .items
            }
            None => {
                let repositories = self.repositories(&plan).await?;
                meta.add_retention_tasks(execution.id, &repositories)
                    .await?
            }
        };
        job.log([format!(
            "execution {}: {} repositories in scope, dry run {}",
            execution.id,
            tasks.len(),
            execution.dry_run
        )])
        .await?;
        let mut failed = false;
        for task in &tasks {
            if job.checkpoint(&format!("{{\"task\":{}}}", task.id)).await?
                == Checkpoint::StopRequested
            {
                return self.stopped(job, &execution).await;
            }
            let status = match task.status {
                TaskStatus::Pending | TaskStatus::Running => {
                    self.run_task(&plan, &execution, task).await?
                }
                ended => ended,
            };
            failed |= status == TaskStatus::Error;
        }
        let status = if failed {
            ExecutionStatus::Error
        } else {
            ExecutionStatus::Success
        };
        self.end(&execution, status).await?;
        job.log([format!(
            "execution {} ended: {}",
            execution.id,
            status.as_str()
        )])
        .await?;
        Ok(Finished::Done)
    }
}

impl TagRetention {
    fn now(&self) -> i64 {
        self.identity.clock.now_ms()
    }

    async fn end(
        &self,
        execution: &RetentionExecution,
        status: ExecutionStatus,
    ) -> Result<(), HandlerError> {
        (self.registry.meta)
            .end_retention_execution(execution.id, status, self.now())
            .await?;
        Ok(())
    }

    async fn stopped(
        &self,
        job: &JobContext,
        execution: &RetentionExecution,
    ) -> Result<Finished, HandlerError> {
        // Its tasks not yet worked end stopped with it.
        self.end(execution, ExecutionStatus::Stopped).await?;
        job.log([format!("execution {} stopped on request", execution.id)])
            .await?;
        Ok(Finished::Stopped)
    }

    /// The execution's policy, compiled, and its project's name; `Err` with the reason
    /// when the policy cannot run.
    async fn plan(
        &self,
        execution: &RetentionExecution,
    ) -> Result<Result<Plan, String>, HandlerError> {
        let definition = match PolicyDefinition::from_json(&execution.policy) {
            Ok(d) => d,
            Err(e) => return Ok(Err(format!("the policy does not read: {e}"))),
        };
        let compiled = match definition.compile() {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("the policy is invalid: {e}"))),
        };
        let Some(project_id) = definition.project_id() else {
            return Ok(Err("the policy names no project".into()));
        };
        let Some(project) = self.identity.stores.projects.project(project_id).await? else {
            return Ok(Err(format!("project {project_id} does not exist")));
        };
        Ok(Ok(Plan {
            compiled,
            algorithm: definition.algorithm,
            project: project.name,
        }))
    }

    /// The project's repositories some enabled rule applies to, by name.
    async fn repositories(&self, plan: &Plan) -> Result<Vec<String>, HandlerError> {
        let Some(project) = self
            .identity
            .stores
            .projects
            .project_by_name(&plan.project)
            .await?
        else {
            return Ok(Vec::new());
        };
        let query = ListQuery::<RepositoryField> {
            sort: vec![berth_meta::SortKey {
                field: RepositoryField::Name,
                descending: false,
            }],
            ..ListQuery::default()
        };
        let listed = (self.identity.stores.artifacts)
            .list_repositories(&[project.id], &query)
            .await?;
        Ok((listed.items.into_iter())
            .map(|r| r.name.as_str().to_owned())
            .filter(|name| !plan.compiled.rules_for(plan.short(name)).is_empty())
            .collect())
    }

    /// Works one task to its end; returns how it ended. A failure to read or decide
    /// ends the task in error; the execution goes on with the next.
    async fn run_task(
        &self,
        plan: &Plan,
        execution: &RetentionExecution,
        task: &RetentionTask,
    ) -> Result<TaskStatus, HandlerError> {
        let meta = &self.registry.meta;
        if !meta.start_retention_task(task.id, self.now()).await? {
            // It ended meanwhile with its execution, which another node ended after this
            // run lost its job: nothing more is done for it.
            let ended = meta.retention_task(task.id).await?;
            return Ok(ended.map_or(TaskStatus::Stopped, |t| t.status));
        }
        let end = match self.apply(plan, execution, task).await {
            Ok(end) => end,
            Err(e) => TaskEnd {
                status: TaskStatus::Error,
                total: 0,
                retained: 0,
                log: format!(
                    "Run retention process.\n Repository: {}\nRetention job failed: {e}\n",
                    task.repository
                ),
            },
        };
        meta.end_retention_task(task.id, &end, self.now()).await?;
        Ok(end.status)
    }

    /// Reads, decides and deletes for one repository; returns the task's end.
    async fn apply(
        &self,
        plan: &Plan,
        execution: &RetentionExecution,
        task: &RetentionTask,
    ) -> Result<TaskEnd, RegistryError> {
        let repository = RepositoryName::parse(&task.repository)
            .map_err(|e| RegistryError::Internal(format!("task repository: {e}")))?;
        let rules = plan.compiled.rules_for(plan.short(&task.repository));
        let mut stored = Vec::new();
        loop {
            let after = stored
                .last()
                .map_or(0, |c: &berth_meta::RetentionCandidate| c.id);
            let page = (self.registry.meta)
                .retention_candidates(&repository, after, CANDIDATE_PAGE)
                .await?;
            let done = page.len() < CANDIDATE_PAGE as usize;
            stored.extend(page);
            if done {
                break;
            }
        }
        let candidates: Vec<Candidate> = stored.iter().map(Candidate::of).collect();
        let protection = self.registry.protection(&repository).await?;
        let verdicts = plan
            .compiled
            .evaluate(&rules, &candidates, self.now(), |c| {
                c.tags.iter().find_map(|t| {
                    let tag = Tag::parse(t).ok()?;
                    protection.rule_for(&repository, &tag).cloned()
                })
            });
        let mut lines: Vec<Line> = (candidates.iter().zip(&verdicts))
            .map(|(c, verdict)| {
                let (mark, reason) = match verdict {
                    Verdict::Retained(by) if by.is_empty() => {
                        (Mark::Retain, "no rule evaluated".to_owned())
                    }
                    Verdict::Retained(by) => {
                        let rules: Vec<String> =
                            by.iter().map(|i| format!("rule {}", i + 1)).collect();
                        (Mark::Retain, rules.join(", "))
                    }
                    Verdict::Immutable(rule) => (Mark::Immutable, rule.to_string()),
                    Verdict::Delete => (Mark::Delete, String::new()),
                };
                Line {
                    digest: c.digest.clone(),
                    tags: c.tags.clone(),
                    labels: c.labels.clone(),
                    pushed_at: c.pushed_at,
                    pulled_at: c.pulled_at,
                    mark,
                    reason,
                }
            })
            .collect();
        if !execution.dry_run {
            self.delete(&repository, execution, &stored, &mut lines)
                .await;
        }
        let total = lines.len() as u64;
        let deleted = lines.iter().filter(|l| l.mark == Mark::Delete).count() as u64;
        let mut log = format!(
            "Run retention process.\n Repository: {}\n Rule Algorithm: {}\n Dry Run: {}\n",
            task.repository, plan.algorithm, execution.dry_run
        );
        for &i in &rules {
            log += &format!(" rule {}: {}\n", i + 1, plan.compiled.rules[i].summary);
        }
        log += &format!(
            "Load {total} candidates from repository {}\n",
            task.repository
        );
        log += &table(&lines);
        log += &format!(
            "{} retained, {deleted} {}\n",
            total - deleted,
            if execution.dry_run {
                "would be deleted (dry run)"
            } else {
                "deleted"
            }
        );
        for l in lines.iter().filter(|l| l.mark == Mark::Error) {
            log += &format!(
                "Retention error for artifact {}@{}: {}\n",
                task.repository, l.digest, l.reason
            );
        }
        Ok(TaskEnd {
            status: TaskStatus::Success,
            total,
            retained: total - deleted,
            log,
        })
    }

    /// Deletes the candidates marked for deletion, newest first (an index before the
    /// children it lists), through the registry's delete; marks what it refused.
    async fn delete(
        &self,
        repository: &RepositoryName,
        execution: &RetentionExecution,
        stored: &[berth_meta::RetentionCandidate],
        lines: &mut [Line],
    ) {
        let actor = Actor::new(execution.operator.clone(), None);
        for (line, candidate) in lines.iter_mut().zip(stored).rev() {
            if line.mark != Mark::Delete {
                continue;
            }
            let reference = Reference::Digest(Digest::clone(&candidate.digest));
            match self
                .registry
                .delete_manifest(repository, &reference, &actor)
                .await
            {
                // Gone already (deleted meanwhile): what retention wanted.
                Ok(()) | Err(RegistryError::ManifestUnknown) => {}
                Err(RegistryError::TagImmutable(refused)) => {
                    line.mark = Mark::Immutable;
                    line.reason = refused.rule.to_string();
                }
                Err(e) => {
                    line.mark = Mark::Error;
                    line.reason = e.to_string();
                }
            }
        }
    }
}

/// The policies' schedules: at each poll of the runner, every policy whose next fire
/// time has come starts a scheduled execution (once cluster-wide: the store moves the
/// fire time with a compare-and-set), unless one of its executions still runs.
pub struct RetentionSchedules {
    /// The registry, whose store holds the policies.
    pub registry: Arc<Registry>,
}

#[async_trait]
impl ScheduleSource for RetentionSchedules {
    async fn fire_due(&self, now: i64) -> Result<(), HandlerError> {
        let meta = &self.registry.meta;
        for policy in meta.due_retention_policies(now).await? {
            let Some(seen) = policy.next_fire else {
                continue;
            };
            let cron = PolicyDefinition::from_json(&policy.definition)
                .ok()
                .and_then(|d| d.cron().and_then(|c| c.parse::<CronSchedule>().ok()));
            let Some(cron) = cron else {
                tracing::warn!(
                    policy = policy.id,
                    "a retention policy's schedule has no valid cron"
                );
                continue;
            };
            let start = ExecutionStart {
                policy_id: policy.id,
                trigger: TRIGGER_SCHEDULE.into(),
                dry_run: false,
                operator: SCHEDULE_OPERATOR.into(),
                job: TagRetention::job(policy.id, false),
                keep: KEPT_EXECUTIONS,
                fire: Some(ScheduleFire {
                    seen,
                    next: Period::Cron(cron).next_after(seen, now),
                }),
            };
            if let Some(started) = meta.start_retention_execution(&start, now).await? {
                tracing::info!(
                    policy = policy.id,
                    execution = started.execution_id,
                    "a retention schedule fired"
                );
            }
        }
        Ok(())
    }
}
