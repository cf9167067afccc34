//! Tag retention: policies, executions, tasks and candidates.
//!
//! A policy's row orders the writes that depend on it between nodes: creating one locks
//! its project's row first (so two creations for one project run one after the other),
//! and starting an execution locks the policy's row (so a scheduled start's check that
//! no execution of the policy still runs sees every start committed before it).

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ExecutionStart, ExecutionStatus, JobId, Listed, MetaError, RETENTION_ID_KEY,
    RetentionCandidate, RetentionExecution, RetentionPolicy, RetentionPolicyError, RetentionStore,
    RetentionTask, StartedExecution, TagInfo, TaskEnd,
};
use berth_oci::{Digest, RepositoryName, Tag};
use sqlx::PgConnection;

use crate::audit::audited;
use crate::{PgMetaStore, corrupt, db_err};

const POLICY_COLUMNS: &str = "id, project_id, definition, next_fire, created_at, updated_at";
const EXECUTION_COLUMNS: &str =
    "id, policy_id, trigger, dry_run, operator, status, job_id, policy, started_at, ended_at";
const TASK_COLUMNS: &str =
    "id, execution_id, repository, status, started_at, ended_at, total, retained";

type PolicyRow = (i64, i64, String, Option<i64>, i64, i64);
type ExecutionRow = (
    i64,
    i64,
    String,
    bool,
    String,
    String,
    Option<i64>,
    String,
    i64,
    Option<i64>,
);
type TaskRow = (i64, i64, String, String, Option<i64>, Option<i64>, i64, i64);
type CandidateRow = (
    i64,
    String,
    i64,
    Option<i64>,
    Vec<String>,
    Vec<i64>,
    Vec<Option<i64>>,
    Vec<String>,
);

fn policy(
    (id, project_id, definition, next_fire, created_at, updated_at): PolicyRow,
) -> RetentionPolicy {
    RetentionPolicy {
        id,
        project_id,
        definition,
        next_fire,
        created_at,
        updated_at,
    }
}

fn execution(row: ExecutionRow) -> Result<RetentionExecution, MetaError> {
    let (id, policy_id, trigger, dry_run, operator, status, job_id, policy, started_at, ended_at) =
        row;
    Ok(RetentionExecution {
        id,
        policy_id,
        trigger,
        dry_run,
        operator,
        status: status.parse()?,
        job_id,
        policy,
        started_at,
        ended_at,
    })
}

fn task(row: TaskRow) -> Result<RetentionTask, MetaError> {
    let (id, execution_id, repository, status, started_at, ended_at, total, retained) = row;
    Ok(RetentionTask {
        id,
        execution_id,
        repository,
        status: status.parse()?,
        started_at,
        ended_at,
        total: total.max(0) as u64,
        retained: retained.max(0) as u64,
    })
}

fn candidate(row: CandidateRow) -> Result<RetentionCandidate, MetaError> {
    let (id, digest, pushed_at, pulled_at, tag_names, tags_pushed, tags_pulled, labels) = row;
    let tags = tag_names
        .iter()
        .zip(tags_pushed)
        .zip(tags_pulled)
        .map(|((name, pushed_at), pulled_at)| {
            Ok(TagInfo {
                name: Tag::parse(name).map_err(|e| corrupt("tag", e))?,
                artifact_id: id,
                pushed_at,
                pulled_at,
            })
        })
        .collect::<Result<_, MetaError>>()?;
    Ok(RetentionCandidate {
        id,
        digest: Digest::parse(&digest).map_err(|e| corrupt("digest", e))?,
        pushed_at,
        pulled_at,
        tags,
        labels,
    })
}

fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn tasks_of(
    c: &mut PgConnection,
    execution_id: i64,
    offset: u64,
    limit: Option<u64>,
) -> Result<Listed<RetentionTask>, MetaError> {
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_tasks WHERE execution_id = $1")
            .bind(execution_id)
            .fetch_one(&mut *c)
            .await
            .map_err(db_err)?;
    let rows: Vec<TaskRow> = sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE execution_id = $1
         ORDER BY id LIMIT $2 OFFSET $3"
    ))
    .bind(execution_id)
    .bind(limit.map(bound))
    .bind(bound(offset))
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    Ok(Listed {
        items: rows.into_iter().map(task).collect::<Result<_, _>>()?,
        total: total as u64,
    })
}

/// A repository's candidates after an id: its manifests without a subject, tagged or
/// listed by no index of the repository, with their tags and label names.
const CANDIDATES: &str = r#"
    SELECT m.id, m.digest, m.pushed_at, m.pulled_at,
           ARRAY(SELECT t.name FROM tags t WHERE t.manifest_id = m.id
                 ORDER BY t.name COLLATE "C"),
           ARRAY(SELECT t.pushed_at FROM tags t WHERE t.manifest_id = m.id
                 ORDER BY t.name COLLATE "C"),
           ARRAY(SELECT t.pulled_at FROM tags t WHERE t.manifest_id = m.id
                 ORDER BY t.name COLLATE "C"),
           ARRAY(SELECT l.name FROM label_references lr JOIN labels l ON l.id = lr.label_id
                 WHERE lr.manifest_id = m.id ORDER BY l.name COLLATE "C")
    FROM manifests m
    WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $1)
      AND m.id > $2 AND m.subject IS NULL
      AND (EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
           OR NOT EXISTS (SELECT 1 FROM manifest_references r
                          JOIN manifests p ON p.id = r.manifest_id
                          WHERE r.digest = m.digest AND r.kind = 'manifest'
                            AND p.repository_id = m.repository_id))
    ORDER BY m.id LIMIT $3"#;

#[async_trait]
impl RetentionStore for PgMetaStore {
    async fn create_retention_policy(
        &self,
        project_id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RetentionPolicyError> {
        let mut tx = self.durable().await?;
        let project: Option<i64> =
            sqlx::query_scalar("SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE")
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if project.is_none() {
            return Err(RetentionPolicyError::NoProject(project_id));
        }
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT value FROM project_metadata WHERE project_id = $1 AND name = $2
             UNION ALL
             SELECT id::text FROM retention_policies WHERE project_id = $1
             LIMIT 1",
        )
        .bind(project_id)
        .bind(RETENTION_ID_KEY)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(existing) = existing {
            return Err(RetentionPolicyError::Exists {
                project_id,
                existing,
            });
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO retention_policies (project_id, definition, next_fire, created_at,
                                             updated_at)
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(project_id)
        .bind(definition)
        .bind(next_fire)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("INSERT INTO project_metadata (project_id, name, value) VALUES ($1, $2, $3)")
            .bind(project_id)
            .bind(RETENTION_ID_KEY)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        audited(&mut tx, true, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn retention_policy(&self, id: i64) -> Result<Option<RetentionPolicy>, MetaError> {
        let row: Option<PolicyRow> = sqlx::query_as(&format!(
            "SELECT {POLICY_COLUMNS} FROM retention_policies WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(policy))
    }

    async fn update_retention_policy(
        &self,
        id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let changed = sqlx::query(
            "UPDATE retention_policies SET definition = $2, next_fire = $3, updated_at = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(definition)
        .bind(next_fire)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        audited(&mut tx, changed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }

    async fn delete_retention_policy(
        &self,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let project: Option<i64> =
            sqlx::query_scalar("DELETE FROM retention_policies WHERE id = $1 RETURNING project_id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if let Some(project) = project {
            sqlx::query(
                "DELETE FROM project_metadata WHERE project_id = $1 AND name = $2 AND value = $3",
            )
            .bind(project)
            .bind(RETENTION_ID_KEY)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        audited(&mut tx, project.is_some(), audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(project.is_some())
    }

    async fn due_retention_policies(&self, now: i64) -> Result<Vec<RetentionPolicy>, MetaError> {
        let rows: Vec<PolicyRow> = sqlx::query_as(&format!(
            "SELECT {POLICY_COLUMNS} FROM retention_policies
             WHERE next_fire IS NOT NULL AND next_fire <= $1 ORDER BY id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(policy).collect())
    }

    async fn start_retention_execution(
        &self,
        start: &ExecutionStart,
        now: i64,
    ) -> Result<Option<StartedExecution>, MetaError> {
        let mut tx = self.durable().await?;
        let definition: Option<String> = sqlx::query_scalar(
            "SELECT definition FROM retention_policies WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(start.policy_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(definition) = definition else {
            return Ok(None);
        };
        if let Some(fire) = start.fire {
            let moved = sqlx::query(
                "UPDATE retention_policies SET next_fire = $3 WHERE id = $1 AND next_fire = $2",
            )
            .bind(start.policy_id)
            .bind(fire.seen)
            .bind(fire.next)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
                > 0;
            if !moved {
                return Ok(None);
            }
            let unfinished: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM retention_executions e
                                JOIN jobs j ON j.id = e.job_id
                                WHERE e.policy_id = $1 AND e.status = 'Running'
                                  AND j.state IN ('queued', 'running'))",
            )
            .bind(start.policy_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if unfinished {
                tx.commit().await.map_err(db_err)?;
                return Ok(None);
            }
        }
        let execution_id: i64 = sqlx::query_scalar(
            "INSERT INTO retention_executions
                 (policy_id, trigger, dry_run, operator, status, policy, started_at)
             VALUES ($1, $2, $3, $4, 'Running', $5, $6) RETURNING id",
        )
        .bind(start.policy_id)
        .bind(&start.trigger)
        .bind(start.dry_run)
        .bind(&start.operator)
        .bind(&definition)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let spec = &start.job;
        let job_id: JobId = sqlx::query_scalar(
            "INSERT INTO jobs (kind, payload, max_attempts, backoff_ms, state, due_at,
                               created_at)
             VALUES ($1, $2, $3, $4, 'queued', $5, $5) RETURNING id",
        )
        .bind(&spec.kind)
        .bind(&spec.payload)
        .bind(i64::from(spec.retry.max_attempts))
        .bind(spec.retry.backoff_ms)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("UPDATE retention_executions SET job_id = $2 WHERE id = $1")
            .bind(execution_id)
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "DELETE FROM retention_executions
             WHERE policy_id = $1 AND status <> 'Running' AND id NOT IN (
                 SELECT id FROM retention_executions WHERE policy_id = $1
                   AND status <> 'Running'
                 ORDER BY id DESC LIMIT $2)",
        )
        .bind(start.policy_id)
        .bind(bound(start.keep))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(StartedExecution {
            execution_id,
            job_id,
        }))
    }

    async fn retention_execution(&self, id: i64) -> Result<Option<RetentionExecution>, MetaError> {
        let row: Option<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(execution).transpose()
    }

    async fn retention_execution_of_job(
        &self,
        job: JobId,
    ) -> Result<Option<RetentionExecution>, MetaError> {
        let row: Option<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE job_id = $1"
        ))
        .bind(job)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(execution).transpose()
    }

    async fn list_retention_executions(
        &self,
        policy_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<RetentionExecution>, MetaError> {
        let mut c = self.pool.acquire().await.map_err(db_err)?;
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM retention_executions WHERE policy_id = $1")
                .bind(policy_id)
                .fetch_one(&mut *c)
                .await
                .map_err(db_err)?;
        let rows: Vec<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE policy_id = $1
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(policy_id)
        .bind(bound(limit))
        .bind(bound(offset))
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        Ok(Listed {
            items: rows.into_iter().map(execution).collect::<Result<_, _>>()?,
            total: total as u64,
        })
    }

    async fn end_retention_execution(
        &self,
        id: i64,
        status: ExecutionStatus,
        now: i64,
    ) -> Result<bool, MetaError> {
        // Two statements in one transaction: the first locks the execution's row (a
        // concurrent end then finds it ended, and ends no task), and the second sees
        // every task added before that lock was granted (adding takes it too).
        let mut tx = self.durable().await?;
        let ended = sqlx::query(
            "UPDATE retention_executions SET status = $2, ended_at = $3
             WHERE id = $1 AND status = 'Running'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        if !ended {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE retention_tasks SET status = $2, ended_at = $3
             WHERE execution_id = $1 AND status IN ('Pending', 'Running')",
        )
        .bind(id)
        .bind(status.open_tasks_end().as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn add_retention_tasks(
        &self,
        execution_id: i64,
        repositories: &[String],
    ) -> Result<Vec<RetentionTask>, MetaError> {
        let mut tx = self.durable().await?;
        // The execution's row, held until commit, keeps two runs of it from adding tasks
        // together, and its end (which updates the row) from passing over the tasks
        // added: an execution that ended meanwhile gets none.
        let running: Option<bool> = sqlx::query_scalar(
            "SELECT status = 'Running' FROM retention_executions WHERE id = $1
             FOR NO KEY UPDATE",
        )
        .bind(execution_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let existing = tasks_of(&mut tx, execution_id, 0, None).await?;
        if existing.total > 0 || running != Some(true) {
            return Ok(existing.items);
        }
        sqlx::query(
            "INSERT INTO retention_tasks (execution_id, repository, status)
             SELECT $1, r.name, 'Pending' FROM unnest($2::TEXT[]) WITH ORDINALITY AS r(name, n)
             ORDER BY r.n",
        )
        .bind(execution_id)
        .bind(repositories)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let tasks = tasks_of(&mut tx, execution_id, 0, None).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(tasks.items)
    }

    async fn list_retention_tasks(
        &self,
        execution_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<RetentionTask>, MetaError> {
        let mut c = self.pool.acquire().await.map_err(db_err)?;
        tasks_of(&mut c, execution_id, offset, limit).await
    }

    async fn retention_task(&self, id: i64) -> Result<Option<RetentionTask>, MetaError> {
        let row: Option<TaskRow> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(task).transpose()
    }

    async fn start_retention_task(&self, id: i64, now: i64) -> Result<bool, MetaError> {
        sqlx::query(
            "UPDATE retention_tasks SET status = 'Running', started_at = $2
             WHERE id = $1 AND status IN ('Pending', 'Running')",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(db_err)
    }

    async fn end_retention_task(
        &self,
        id: i64,
        end: &TaskEnd,
        now: i64,
    ) -> Result<bool, MetaError> {
        sqlx::query(
            "UPDATE retention_tasks
             SET status = $2, total = $3, retained = $4, log = $5, ended_at = $6,
                 started_at = coalesce(started_at, $6)
             WHERE id = $1 AND status IN ('Pending', 'Running')",
        )
        .bind(id)
        .bind(end.status.as_str())
        .bind(bound(end.total))
        .bind(bound(end.retained))
        .bind(&end.log)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(db_err)
    }

    async fn retention_task_log(&self, id: i64) -> Result<Option<String>, MetaError> {
        sqlx::query_scalar("SELECT log FROM retention_tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn retention_candidates(
        &self,
        repository: &RepositoryName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RetentionCandidate>, MetaError> {
        let rows: Vec<CandidateRow> = sqlx::query_as(CANDIDATES)
            .bind(repository.as_str())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(candidate).collect()
    }
}
