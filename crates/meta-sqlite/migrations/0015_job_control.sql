-- Job control: a job may end 'stopped' (a queued one at once, a running one at its
-- runner's next checkpoint, or when its lease expires), a run saves its progress for
-- the next attempt to resume from, and a job keeps a log.
--
-- SQLite cannot change a CHECK constraint, so the jobs table is built anew and its rows
-- copied with their ids. The new table takes over the old one's AUTOINCREMENT position
-- (sqlite_sequence), so ids of jobs already purged are never handed out again.
CREATE TABLE jobs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    max_attempts     INTEGER NOT NULL,
    backoff_ms       INTEGER NOT NULL,
    dedup_key        TEXT    UNIQUE,
    state            TEXT    NOT NULL
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'stopped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_at           INTEGER NOT NULL,
    lease_token      TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    last_error       TEXT,
    -- The last checkpoint a run saved.
    progress         TEXT,
    -- A stop was requested: the job is not run again.
    stop_requested   INTEGER NOT NULL DEFAULT 0 CHECK (stop_requested IN (0, 1)),
    -- The number of the job's last log line.
    log_seq          INTEGER NOT NULL DEFAULT 0
);
INSERT INTO jobs_new (id, kind, payload, max_attempts, backoff_ms, dedup_key, state,
                      attempts, due_at, lease_token, created_at, finished_at, last_error)
SELECT id, kind, payload, max_attempts, backoff_ms, dedup_key, state,
       attempts, due_at, lease_token, created_at, finished_at, last_error
FROM jobs;
DELETE FROM sqlite_sequence WHERE name = 'jobs_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'jobs_new', seq FROM sqlite_sequence WHERE name = 'jobs';
-- Nothing references jobs yet, so dropping it with foreign keys on deletes nothing else.
DROP TABLE jobs;
-- Renaming also renames the table's sqlite_sequence row.
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_live ON jobs(kind, due_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_kind ON jobs(kind, id);
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;

-- A job's log: its lines numbered from 1 (jobs.log_seq is the last number handed out),
-- deleted with the job.
CREATE TABLE job_logs (
    job_id    INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    logged_at INTEGER NOT NULL,
    line      TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
