-- The durable job queue and its schedules.
--
-- A job is claimable when it is queued or running and its due_at has come: a queued
-- job's due_at is when it may (next) run, a running job's is when its lease expires
-- (its runner is then presumed lost). lease_token names the current claim; heartbeats
-- and finishes must present it.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    max_attempts     INTEGER NOT NULL,
    backoff_ms       INTEGER NOT NULL,
    dedup_key        TEXT    UNIQUE,
    state            TEXT    NOT NULL
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_at           INTEGER NOT NULL,
    lease_token      TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    last_error       TEXT
);
-- Claims search only the jobs not yet done, however long the history grows.
CREATE INDEX jobs_live ON jobs(kind, due_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_kind ON jobs(kind, id);
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;

-- Recurring work: each firing advances next_fire with a compare-and-set and enqueues
-- one job, whose dedup key is 'name@fire time'.
CREATE TABLE schedules (
    name         TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_ms   INTEGER NOT NULL,
    period       TEXT    NOT NULL,
    next_fire    INTEGER NOT NULL
) WITHOUT ROWID;
