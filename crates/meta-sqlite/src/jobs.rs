//! The job queue and its schedules, in the same database (migrations 0012 and 0015).
//!
//! Every claim, heartbeat, checkpoint, stop request and firing goes through the one
//! writer thread, so each is one transaction and no two claimers ever see the same job
//! free. Leases still expire: a
//! process that stops mid-job leaves its lease behind, and after a restart the job is
//! claimed again once the lease has run out.
//!
//! Enqueued jobs and schedules must survive a power loss (a caller was told they are
//! stored), and so must stop requests. Claims, heartbeats, checkpoints, log lines,
//! finishes and firings need only survive a crash of the process: if a power loss rolls
//! one back, the job runs once more (from an older checkpoint), which every job must
//! tolerate anyway (its runner may die after its work and before its finish).
//!
//! A job's log lines are rows of `job_logs`, deleted with their job by its foreign key
//! (the writer's connection enforces foreign keys). Each append takes its numbers from
//! the job's `log_seq`, moved by the same transaction.

use async_trait::async_trait;
use berth_meta::{
    Checkpoint, ClaimedJob, Enqueued, JobError, JobId, JobLogLine, JobOutcome, JobRecord, JobSpec,
    JobStore, Lease, MetaError, NewJob, Period, RUNNER_LOST, RetryPolicy, Schedule, StopRequest,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params, params_from_iter};

use crate::writer::Durability;
use crate::{SqliteMetaStore, db_err};

/// The columns [`job_record`] reads, in its order.
const JOB_COLUMNS: &str = "id, kind, payload, max_attempts, backoff_ms, state, attempts, \
                           created_at, due_at, finished_at, last_error, dedup_key, progress, \
                           stop_requested";

/// A fresh lease token: 128 random bits.
const NEW_TOKEN: &str = "lower(hex(randomblob(16)))";

fn conversion(column: usize, e: MetaError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
}

fn job_record(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = r.get(5)?;
    Ok(JobRecord {
        id: r.get(0)?,
        spec: JobSpec {
            kind: r.get(1)?,
            payload: r.get(2)?,
            retry: RetryPolicy {
                max_attempts: r.get(3)?,
                backoff_ms: r.get(4)?,
            },
        },
        state: state.parse().map_err(|e| conversion(5, e))?,
        attempts: r.get(6)?,
        created_at: r.get(7)?,
        due_at: r.get(8)?,
        finished_at: r.get(9)?,
        last_error: r.get(10)?,
        dedup_key: r.get(11)?,
        progress: r.get(12)?,
        stop_requested: r.get(13)?,
    })
}

fn schedule(r: &Row<'_>) -> rusqlite::Result<Schedule> {
    let period: String = r.get(5)?;
    Ok(Schedule {
        name: r.get(0)?,
        spec: JobSpec {
            kind: r.get(1)?,
            payload: r.get(2)?,
            retry: RetryPolicy {
                max_attempts: r.get(3)?,
                backoff_ms: r.get(4)?,
            },
        },
        period: period
            .parse::<Period>()
            .map_err(|e| conversion(5, e.into()))?,
        next_fire: r.get(6)?,
    })
}

/// Inserts a job unless its dedup key is taken; in the caller's transaction.
pub(crate) fn insert_job(c: &Connection, job: &NewJob, now: i64) -> Result<Enqueued, MetaError> {
    let spec = &job.spec;
    let inserted: Option<JobId> = c
        .prepare_cached(
            "INSERT INTO jobs (kind, payload, max_attempts, backoff_ms, dedup_key, state,
                               due_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7)
             ON CONFLICT (dedup_key) DO NOTHING
             RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    spec.kind,
                    spec.payload,
                    spec.retry.max_attempts,
                    spec.retry.backoff_ms,
                    job.dedup_key,
                    job.run_after,
                    now
                ],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(db_err)?;
    if let Some(id) = inserted {
        return Ok(Enqueued::New(id));
    }
    c.prepare_cached("SELECT id FROM jobs WHERE dedup_key = ?1")
        .and_then(|mut s| s.query_row([&job.dedup_key], |r| r.get(0)))
        .map(Enqueued::Duplicate)
        .map_err(db_err)
}

/// `?first, ?first+1, …`: `n` numbered parameters.
fn parameters(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ends the running jobs of `kinds` whose lease expired and that must not run again
/// (`?1` now, `?2` the error of a lost last attempt, the kinds from `?3`): stopped when
/// a stop was requested, failed when on their last attempt. The `state IN` term lets
/// SQLite use the partial index of live jobs.
fn sweep_sql(kinds: usize) -> String {
    format!(
        "UPDATE jobs SET state = CASE WHEN stop_requested THEN 'stopped' ELSE 'failed' END,
                         finished_at = ?1, lease_token = NULL,
                         last_error = CASE WHEN stop_requested THEN last_error ELSE ?2 END
         WHERE state IN ('queued', 'running') AND due_at <= ?1 AND kind IN ({})
           AND state = 'running' AND (stop_requested OR attempts >= max_attempts)",
        parameters(3, kinds)
    )
}

/// Whether any job of `kinds` is due (`?1` now, the kinds from `?2`).
fn any_due_sql(kinds: usize) -> String {
    format!(
        "SELECT 1 FROM jobs
         WHERE state IN ('queued', 'running') AND due_at <= ?1 AND kind IN ({})",
        parameters(2, kinds)
    )
}

/// Claims the first due job of `kinds` (`?1` now, `?2` the lease's length, the kinds
/// from `?3`).
fn claim_sql(kinds: usize) -> String {
    format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, due_at = ?1 + ?2,
                         lease_token = {NEW_TOKEN}
         WHERE id = (SELECT id FROM jobs
                     WHERE state IN ('queued', 'running') AND due_at <= ?1
                       AND kind IN ({})
                     ORDER BY due_at, id LIMIT 1)
         RETURNING id, lease_token, kind, payload, attempts, max_attempts, due_at, progress",
        parameters(3, kinds)
    )
}

/// `leading` then `kinds`: the parameters of [`any_due_sql`], [`sweep_sql`] and
/// [`claim_sql`].
fn with_kinds<'a>(leading: &[&'a dyn ToSql], kinds: &'a [String]) -> Vec<&'a dyn ToSql> {
    leading
        .iter()
        .copied()
        .chain(kinds.iter().map(|k| k as &dyn ToSql))
        .collect()
}

/// Claims the first due job of `kinds`; in the caller's transaction.
fn claim(
    c: &Connection,
    kinds: &[String],
    now: i64,
    lease_ms: i64,
) -> Result<Option<ClaimedJob>, MetaError> {
    c.prepare_cached(&sweep_sql(kinds.len()))
        .and_then(|mut s| s.execute(params_from_iter(with_kinds(&[&now, &RUNNER_LOST], kinds))))
        .map_err(db_err)?;
    c.prepare_cached(&claim_sql(kinds.len()))
        .and_then(|mut s| {
            s.query_row(
                params_from_iter(with_kinds(&[&now, &lease_ms], kinds)),
                |r| {
                    Ok(ClaimedJob {
                        lease: Lease {
                            job: r.get(0)?,
                            token: r.get(1)?,
                        },
                        kind: r.get(2)?,
                        payload: r.get(3)?,
                        attempt: r.get(4)?,
                        max_attempts: r.get(5)?,
                        lease_expires_at: r.get(6)?,
                        progress: r.get(7)?,
                    })
                },
            )
            .optional()
        })
        .map_err(db_err)
}

/// Ends the run holding `lease` as `outcome` says; in the caller's transaction.
fn finish(c: &Connection, lease: &Lease, outcome: &JobOutcome, now: i64) -> Result<(), JobError> {
    let held: Option<(u32, RetryPolicy, bool)> = c
        .prepare_cached(
            "SELECT attempts, max_attempts, backoff_ms, stop_requested FROM jobs
             WHERE id = ?1 AND lease_token = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![lease.job, lease.token], |r| {
                Ok((
                    r.get(0)?,
                    RetryPolicy {
                        max_attempts: r.get(1)?,
                        backoff_ms: r.get(2)?,
                    },
                    r.get(3)?,
                ))
            })
            .optional()
        })
        .map_err(db_err)?;
    let (attempt, retry, stop_requested) = held.ok_or(JobError::LeaseLost(lease.job))?;
    let end = outcome.end(attempt, retry, stop_requested, now);
    c.prepare_cached(
        "UPDATE jobs SET state = ?2, due_at = coalesce(?3, due_at), finished_at = ?4,
                         last_error = coalesce(?5, last_error), lease_token = NULL
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            lease.job,
            end.state.as_str(),
            end.due_at,
            end.finished_at,
            end.error
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// Runs `sql`, an update of the job holding `lease` (`?1` the job, `?2` the token, `?3`
/// `value`), returning one value; the lease is lost when no row matched.
fn with_lease<R: rusqlite::types::FromSql>(
    c: &Connection,
    sql: &str,
    lease: &Lease,
    value: impl ToSql,
) -> Result<R, JobError> {
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(params![lease.job, lease.token, value], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?
        .ok_or(JobError::LeaseLost(lease.job))
}

/// Asks job `id` to stop at `now`; in the caller's transaction.
fn request_stop(c: &Connection, id: JobId, now: i64) -> Result<StopRequest, MetaError> {
    // SET reads the row as it was: a queued job ends stopped, a running one is flagged.
    let left: Option<String> = c
        .prepare_cached(
            "UPDATE jobs SET stop_requested = 1,
                             state = CASE state WHEN 'queued' THEN 'stopped' ELSE state END,
                             finished_at = CASE state WHEN 'queued' THEN ?2
                                                      ELSE finished_at END
             WHERE id = ?1 AND state IN ('queued', 'running')
             RETURNING state",
        )
        .and_then(|mut s| s.query_row(params![id, now], |r| r.get(0)).optional())
        .map_err(db_err)?;
    Ok(match left.as_deref() {
        Some("stopped") => StopRequest::Stopped,
        Some(_) => StopRequest::Requested,
        None => {
            let exists = c
                .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")
                .and_then(|mut s| s.exists([id]))
                .map_err(db_err)?;
            if exists {
                StopRequest::AlreadyEnded
            } else {
                StopRequest::NotFound
            }
        }
    })
}

/// Appends `lines` to the log of the job holding `lease`; in the caller's transaction.
fn append_log(c: &Connection, lease: &Lease, lines: &[String], now: i64) -> Result<(), JobError> {
    let count = i64::try_from(lines.len()).unwrap_or(i64::MAX);
    let last: i64 = with_lease(
        c,
        "UPDATE jobs SET log_seq = log_seq + ?3
         WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
         RETURNING log_seq",
        lease,
        count,
    )?;
    let mut insert = c
        .prepare_cached(
            "INSERT INTO job_logs (job_id, seq, logged_at, line) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db_err)?;
    for (seq, line) in (last - count + 1..).zip(lines) {
        insert
            .execute(params![lease.job, seq, now, line])
            .map_err(db_err)?;
    }
    Ok(())
}

/// Whether a job of `kind` is queued or running.
fn kind_unfinished(c: &Connection, kind: &str) -> Result<bool, MetaError> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = ?1 AND state IN ('queued', 'running'))",
    )
    .and_then(|mut s| s.query_row(params![kind], |r| r.get(0)))
    .map_err(db_err)
}

#[async_trait]
impl JobStore for SqliteMetaStore {
    async fn enqueue(&self, job: &NewJob, now: i64) -> Result<Enqueued, MetaError> {
        let job = job.clone();
        self.writer.run(move |c| insert_job(c, &job, now)).await
    }

    async fn claim(
        &self,
        kinds: &[String],
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, MetaError> {
        // Runners poll often; an idle queue is answered by a reader, without a write.
        let any_due = !kinds.is_empty()
            && self.readers.with(|c| {
                c.prepare_cached(&any_due_sql(kinds.len()))?
                    .exists(params_from_iter(with_kinds(&[&now], kinds)))
            })?;
        if !any_due {
            return Ok(None);
        }
        let kinds = kinds.to_vec();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                claim(c, &kinds, now, lease_ms)
            })
            .await
    }

    async fn heartbeat(&self, lease: &Lease, now: i64, lease_ms: i64) -> Result<i64, JobError> {
        let lease = lease.clone();
        let until = now.saturating_add(lease_ms);
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                with_lease(
                    c,
                    "UPDATE jobs SET due_at = ?3
                     WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
                     RETURNING due_at",
                    &lease,
                    until,
                )
            })
            .await
    }

    async fn finish(&self, lease: &Lease, outcome: &JobOutcome, now: i64) -> Result<(), JobError> {
        let (lease, outcome) = (lease.clone(), outcome.clone());
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                finish(c, &lease, &outcome, now)
            })
            .await
    }

    async fn release(&self, lease: &Lease, now: i64) -> Result<(), JobError> {
        let lease = lease.clone();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                with_lease::<JobId>(
                    c,
                    "UPDATE jobs SET state = CASE WHEN stop_requested THEN 'stopped'
                                                  ELSE 'queued' END,
                                     finished_at = CASE WHEN stop_requested THEN ?3 END,
                                     due_at = ?3, attempts = attempts - 1, lease_token = NULL
                     WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
                     RETURNING id",
                    &lease,
                    now,
                )
                .map(drop)
            })
            .await
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id], job_record)
                .optional()
        })
    }

    async fn jobs_of_kind(
        &self,
        kind: &str,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, MetaError> {
        let before = before.unwrap_or(JobId::MAX);
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![kind, before, limit], job_record)?
            .collect()
        })
    }

    async fn purge_finished_jobs(&self, before: i64) -> Result<u64, MetaError> {
        // Their log lines go with them (ON DELETE CASCADE).
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                c.execute("DELETE FROM jobs WHERE finished_at < ?1", [before])
                    .map(|n| n as u64)
                    .map_err(db_err)
            })
            .await
    }

    async fn checkpoint(
        &self,
        lease: &Lease,
        progress: &str,
        _now: i64,
    ) -> Result<Checkpoint, JobError> {
        let (lease, progress) = (lease.clone(), progress.to_owned());
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                with_lease(
                    c,
                    "UPDATE jobs SET progress = ?3
                     WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
                     RETURNING stop_requested",
                    &lease,
                    progress,
                )
                .map(Checkpoint::when_stop_requested)
            })
            .await
    }

    async fn request_stop(&self, id: JobId, now: i64) -> Result<StopRequest, MetaError> {
        self.writer.run(move |c| request_stop(c, id, now)).await
    }

    async fn append_job_log(
        &self,
        lease: &Lease,
        lines: &[String],
        now: i64,
    ) -> Result<(), JobError> {
        let (lease, lines) = (lease.clone(), lines.to_vec());
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                append_log(c, &lease, &lines, now)
            })
            .await
    }

    async fn job_log(
        &self,
        id: JobId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<JobLogLine>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(
                "SELECT seq, logged_at, line FROM job_logs WHERE job_id = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![id, after, limit], |r| {
                Ok(JobLogLine {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    line: r.get(2)?,
                })
            })?
            .collect()
        })
    }

    async fn put_schedule(&self, schedule: &Schedule) -> Result<(), MetaError> {
        let s = schedule.clone();
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO schedules (name, kind, payload, max_attempts, backoff_ms,
                                            period, next_fire)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (name) DO UPDATE SET
                         kind = excluded.kind, payload = excluded.payload,
                         max_attempts = excluded.max_attempts,
                         backoff_ms = excluded.backoff_ms,
                         next_fire = CASE WHEN period = excluded.period THEN next_fire
                                          ELSE excluded.next_fire END,
                         period = excluded.period",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        s.name,
                        s.spec.kind,
                        s.spec.payload,
                        s.spec.retry.max_attempts,
                        s.spec.retry.backoff_ms,
                        s.period.to_string(),
                        s.next_fire
                    ])
                })
                .map(drop)
                .map_err(db_err)
            })
            .await
    }

    async fn schedules(&self) -> Result<Vec<Schedule>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(
                "SELECT name, kind, payload, max_attempts, backoff_ms, period, next_fire
                 FROM schedules ORDER BY name",
            )?
            .query_map([], schedule)?
            .collect()
        })
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, MetaError> {
        let name = name.to_owned();
        self.writer
            .run(move |c| {
                c.execute("DELETE FROM schedules WHERE name = ?1", [name])
                    .map(|n| n > 0)
                    .map_err(db_err)
            })
            .await
    }

    async fn fire_schedule(
        &self,
        name: &str,
        seen: i64,
        next: i64,
        now: i64,
    ) -> Result<Option<JobId>, MetaError> {
        let name = name.to_owned();
        self.writer
            .run_with(Durability::ProcessCrash, move |c| {
                let fired: Option<JobSpec> = c
                    .prepare_cached(
                        "UPDATE schedules SET next_fire = ?3 WHERE name = ?1 AND next_fire = ?2
                         RETURNING kind, payload, max_attempts, backoff_ms",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![name, seen, next], |r| {
                            Ok(JobSpec {
                                kind: r.get(0)?,
                                payload: r.get(1)?,
                                retry: RetryPolicy {
                                    max_attempts: r.get(2)?,
                                    backoff_ms: r.get(3)?,
                                },
                            })
                        })
                        .optional()
                    })
                    .map_err(db_err)?;
                let Some(spec) = fired else {
                    return Ok(None);
                };
                if kind_unfinished(c, &spec.kind)? {
                    return Ok(None);
                }
                let job = NewJob {
                    spec,
                    run_after: seen,
                    dedup_key: Some(Schedule::dedup_key(&name, seen)),
                };
                Ok(match insert_job(c, &job, now)? {
                    Enqueued::New(id) => Some(id),
                    Enqueued::Duplicate(_) => None,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::SqliteMetaStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_job_queue_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        berth_meta::conformance::jobs::run(vec![Arc::new(store)]).await;
    }

    #[test]
    fn claims_walk_the_index_of_live_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMetaStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let kinds = ["a".to_owned(), "b".to_owned()];
        let checks = [
            (super::any_due_sql(2), super::with_kinds(&[&1], &kinds)),
            (
                super::sweep_sql(2),
                super::with_kinds(&[&1, &"lost"], &kinds),
            ),
            (super::claim_sql(2), super::with_kinds(&[&1, &2], &kinds)),
        ];
        for (sql, params) in checks {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains("USING INDEX jobs_live (kind=? AND due_at<?)")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN jobs")),
                "{sql}: {plan:?}"
            );
        }
    }
}
