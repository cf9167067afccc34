-- Labels (Harbor's `harbor_label`): global ones (scope 'g', no project) and project
-- ones (scope 'p', deleted with their project), their names unique per scope and
-- project; ids are never reused. `label_references` holds the labels artifacts carry,
-- removed with the label or the artifact.
CREATE TABLE labels (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT   COLLATE "C" NOT NULL,
    description TEXT   COLLATE "C" NOT NULL DEFAULT '',
    color       TEXT   COLLATE "C" NOT NULL DEFAULT '',
    scope       TEXT   COLLATE "C" NOT NULL CHECK (scope IN ('g', 'p')),
    project_id  BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CHECK ((scope = 'g') = (project_id IS NULL))
);
CREATE UNIQUE INDEX labels_name ON labels (scope, coalesce(project_id, 0), name);
CREATE INDEX labels_project ON labels (project_id) WHERE project_id IS NOT NULL;

CREATE TABLE label_references (
    manifest_id BIGINT NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    label_id    BIGINT NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (manifest_id, label_id)
);
CREATE INDEX label_references_label ON label_references (label_id, manifest_id);
