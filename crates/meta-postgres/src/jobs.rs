//! The job queue and its schedules, shared by every node (migrations 0002 and 0008).
//!
//! A claim is one `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`: claimers on
//! any node lock different rows and never wait for each other. A heartbeat, checkpoint,
//! log append or release matches the lease token in the same statement that changes the
//! row, so a runner whose lease was taken over changes nothing; a finish locks the row
//! holding its token before it reads what the run's end depends on. A schedule fires in
//! one statement: the compare-and-set of its next fire time feeds the insert of its job.
//!
//! Each statement that depends on a job's stop request reads it from the row it
//! updates (or has locked), so a stop request committed meanwhile is never missed: a
//! request and a claim, finish or release of the same job run one after the other on
//! its row lock.

use async_trait::async_trait;
use berth_meta::{
    Checkpoint, ClaimedJob, Enqueued, JobError, JobId, JobLogLine, JobOutcome, JobRecord, JobSpec,
    JobStore, Lease, MetaError, NewJob, RUNNER_LOST, RetryPolicy, Schedule, StopRequest,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::{PgMetaStore, db_err};

/// The columns [`job_record`] reads.
const JOB_COLUMNS: &str = "id, kind, payload, max_attempts, backoff_ms, state, attempts, \
                           created_at, due_at, finished_at, last_error, dedup_key, progress, \
                           stop_requested";

/// A count stored as BIGINT, read back.
fn count(row: &PgRow, column: &str) -> Result<u32, MetaError> {
    let value: i64 = row.try_get(column).map_err(db_err)?;
    u32::try_from(value).map_err(|_| MetaError(format!("jobs.{column} = {value} is out of range")))
}

fn job_spec(row: &PgRow) -> Result<JobSpec, MetaError> {
    Ok(JobSpec {
        kind: row.try_get("kind").map_err(db_err)?,
        payload: row.try_get("payload").map_err(db_err)?,
        retry: RetryPolicy {
            max_attempts: count(row, "max_attempts")?,
            backoff_ms: row.try_get("backoff_ms").map_err(db_err)?,
        },
    })
}

fn job_record(row: &PgRow) -> Result<JobRecord, MetaError> {
    let state: &str = row.try_get("state").map_err(db_err)?;
    Ok(JobRecord {
        id: row.try_get("id").map_err(db_err)?,
        spec: job_spec(row)?,
        state: state.parse()?,
        attempts: count(row, "attempts")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        due_at: row.try_get("due_at").map_err(db_err)?,
        finished_at: row.try_get("finished_at").map_err(db_err)?,
        last_error: row.try_get("last_error").map_err(db_err)?,
        dedup_key: row.try_get("dedup_key").map_err(db_err)?,
        progress: row.try_get("progress").map_err(db_err)?,
        stop_requested: row.try_get("stop_requested").map_err(db_err)?,
    })
}

fn schedule(row: &PgRow) -> Result<Schedule, MetaError> {
    let period: &str = row.try_get("period").map_err(db_err)?;
    Ok(Schedule {
        name: row.try_get("name").map_err(db_err)?,
        spec: job_spec(row)?,
        period: period.parse()?,
        next_fire: row.try_get("next_fire").map_err(db_err)?,
    })
}

impl PgMetaStore {
    /// Runs `sql`, an update of the job holding `lease` (`$1` the job, `$2` the token,
    /// `$3` `value`) returning one value; the lease is lost when no row matched.
    async fn with_lease<'a, V, R>(
        &self,
        sql: &'a str,
        lease: &'a Lease,
        value: V,
    ) -> Result<R, JobError>
    where
        V: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send,
        R: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .bind(lease.job)
            .bind(&lease.token)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or(JobError::LeaseLost(lease.job))
    }
}

#[async_trait]
impl JobStore for PgMetaStore {
    async fn enqueue(&self, job: &NewJob, now: i64) -> Result<Enqueued, MetaError> {
        let spec = &job.spec;
        let inserted: Option<JobId> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, payload, max_attempts, backoff_ms, dedup_key, state,
                               due_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7)
             ON CONFLICT (dedup_key) DO NOTHING
             RETURNING id",
        )
        .bind(&spec.kind)
        .bind(&spec.payload)
        .bind(i64::from(spec.retry.max_attempts))
        .bind(spec.retry.backoff_ms)
        .bind(&job.dedup_key)
        .bind(job.run_after)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        if let Some(id) = inserted {
            return Ok(Enqueued::New(id));
        }
        // The key's holder committed before the insert above gave way to it.
        sqlx::query_scalar("SELECT id FROM jobs WHERE dedup_key = $1")
            .bind(&job.dedup_key)
            .fetch_one(&self.pool)
            .await
            .map(Enqueued::Duplicate)
            .map_err(db_err)
    }

    async fn claim(
        &self,
        kinds: &[String],
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, MetaError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        // Running jobs whose lease expired and that must not run again end: stopped
        // when a stop was requested, failed on their last attempt.
        sqlx::query(
            "UPDATE jobs SET state = CASE WHEN stop_requested THEN 'stopped' ELSE 'failed' END,
                             finished_at = $1, lease_token = NULL,
                             last_error = CASE WHEN stop_requested THEN last_error ELSE $2 END
             WHERE id IN (SELECT id FROM jobs
                          WHERE state = 'running' AND due_at <= $1 AND kind = ANY($3)
                            AND (stop_requested OR attempts >= max_attempts)
                          FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(RUNNER_LOST)
        .bind(kinds)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, due_at = $1 + $2,
                             lease_token = gen_random_uuid()::text
             WHERE id = (SELECT id FROM jobs
                         WHERE state IN ('queued', 'running') AND due_at <= $1
                           AND kind = ANY($3)
                           AND (state = 'queued'
                                OR (attempts < max_attempts AND NOT stop_requested))
                         ORDER BY due_at, id
                         LIMIT 1
                         FOR UPDATE SKIP LOCKED)
             RETURNING id, lease_token, kind, payload, attempts, max_attempts, due_at,
                       progress",
        )
        .bind(now)
        .bind(lease_ms)
        .bind(kinds)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(ClaimedJob {
                lease: Lease {
                    job: r.try_get("id").map_err(db_err)?,
                    token: r.try_get("lease_token").map_err(db_err)?,
                },
                kind: r.try_get("kind").map_err(db_err)?,
                payload: r.try_get("payload").map_err(db_err)?,
                attempt: count(&r, "attempts")?,
                max_attempts: count(&r, "max_attempts")?,
                lease_expires_at: r.try_get("due_at").map_err(db_err)?,
                progress: r.try_get("progress").map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn heartbeat(&self, lease: &Lease, now: i64, lease_ms: i64) -> Result<i64, JobError> {
        self.with_lease(
            "UPDATE jobs SET due_at = $3
             WHERE id = $1 AND lease_token = $2 AND state = 'running'
             RETURNING due_at",
            lease,
            now.saturating_add(lease_ms),
        )
        .await
    }

    async fn finish(&self, lease: &Lease, outcome: &JobOutcome, now: i64) -> Result<(), JobError> {
        // The row is locked before it is read: a stop request or a claim taking the job
        // over waits until the run's end is written.
        let mut tx = self.durable().await?;
        let held = sqlx::query(
            "SELECT attempts, max_attempts, backoff_ms, stop_requested FROM jobs
             WHERE id = $1 AND lease_token = $2
             FOR UPDATE",
        )
        .bind(lease.job)
        .bind(&lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or(JobError::LeaseLost(lease.job))?;
        let retry = RetryPolicy {
            max_attempts: count(&held, "max_attempts")?,
            backoff_ms: held.try_get("backoff_ms").map_err(db_err)?,
        };
        let stop_requested = held.try_get("stop_requested").map_err(db_err)?;
        let end = outcome.end(count(&held, "attempts")?, retry, stop_requested, now);
        sqlx::query(
            "UPDATE jobs SET state = $2, due_at = coalesce($3, due_at), finished_at = $4,
                             last_error = coalesce($5, last_error), lease_token = NULL
             WHERE id = $1",
        )
        .bind(lease.job)
        .bind(end.state.as_str())
        .bind(end.due_at)
        .bind(end.finished_at)
        .bind(end.error)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn release(&self, lease: &Lease, now: i64) -> Result<(), JobError> {
        self.with_lease::<_, JobId>(
            "UPDATE jobs SET state = CASE WHEN stop_requested THEN 'stopped' ELSE 'queued' END,
                             finished_at = CASE WHEN stop_requested THEN $3 END,
                             due_at = $3, attempts = attempts - 1, lease_token = NULL
             WHERE id = $1 AND lease_token = $2 AND state = 'running'
             RETURNING id",
            lease,
            now,
        )
        .await
        .map(drop)
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, MetaError> {
        sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(job_record)
            .transpose()
    }

    async fn jobs_of_kind(
        &self,
        kind: &str,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, MetaError> {
        sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND id < $2
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(kind)
        .bind(before.unwrap_or(JobId::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(job_record)
        .collect()
    }

    async fn purge_finished_jobs(&self, before: i64) -> Result<u64, MetaError> {
        // Their log lines go with them (ON DELETE CASCADE).
        sqlx::query("DELETE FROM jobs WHERE finished_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db_err)
    }

    async fn checkpoint(
        &self,
        lease: &Lease,
        progress: &str,
        _now: i64,
    ) -> Result<Checkpoint, JobError> {
        self.with_lease(
            "UPDATE jobs SET progress = $3
             WHERE id = $1 AND lease_token = $2 AND state = 'running'
             RETURNING stop_requested",
            lease,
            progress,
        )
        .await
        .map(Checkpoint::when_stop_requested)
    }

    async fn request_stop(&self, id: JobId, now: i64) -> Result<StopRequest, MetaError> {
        // SET reads the row as it was: a queued job ends stopped, a running one is
        // flagged. A claim racing the request runs before or after it on the row's lock.
        let (left, exists): (Option<String>, bool) = sqlx::query_as(
            "WITH asked AS (
                 UPDATE jobs SET stop_requested = true,
                                 state = CASE state WHEN 'queued' THEN 'stopped' ELSE state END,
                                 finished_at = CASE state WHEN 'queued' THEN $2
                                                          ELSE finished_at END
                 WHERE id = $1 AND state IN ('queued', 'running')
                 RETURNING state)
             SELECT (SELECT state FROM asked), EXISTS (SELECT 1 FROM jobs WHERE id = $1)",
        )
        .bind(id)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(match (left.as_deref(), exists) {
            (Some("stopped"), _) => StopRequest::Stopped,
            (Some(_), _) => StopRequest::Requested,
            (None, true) => StopRequest::AlreadyEnded,
            (None, false) => StopRequest::NotFound,
        })
    }

    async fn append_job_log(
        &self,
        lease: &Lease,
        lines: &[String],
        now: i64,
    ) -> Result<(), JobError> {
        // The update of log_seq locks the job's row, so appends racing each other take
        // consecutive numbers.
        let held: i64 = sqlx::query_scalar(
            "WITH held AS (
                 UPDATE jobs SET log_seq = log_seq + cardinality($3::text[])
                 WHERE id = $1 AND lease_token = $2 AND state = 'running'
                 RETURNING id, log_seq - cardinality($3::text[]) AS logged),
             appended AS (
                 INSERT INTO job_logs (job_id, seq, logged_at, line)
                 SELECT held.id, held.logged + l.n, $4, l.line
                 FROM held, unnest($3::text[]) WITH ORDINALITY AS l (line, n))
             SELECT count(*) FROM held",
        )
        .bind(lease.job)
        .bind(&lease.token)
        .bind(lines)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        match held {
            0 => Err(JobError::LeaseLost(lease.job)),
            _ => Ok(()),
        }
    }

    async fn job_log(
        &self,
        id: JobId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<JobLogLine>, MetaError> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, logged_at, line FROM job_logs WHERE job_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(seq, at, line)| JobLogLine { seq, at, line })
            .collect())
    }

    async fn put_schedule(&self, schedule: &Schedule) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO schedules (name, kind, payload, max_attempts, backoff_ms, period,
                                    next_fire)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET
                 kind = excluded.kind, payload = excluded.payload,
                 max_attempts = excluded.max_attempts, backoff_ms = excluded.backoff_ms,
                 next_fire = CASE WHEN schedules.period = excluded.period
                                  THEN schedules.next_fire ELSE excluded.next_fire END,
                 period = excluded.period",
        )
        .bind(&schedule.name)
        .bind(&schedule.spec.kind)
        .bind(&schedule.spec.payload)
        .bind(i64::from(schedule.spec.retry.max_attempts))
        .bind(schedule.spec.retry.backoff_ms)
        .bind(schedule.period.to_string())
        .bind(schedule.next_fire)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(db_err)
    }

    async fn schedules(&self) -> Result<Vec<Schedule>, MetaError> {
        sqlx::query(
            "SELECT name, kind, payload, max_attempts, backoff_ms, period, next_fire
             FROM schedules ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(schedule)
        .collect()
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, MetaError> {
        sqlx::query("DELETE FROM schedules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(db_err)
    }

    async fn fire_schedule(
        &self,
        name: &str,
        seen: i64,
        next: i64,
        now: i64,
    ) -> Result<Option<JobId>, MetaError> {
        // A concurrent firing of the same time waits for the row, then finds next_fire
        // moved on and fires nothing.
        sqlx::query_scalar(
            "WITH fired AS (
                 UPDATE schedules SET next_fire = $3 WHERE name = $1 AND next_fire = $2
                 RETURNING kind, payload, max_attempts, backoff_ms)
             INSERT INTO jobs (kind, payload, max_attempts, backoff_ms, dedup_key, state,
                               due_at, created_at)
             SELECT kind, payload, max_attempts, backoff_ms, $4, 'queued', $2, $5 FROM fired
             WHERE NOT EXISTS (SELECT 1 FROM jobs j
                               WHERE j.kind = fired.kind AND j.state IN ('queued', 'running'))
             ON CONFLICT (dedup_key) DO NOTHING
             RETURNING id",
        )
        .bind(name)
        .bind(seen)
        .bind(next)
        .bind(Schedule::dedup_key(name, seen))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_meta::JobStore;
    use berth_testkit_postgres::TempDatabase;

    use crate::PgMetaStore;
    use crate::tests::config;

    /// Two nodes on one database, as a cluster runs them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_job_queue_passes_the_conformance_suite_on_two_nodes() {
        let Some(db) = TempDatabase::create().await else {
            return;
        };
        let mut nodes: Vec<Arc<dyn JobStore>> = Vec::new();
        for _ in 0..2 {
            nodes.push(Arc::new(PgMetaStore::connect(&config(&db)).await.unwrap()));
        }
        berth_meta::conformance::jobs::run(nodes).await;
    }
}
