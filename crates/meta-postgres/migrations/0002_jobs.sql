-- The durable job queue and its schedules.
--
-- A job is claimable when it is queued or running and its due_at has come: a queued
-- job's due_at is when it may (next) run, a running job's is when its lease expires
-- (its runner is then presumed lost). lease_token names the current claim; heartbeats
-- and finishes must present it. Claimers lock the row they take with
-- FOR UPDATE SKIP LOCKED, so concurrent claimers on any node pass each other by.
CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    max_attempts BIGINT NOT NULL,
    backoff_ms   BIGINT NOT NULL,
    dedup_key    TEXT   UNIQUE,
    state        TEXT   NOT NULL
                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    due_at       BIGINT NOT NULL,
    lease_token  TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    last_error   TEXT
);
-- Claims walk only the jobs not yet done, in the order they are taken.
CREATE INDEX jobs_live ON jobs (due_at, id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_kind ON jobs (kind, id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Recurring work: each firing advances next_fire with a compare-and-set and enqueues
-- one job, whose dedup key is 'name@fire time'.
CREATE TABLE schedules (
    name         TEXT   PRIMARY KEY,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    max_attempts BIGINT NOT NULL,
    backoff_ms   BIGINT NOT NULL,
    period       TEXT   NOT NULL,
    next_fire    BIGINT NOT NULL
);
