-- Accounts, project membership, roles, robots, settings and the audit log.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL DEFAULT '',
    realname      TEXT    NOT NULL DEFAULT '',
    comment       TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    sysadmin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email ON users(email) WHERE email <> '';

-- Projects pushed before accounts existed stay private; the first administrator
-- becomes their owner. `library` is public.
ALTER TABLE projects ADD COLUMN owner_id INTEGER;
ALTER TABLE projects ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET updated_at = created_at;
INSERT INTO projects (name, public, created_at, updated_at)
VALUES ('library', 1, CAST(unixepoch('subsec') * 1000 AS INTEGER),
        CAST(unixepoch('subsec') * 1000 AS INTEGER))
ON CONFLICT (name) DO UPDATE SET public = 1;

-- Harbor's project metadata other than `public`, as the strings Harbor stores.
CREATE TABLE project_metadata (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (project_id, name)
) WITHOUT ROWID;

-- A role is a named set of (resource, action) permissions.
CREATE TABLE roles (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);
CREATE TABLE role_permissions (
    role_id  INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    resource TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    PRIMARY KEY (role_id, resource, action)
) WITHOUT ROWID;

-- Members are users ('u') or, later, groups ('g').
CREATE TABLE project_members (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    entity_type TEXT    NOT NULL CHECK (entity_type IN ('u', 'g')),
    entity_id   INTEGER NOT NULL,
    role_id     INTEGER NOT NULL REFERENCES roles(id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, entity_type, entity_id)
);
CREATE INDEX project_members_entity ON project_members(entity_type, entity_id);

CREATE TABLE robots (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    description   TEXT    NOT NULL DEFAULT '',
    secret_hash   TEXT    NOT NULL,
    level         TEXT    NOT NULL CHECK (level IN ('system', 'project')),
    project_id    INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    duration_days INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    creator       TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX robots_project ON robots(project_id);
CREATE TABLE robot_permissions (
    robot_id  INTEGER NOT NULL REFERENCES robots(id) ON DELETE CASCADE,
    kind      TEXT    NOT NULL,
    namespace TEXT    NOT NULL,
    resource  TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    PRIMARY KEY (robot_id, kind, namespace, resource, action)
) WITHOUT ROWID;

-- System settings as JSON values, shared by every node.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER,
    username      TEXT    NOT NULL,
    operation     TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource      TEXT    NOT NULL,
    success       INTEGER NOT NULL,
    client_ip     TEXT    NOT NULL,
    op_time       INTEGER NOT NULL
);
CREATE INDEX audit_log_time ON audit_log(op_time);
CREATE INDEX audit_log_project ON audit_log(project_id, op_time);
