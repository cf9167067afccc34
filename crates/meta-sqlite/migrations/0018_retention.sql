-- Tag retention (Harbor's retention_policy and its task framework's executions and
-- tasks). A project has at most one policy, its definition Harbor's policy JSON as
-- given; next_fire is when its schedule fires next (NULL: no schedule). An execution
-- records the policy's definition when it started and the job that runs it (set to
-- NULL when the queue forgets the job); a task is one repository of an execution, with
-- its log. AUTOINCREMENT keeps deleted ids from being given again.
CREATE TABLE retention_policies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,
    definition TEXT    NOT NULL,
    next_fire  INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX retention_policies_due ON retention_policies(next_fire)
    WHERE next_fire IS NOT NULL;

CREATE TABLE retention_executions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id  INTEGER NOT NULL REFERENCES retention_policies(id) ON DELETE CASCADE,
    trigger    TEXT    NOT NULL,
    dry_run    INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    operator   TEXT    NOT NULL,
    status     TEXT    NOT NULL
               CHECK (status IN ('Running', 'Success', 'Error', 'Stopped')),
    job_id     INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    policy     TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX retention_executions_policy ON retention_executions(policy_id, id);
CREATE INDEX retention_executions_job ON retention_executions(job_id)
    WHERE job_id IS NOT NULL;

CREATE TABLE retention_tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id INTEGER NOT NULL REFERENCES retention_executions(id) ON DELETE CASCADE,
    repository   TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('Pending', 'Running', 'Success', 'Error', 'Stopped')),
    started_at   INTEGER,
    ended_at     INTEGER,
    total        INTEGER NOT NULL DEFAULT 0,
    retained     INTEGER NOT NULL DEFAULT 0,
    log          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX retention_tasks_execution ON retention_tasks(execution_id, id);
