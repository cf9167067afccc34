-- Projects own repositories (the first path component of a repository name).
CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    public      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX repositories_project ON repositories(project_id);

-- Every committed blob, once, whatever the number of repositories using it.
CREATE TABLE blobs (
    digest      TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'present' CHECK (status IN ('present', 'deleting'))
) WITHOUT ROWID;

-- Which repositories may serve a blob (uploaded or mounted there).
CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL REFERENCES blobs(digest),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

-- Artifacts: manifests and indexes, stored byte for byte.
CREATE TABLE manifests (
    id            INTEGER PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL,
    media_type    TEXT    NOT NULL,
    artifact_type TEXT,
    annotations   TEXT,
    subject       TEXT,
    size          INTEGER NOT NULL,
    content       BLOB    NOT NULL,
    pushed_at     INTEGER NOT NULL,
    pulled_at     INTEGER,
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    manifest_id   INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    pushed_at     INTEGER NOT NULL,
    pulled_at     INTEGER,
    PRIMARY KEY (repository_id, name)
) WITHOUT ROWID;
CREATE INDEX tags_manifest ON tags(manifest_id);

-- What each manifest needs: blobs (config, layers) and child manifests (indexes).
CREATE TABLE manifest_references (
    manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('blob', 'manifest')),
    digest      TEXT    NOT NULL,
    PRIMARY KEY (manifest_id, kind, digest)
) WITHOUT ROWID;
CREATE INDEX manifest_references_digest ON manifest_references(digest, kind);

-- Upload sessions: offset and resumable hash state, so any process can continue one.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    repository  TEXT    NOT NULL,
    algorithm   TEXT    NOT NULL,
    offset      INTEGER NOT NULL,
    hash_state  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_updated ON uploads(updated_at);
