-- Job control: a job may end 'stopped' (a queued one at once, a running one at its
-- runner's next checkpoint, or when its lease expires), a run saves its progress for
-- the next attempt to resume from, and a job keeps a log.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'stopped'));
ALTER TABLE jobs
    -- The last checkpoint a run saved.
    ADD COLUMN progress TEXT,
    -- A stop was requested: the job is not run again.
    ADD COLUMN stop_requested BOOLEAN NOT NULL DEFAULT false,
    -- The number of the job's last log line; an append moves it in the statement that
    -- writes its lines, under the job's row lock, so appends never share a number.
    ADD COLUMN log_seq BIGINT NOT NULL DEFAULT 0;

-- A job's log: its lines numbered from 1, deleted with the job.
CREATE TABLE job_logs (
    job_id    BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    logged_at BIGINT NOT NULL,
    line      TEXT   NOT NULL,
    PRIMARY KEY (job_id, seq)
);
