-- Berth's metadata on PostgreSQL: the schema the SQLite adapter reaches with its
-- migrations 0001 to 0011, in one step.
--
-- Every text column uses the "C" collation, so names, tags and digests compare and sort
-- by their bytes, as in SQLite, whatever the database's locale. Times are Unix
-- milliseconds. Ids come from identity columns: a sequence never hands out a value twice,
-- so no deleted row's id goes to a new row (what SQLite's `id_sequences` ensures), and
-- nothing that names an old id reaches a new row.

-- Projects own repositories (the first path component of a repository name). Projects
-- pushed before accounts existed belong to the first administrator once there is one.
CREATE TABLE projects (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    COLLATE "C" NOT NULL CONSTRAINT projects_name_key UNIQUE,
    public     BOOLEAN NOT NULL DEFAULT FALSE,
    owner_id   BIGINT,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
INSERT INTO projects (name, public, created_at, updated_at)
SELECT 'library', TRUE, now_ms, now_ms
FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT AS now_ms) AS now;

-- Harbor's project metadata other than `public`, as the strings Harbor stores.
CREATE TABLE project_metadata (
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT   COLLATE "C" NOT NULL,
    value      TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (project_id, name)
);

-- `tag_version` is bumped by every tag change (triggers below), so a cached tag list is
-- checked for staleness with one point lookup, by any node.
CREATE TABLE repositories (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id),
    name        TEXT   COLLATE "C" NOT NULL CONSTRAINT repositories_name_key UNIQUE,
    description TEXT   COLLATE "C" NOT NULL DEFAULT '',
    pull_count  BIGINT NOT NULL DEFAULT 0,
    tag_version BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX repositories_project ON repositories (project_id);

-- Every committed blob, once, whatever the number of repositories using it.
CREATE TABLE blobs (
    digest     TEXT   COLLATE "C" PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    status     TEXT   COLLATE "C" NOT NULL DEFAULT 'present'
                      CHECK (status IN ('present', 'deleting'))
);

-- Which repositories may serve a blob (uploaded or mounted there).
CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest        TEXT   COLLATE "C" NOT NULL REFERENCES blobs (digest),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs (digest);

-- Artifacts: manifests and indexes, stored byte for byte.
CREATE TABLE manifests (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest        TEXT   COLLATE "C" NOT NULL,
    media_type    TEXT   COLLATE "C" NOT NULL,
    artifact_type TEXT   COLLATE "C",
    annotations   TEXT   COLLATE "C",
    subject       TEXT   COLLATE "C",
    size          BIGINT NOT NULL,
    content       BYTEA  NOT NULL,
    pushed_at     BIGINT NOT NULL,
    pulled_at     BIGINT,
    CONSTRAINT manifests_repository_digest_key UNIQUE (repository_id, digest)
);
-- Referrers are listed in pages ordered by digest, each starting after the previous
-- page's last digest; these indexes serve that order, with and without an artifactType
-- filter, so a page reads only its own rows.
CREATE INDEX manifests_subject ON manifests (repository_id, subject, digest)
    WHERE subject IS NOT NULL;
CREATE INDEX manifests_subject_type ON manifests (repository_id, subject, artifact_type, digest)
    WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    name          TEXT   COLLATE "C" NOT NULL,
    manifest_id   BIGINT NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    pushed_at     BIGINT NOT NULL,
    pulled_at     BIGINT,
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX tags_manifest ON tags (manifest_id);
-- tags/list is in case-insensitive order, ties by bytes (`berth_oci::tag_listing_order`);
-- `lower` folds ASCII letters only under the "C" collation, as SQLite's NOCASE does. This
-- index serves that order and `last` paging without sorting the repository's tags.
CREATE INDEX tags_listing ON tags (repository_id, lower(name), name);

-- A statement's inserted or deleted tags bump their repositories' version once.
CREATE FUNCTION tags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repositories SET tag_version = tag_version + 1
    WHERE id IN (SELECT repository_id FROM changed);
    RETURN NULL;
END
$$;
CREATE TRIGGER tags_inserted AFTER INSERT ON tags
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tags_changed();
CREATE TRIGGER tags_deleted AFTER DELETE ON tags
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tags_changed();
-- A tag moved to another manifest (or renamed) bumps its repository's version.
CREATE FUNCTION tag_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repositories SET tag_version = tag_version + 1 WHERE id = NEW.repository_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER tags_updated AFTER UPDATE OF manifest_id, name ON tags
    FOR EACH ROW
    WHEN (OLD.manifest_id IS DISTINCT FROM NEW.manifest_id OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION tag_moved();

-- What each manifest needs: blobs (config, layers) and child manifests (indexes).
CREATE TABLE manifest_references (
    manifest_id BIGINT NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    kind        TEXT   COLLATE "C" NOT NULL CHECK (kind IN ('blob', 'manifest')),
    digest      TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (manifest_id, kind, digest)
);
CREATE INDEX manifest_references_digest ON manifest_references (digest, kind);

-- Upload sessions: offset and resumable hash state, so any node can continue one.
-- `verified_by`: the process that wrote and hashed every byte (NULL: unknown, so the
-- bytes are hashed again when the upload completes). `verified_digest`: what the bytes
-- at rest were found to hash to just before they were published (NULL: not hashed at
-- rest since the last append), so that a retried completion that finds them published
-- can link them.
CREATE TABLE uploads (
    id              TEXT   COLLATE "C" PRIMARY KEY,
    repository      TEXT   COLLATE "C" NOT NULL,
    algorithm       TEXT   COLLATE "C" NOT NULL,
    "offset"        BIGINT NOT NULL,
    hash_state      BYTEA  NOT NULL,
    verified_by     BIGINT,
    verified_digest TEXT   COLLATE "C",
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    -- The claim of the node writing the session's bytes, and until when it holds.
    lease_holder    BIGINT,
    lease_until     BIGINT
);
CREATE INDEX uploads_updated ON uploads (updated_at);
-- Counting a repository's open sessions, for the per-repository limit.
CREATE INDEX uploads_repository ON uploads (repository);

-- Accounts.
CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT    COLLATE "C" NOT NULL CONSTRAINT users_username_key UNIQUE,
    email         TEXT    COLLATE "C" NOT NULL DEFAULT '',
    realname      TEXT    COLLATE "C" NOT NULL DEFAULT '',
    comment       TEXT    COLLATE "C" NOT NULL DEFAULT '',
    password_hash TEXT    COLLATE "C" NOT NULL,
    sysadmin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email) WHERE email <> '';
-- The first administrator, who owns the projects pushes create.
CREATE INDEX users_sysadmin ON users (id) WHERE sysadmin;

-- A role is a named set of (resource, action) permissions; ids are Harbor's.
CREATE TABLE roles (
    id   BIGINT PRIMARY KEY,
    name TEXT   COLLATE "C" NOT NULL UNIQUE
);
CREATE TABLE role_permissions (
    role_id  BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource TEXT   COLLATE "C" NOT NULL,
    action   TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (role_id, resource, action)
);

-- Members are users ('u') or, later, groups ('g').
CREATE TABLE project_members (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    entity_type TEXT   COLLATE "C" NOT NULL CHECK (entity_type IN ('u', 'g')),
    entity_id   BIGINT NOT NULL,
    role_id     BIGINT NOT NULL REFERENCES roles (id),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT project_members_entity_key UNIQUE (project_id, entity_type, entity_id)
);
CREATE INDEX project_members_entity ON project_members (entity_type, entity_id);

CREATE TABLE robots (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    COLLATE "C" NOT NULL CONSTRAINT robots_name_key UNIQUE,
    description   TEXT    COLLATE "C" NOT NULL DEFAULT '',
    secret_hash   TEXT    COLLATE "C" NOT NULL,
    level         TEXT    COLLATE "C" NOT NULL CHECK (level IN ('system', 'project')),
    project_id    BIGINT  REFERENCES projects (id) ON DELETE CASCADE,
    duration_days BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    creator       TEXT    COLLATE "C" NOT NULL DEFAULT '',
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX robots_project ON robots (project_id);
CREATE TABLE robot_permissions (
    robot_id  BIGINT NOT NULL REFERENCES robots (id) ON DELETE CASCADE,
    kind      TEXT   COLLATE "C" NOT NULL,
    namespace TEXT   COLLATE "C" NOT NULL,
    resource  TEXT   COLLATE "C" NOT NULL,
    action    TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (robot_id, kind, namespace, resource, action)
);
-- Grants naming a project go with it when it is deleted.
CREATE INDEX robot_permissions_namespace ON robot_permissions (namespace, kind);

-- System settings as JSON values, shared by every node.
CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE audit_log (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    BIGINT,
    username      TEXT    COLLATE "C" NOT NULL,
    operation     TEXT    COLLATE "C" NOT NULL,
    resource_type TEXT    COLLATE "C" NOT NULL,
    resource      TEXT    COLLATE "C" NOT NULL,
    success       BOOLEAN NOT NULL,
    client_ip     TEXT    COLLATE "C" NOT NULL,
    op_time       BIGINT  NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (op_time);
CREATE INDEX audit_log_project ON audit_log (project_id, op_time);

-- Browser sessions: hashes of the session id and its CSRF token, never the values.
CREATE TABLE sessions (
    id_hash    TEXT   COLLATE "C" PRIMARY KEY,
    username   TEXT   COLLATE "C" NOT NULL,
    csrf_hash  TEXT   COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
-- A password change or a deleted account ends the account's sessions.
CREATE INDEX sessions_username ON sessions (username);

-- Moved by every change to accounts, projects, members, robots or settings, in its
-- transaction: nodes poll it to learn when their caches of those may be stale. (The
-- audit log's newest id would not do: ids are taken at insert, and a transaction that
-- took a lower one may commit later.)
CREATE TABLE change_mark (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    mark      BIGINT  NOT NULL
);
INSERT INTO change_mark (mark) VALUES (0);
