-- Tag retention (Harbor's retention_policy and its task framework's executions and
-- tasks). A project has at most one policy, its definition Harbor's policy JSON as
-- given; next_fire is when its schedule fires next (NULL: no schedule). An execution
-- records the policy's definition when it started and the job that runs it (set to
-- NULL when the queue forgets the job); a task is one repository of an execution, with
-- its log.
CREATE TABLE retention_policies (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id BIGINT NOT NULL UNIQUE REFERENCES projects (id) ON DELETE CASCADE,
    definition TEXT   NOT NULL,
    next_fire  BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX retention_policies_due ON retention_policies (next_fire)
    WHERE next_fire IS NOT NULL;

CREATE TABLE retention_executions (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id  BIGINT  NOT NULL REFERENCES retention_policies (id) ON DELETE CASCADE,
    trigger    TEXT    NOT NULL,
    dry_run    BOOLEAN NOT NULL,
    operator   TEXT    NOT NULL,
    status     TEXT    NOT NULL
               CHECK (status IN ('Running', 'Success', 'Error', 'Stopped')),
    job_id     BIGINT  REFERENCES jobs (id) ON DELETE SET NULL,
    policy     TEXT    NOT NULL,
    started_at BIGINT  NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX retention_executions_policy ON retention_executions (policy_id, id);
CREATE INDEX retention_executions_job ON retention_executions (job_id)
    WHERE job_id IS NOT NULL;

CREATE TABLE retention_tasks (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id BIGINT NOT NULL REFERENCES retention_executions (id) ON DELETE CASCADE,
    repository   TEXT   NOT NULL,
    status       TEXT   NOT NULL
                 CHECK (status IN ('Pending', 'Running', 'Success', 'Error', 'Stopped')),
    started_at   BIGINT,
    ended_at     BIGINT,
    total        BIGINT NOT NULL DEFAULT 0,
    retained     BIGINT NOT NULL DEFAULT 0,
    log          TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX retention_tasks_execution ON retention_tasks (execution_id, id);
