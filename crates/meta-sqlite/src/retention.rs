//! Tag retention: policies, executions, tasks and candidates.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ExecutionStart, ExecutionStatus, JobId, Listed, MetaError, NewJob,
    RETENTION_ID_KEY, RetentionCandidate, RetentionExecution, RetentionPolicy,
    RetentionPolicyError, RetentionStore, RetentionTask, StartedExecution, TagInfo, TaskEnd,
};
use berth_oci::{Digest, RepositoryName, Tag};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::audited;
use crate::jobs::insert_job;
use crate::{SqliteMetaStore, db_err};

const POLICY_COLUMNS: &str = "id, project_id, definition, next_fire, created_at, updated_at";
const EXECUTION_COLUMNS: &str =
    "id, policy_id, trigger, dry_run, operator, status, job_id, policy, started_at, ended_at";
const TASK_COLUMNS: &str =
    "id, execution_id, repository, status, started_at, ended_at, total, retained";

fn conversion(column: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
}

fn policy_row(r: &Row<'_>) -> rusqlite::Result<RetentionPolicy> {
    Ok(RetentionPolicy {
        id: r.get(0)?,
        project_id: r.get(1)?,
        definition: r.get(2)?,
        next_fire: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

fn execution_row(r: &Row<'_>) -> rusqlite::Result<RetentionExecution> {
    let status: String = r.get(5)?;
    Ok(RetentionExecution {
        id: r.get(0)?,
        policy_id: r.get(1)?,
        trigger: r.get(2)?,
        dry_run: r.get(3)?,
        operator: r.get(4)?,
        status: status.parse().map_err(|e| conversion(5, e))?,
        job_id: r.get(6)?,
        policy: r.get(7)?,
        started_at: r.get(8)?,
        ended_at: r.get(9)?,
    })
}

fn task_row(r: &Row<'_>) -> rusqlite::Result<RetentionTask> {
    let status: String = r.get(3)?;
    Ok(RetentionTask {
        id: r.get(0)?,
        execution_id: r.get(1)?,
        repository: r.get(2)?,
        status: status.parse().map_err(|e| conversion(3, e))?,
        started_at: r.get(4)?,
        ended_at: r.get(5)?,
        total: r.get(6)?,
        retained: r.get(7)?,
    })
}

/// The execution with this id, in the caller's transaction.
fn execution_where(
    c: &Connection,
    condition: &str,
    key: i64,
) -> rusqlite::Result<Option<RetentionExecution>> {
    c.prepare_cached(&format!(
        "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE {condition} = ?1"
    ))?
    .query_row([key], execution_row)
    .optional()
}

fn tasks_of(
    c: &Connection,
    execution_id: i64,
    offset: u64,
    limit: Option<u64>,
) -> rusqlite::Result<Listed<RetentionTask>> {
    // SQLite reads a negative LIMIT as none.
    let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let total: u64 = c
        .prepare_cached("SELECT count(*) FROM retention_tasks WHERE execution_id = ?1")?
        .query_row([execution_id], |r| r.get(0))?;
    let items = c
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE execution_id = ?1
             ORDER BY id LIMIT ?2 OFFSET ?3"
        ))?
        .query_map(
            params![
                execution_id,
                limit,
                i64::try_from(offset).unwrap_or(i64::MAX)
            ],
            task_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Listed { items, total })
}

/// Whether an execution of the policy still runs: its job is queued or running.
fn execution_unfinished(c: &Connection, policy_id: i64) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM retention_executions e JOIN jobs j ON j.id = e.job_id
                        WHERE e.policy_id = ?1 AND e.status = 'Running'
                          AND j.state IN ('queued', 'running'))",
    )?
    .query_row([policy_id], |r| r.get(0))
}

/// The candidates of a page: a repository's manifests after an id, without a subject,
/// tagged or listed by no index of the repository; a row per tag (or one with no tag)
/// and a row per label, in id order.
const CANDIDATES: &str = "
    WITH page AS (
        SELECT m.id, m.digest, m.pushed_at, m.pulled_at FROM manifests m
        WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?1)
          AND m.id > ?2 AND m.subject IS NULL
          AND (EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
               OR NOT EXISTS (SELECT 1 FROM manifest_references r
                              JOIN manifests p ON p.id = r.manifest_id
                              WHERE r.digest = m.digest AND r.kind = 'manifest'
                                AND p.repository_id = m.repository_id))
        ORDER BY m.id LIMIT ?3)
    SELECT p.id, p.digest, p.pushed_at, p.pulled_at, 0, t.name, t.pushed_at, t.pulled_at
    FROM page p LEFT JOIN tags t ON t.manifest_id = p.id
    UNION ALL
    SELECT p.id, p.digest, p.pushed_at, p.pulled_at, 1, l.name, NULL, NULL
    FROM page p JOIN label_references lr ON lr.manifest_id = p.id
    JOIN labels l ON l.id = lr.label_id
    ORDER BY 1, 5, 6";

/// Folds the rows of [`CANDIDATES`] into candidates.
fn candidate_rows(rows: &mut rusqlite::Rows<'_>) -> rusqlite::Result<Vec<RetentionCandidate>> {
    let mut found: Vec<RetentionCandidate> = Vec::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        if found.last().is_none_or(|c| c.id != id) {
            let digest: String = r.get(1)?;
            found.push(RetentionCandidate {
                id,
                digest: Digest::parse(&digest).map_err(|e| conversion(1, e))?,
                pushed_at: r.get(2)?,
                pulled_at: r.get(3)?,
                tags: Vec::new(),
                labels: Vec::new(),
            });
        }
        let candidate = found.last_mut().expect("pushed above");
        let kind: i64 = r.get(4)?;
        let name: Option<String> = r.get(5)?;
        match (kind, name) {
            (0, Some(name)) => candidate.tags.push(TagInfo {
                name: Tag::parse(&name).map_err(|e| conversion(5, e))?,
                artifact_id: id,
                pushed_at: r.get(6)?,
                pulled_at: r.get(7)?,
            }),
            (1, Some(name)) => candidate.labels.push(name),
            _ => {}
        }
    }
    Ok(found)
}

#[async_trait]
impl RetentionStore for SqliteMetaStore {
    async fn create_retention_policy(
        &self,
        project_id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RetentionPolicyError> {
        let (definition, audit) = (definition.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let exists: bool = c
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?1)")
                    .and_then(|mut s| s.query_row([project_id], |r| r.get(0)))
                    .map_err(db_err)?;
                if !exists {
                    return Err(RetentionPolicyError::NoProject(project_id));
                }
                let existing: Option<String> = c
                    .prepare_cached(
                        "SELECT value FROM project_metadata WHERE project_id = ?1 AND name = ?2
                         UNION ALL
                         SELECT CAST(id AS TEXT) FROM retention_policies WHERE project_id = ?1
                         LIMIT 1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![project_id, RETENTION_ID_KEY], |r| r.get(0))
                            .optional()
                    })
                    .map_err(db_err)?;
                if let Some(existing) = existing {
                    return Err(RetentionPolicyError::Exists {
                        project_id,
                        existing,
                    });
                }
                let id: i64 = c
                    .prepare_cached(
                        "INSERT INTO retention_policies
                             (project_id, definition, next_fire, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![project_id, definition, next_fire, now], |r| {
                            r.get(0)
                        })
                    })
                    .map_err(db_err)?;
                c.prepare_cached(
                    "INSERT INTO project_metadata (project_id, name, value) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![project_id, RETENTION_ID_KEY, id.to_string()]))
                .map_err(db_err)?;
                audited(c, true, &audit)?;
                Ok(id)
            })
            .await
    }

    async fn retention_policy(&self, id: i64) -> Result<Option<RetentionPolicy>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {POLICY_COLUMNS} FROM retention_policies WHERE id = ?1"
            ))?
            .query_row([id], policy_row)
            .optional()
        })
    }

    async fn update_retention_policy(
        &self,
        id: i64,
        definition: &str,
        next_fire: Option<i64>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (definition, audit) = (definition.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE retention_policies
                         SET definition = ?2, next_fire = ?3, updated_at = ?4 WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, definition, next_fire, now]))
                    .map_err(db_err)?
                    > 0;
                audited(c, changed, &audit)
            })
            .await
    }

    async fn delete_retention_policy(
        &self,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let project: Option<i64> = c
                    .prepare_cached(
                        "DELETE FROM retention_policies WHERE id = ?1 RETURNING project_id",
                    )
                    .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                    .map_err(db_err)?;
                if let Some(project) = project {
                    c.prepare_cached(
                        "DELETE FROM project_metadata
                         WHERE project_id = ?1 AND name = ?2 AND value = ?3",
                    )
                    .and_then(|mut s| s.execute(params![project, RETENTION_ID_KEY, id.to_string()]))
                    .map_err(db_err)?;
                }
                audited(c, project.is_some(), &audit)
            })
            .await
    }

    async fn due_retention_policies(&self, now: i64) -> Result<Vec<RetentionPolicy>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {POLICY_COLUMNS} FROM retention_policies
                 WHERE next_fire IS NOT NULL AND next_fire <= ?1 ORDER BY id"
            ))?
            .query_map([now], policy_row)?
            .collect()
        })
    }

    async fn start_retention_execution(
        &self,
        start: &ExecutionStart,
        now: i64,
    ) -> Result<Option<StartedExecution>, MetaError> {
        let start = start.clone();
        self.writer
            .run(move |c| {
                let definition: Option<String> = c
                    .prepare_cached("SELECT definition FROM retention_policies WHERE id = ?1")
                    .and_then(|mut s| s.query_row([start.policy_id], |r| r.get(0)).optional())
                    .map_err(db_err)?;
                let Some(definition) = definition else {
                    return Ok(None);
                };
                if let Some(fire) = start.fire {
                    let moved = c
                        .prepare_cached(
                            "UPDATE retention_policies SET next_fire = ?3
                             WHERE id = ?1 AND next_fire = ?2",
                        )
                        .and_then(|mut s| s.execute(params![start.policy_id, fire.seen, fire.next]))
                        .map_err(db_err)?
                        > 0;
                    if !moved || execution_unfinished(c, start.policy_id).map_err(db_err)? {
                        return Ok(None);
                    }
                }
                let execution_id: i64 = c
                    .prepare_cached(
                        "INSERT INTO retention_executions
                             (policy_id, trigger, dry_run, operator, status, policy, started_at)
                         VALUES (?1, ?2, ?3, ?4, 'Running', ?5, ?6) RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            params![
                                start.policy_id,
                                start.trigger,
                                start.dry_run,
                                start.operator,
                                definition,
                                now
                            ],
                            |r| r.get(0),
                        )
                    })
                    .map_err(db_err)?;
                let job = NewJob {
                    spec: start.job.clone(),
                    run_after: now,
                    dedup_key: None,
                };
                let job_id = insert_job(c, &job, now)?.id();
                c.prepare_cached("UPDATE retention_executions SET job_id = ?2 WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![execution_id, job_id]))
                    .map_err(db_err)?;
                c.prepare_cached(
                    "DELETE FROM retention_executions
                     WHERE policy_id = ?1 AND status <> 'Running' AND id NOT IN (
                         SELECT id FROM retention_executions WHERE policy_id = ?1
                           AND status <> 'Running'
                         ORDER BY id DESC LIMIT ?2)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        start.policy_id,
                        i64::try_from(start.keep).unwrap_or(i64::MAX)
                    ])
                })
                .map_err(db_err)?;
                Ok(Some(StartedExecution {
                    execution_id,
                    job_id,
                }))
            })
            .await
    }

    async fn retention_execution(&self, id: i64) -> Result<Option<RetentionExecution>, MetaError> {
        self.readers.with(|c| execution_where(c, "id", id))
    }

    async fn retention_execution_of_job(
        &self,
        job: JobId,
    ) -> Result<Option<RetentionExecution>, MetaError> {
        self.readers.with(|c| execution_where(c, "job_id", job))
    }

    async fn list_retention_executions(
        &self,
        policy_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<RetentionExecution>, MetaError> {
        self.readers.with(|c| {
            let total: u64 = c
                .prepare_cached("SELECT count(*) FROM retention_executions WHERE policy_id = ?1")?
                .query_row([policy_id], |r| r.get(0))?;
            let items = c
                .prepare_cached(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE policy_id = ?1
                     ORDER BY id DESC LIMIT ?2 OFFSET ?3"
                ))?
                .query_map(
                    params![
                        policy_id,
                        i64::try_from(limit).unwrap_or(i64::MAX),
                        i64::try_from(offset).unwrap_or(i64::MAX)
                    ],
                    execution_row,
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Listed { items, total })
        })
    }

    async fn end_retention_execution(
        &self,
        id: i64,
        status: ExecutionStatus,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.writer
            .run(move |c| {
                let ended = c
                    .prepare_cached(
                        "UPDATE retention_executions SET status = ?2, ended_at = ?3
                         WHERE id = ?1 AND status = 'Running'",
                    )
                    .and_then(|mut s| s.execute(params![id, status.as_str(), now]))
                    .map_err(db_err)?
                    > 0;
                if ended {
                    c.prepare_cached(
                        "UPDATE retention_tasks SET status = ?2, ended_at = ?3
                         WHERE execution_id = ?1 AND status IN ('Pending', 'Running')",
                    )
                    .and_then(|mut s| s.execute(params![id, status.open_tasks_end().as_str(), now]))
                    .map_err(db_err)?;
                }
                Ok(ended)
            })
            .await
    }

    async fn add_retention_tasks(
        &self,
        execution_id: i64,
        repositories: &[String],
    ) -> Result<Vec<RetentionTask>, MetaError> {
        let repositories = repositories.to_vec();
        self.writer
            .run(move |c| {
                let existing = tasks_of(c, execution_id, 0, None).map_err(db_err)?;
                // An execution that ended gets no tasks.
                let running = c
                    .prepare_cached(
                        "SELECT status = 'Running' FROM retention_executions WHERE id = ?1",
                    )
                    .and_then(|mut s| s.query_row(params![execution_id], |r| r.get(0)).optional())
                    .map_err(db_err)?;
                if existing.total > 0 || running != Some(true) {
                    return Ok(existing.items);
                }
                let mut insert = c
                    .prepare_cached(
                        "INSERT INTO retention_tasks (execution_id, repository, status)
                         VALUES (?1, ?2, 'Pending')",
                    )
                    .map_err(db_err)?;
                for repository in &repositories {
                    insert
                        .execute(params![execution_id, repository])
                        .map_err(db_err)?;
                }
                Ok(tasks_of(c, execution_id, 0, None).map_err(db_err)?.items)
            })
            .await
    }

    async fn list_retention_tasks(
        &self,
        execution_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<RetentionTask>, MetaError> {
        self.readers
            .with(|c| tasks_of(c, execution_id, offset, limit))
    }

    async fn retention_task(&self, id: i64) -> Result<Option<RetentionTask>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE id = ?1"
            ))?
            .query_row([id], task_row)
            .optional()
        })
    }

    async fn start_retention_task(&self, id: i64, now: i64) -> Result<bool, MetaError> {
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE retention_tasks SET status = 'Running', started_at = ?2
                     WHERE id = ?1 AND status IN ('Pending', 'Running')",
                )
                .and_then(|mut s| s.execute(params![id, now]))
                .map(|n| n > 0)
                .map_err(db_err)
            })
            .await
    }

    async fn end_retention_task(
        &self,
        id: i64,
        end: &TaskEnd,
        now: i64,
    ) -> Result<bool, MetaError> {
        let end = end.clone();
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE retention_tasks
                     SET status = ?2, total = ?3, retained = ?4, log = ?5, ended_at = ?6,
                         started_at = coalesce(started_at, ?6)
                     WHERE id = ?1 AND status IN ('Pending', 'Running')",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id,
                        end.status.as_str(),
                        end.total,
                        end.retained,
                        end.log,
                        now
                    ])
                })
                .map(|n| n > 0)
                .map_err(db_err)
            })
            .await
    }

    async fn retention_task_log(&self, id: i64) -> Result<Option<String>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached("SELECT log FROM retention_tasks WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()
        })
    }

    async fn retention_candidates(
        &self,
        repository: &RepositoryName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RetentionCandidate>, MetaError> {
        self.readers.with(|c| {
            let mut s = c.prepare_cached(CANDIDATES)?;
            let mut rows = s.query(params![repository.as_str(), after, limit])?;
            candidate_rows(&mut rows)
        })
    }
}
