-- Storage quotas, as SQLite's migration 0019. A project's usage is the deduplicated size
-- of what its repositories' manifests hold: each manifest's own bytes and the blobs
-- (config, layers) it references as kind 'blob'; an index's children count through their
-- own manifest rows. Blob links alone count nothing.
--
-- `project_blobs` has one row per project and counted digest, with `refs` the number of
-- (manifest row, counted digest) pairs in the project's repositories; `quotas.used` is the
-- sum of its sizes. Triggers keep both exact in the transaction of every change that adds
-- or removes a manifest. Each trigger locks the project's quota row before it touches
-- `project_blobs`, so concurrent pushes into one project count one after the other (no
-- increment is lost, no two pushes both fit into the last free bytes) and never deadlock
-- on `project_blobs` rows. A count that would pass a limit raises SQLSTATE BQ001, which
-- rolls the whole write back. The quota's id is its project's id (never reused).
CREATE TABLE quotas (
    project_id BIGINT  PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    hard       BIGINT  NOT NULL CHECK (hard = -1 OR hard > 0),
    used       BIGINT  NOT NULL DEFAULT 0,
    -- The warning mark and the percentage of `hard` it was set at: a delete that takes
    -- usage below that share, or a limit that puts it there, clears it.
    warned     BOOLEAN NOT NULL DEFAULT FALSE,
    warn_percent INTEGER NOT NULL DEFAULT 0 CHECK (warn_percent BETWEEN 0 AND 100),
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

CREATE TABLE project_blobs (
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    digest     TEXT   COLLATE "C" NOT NULL,
    size       BIGINT NOT NULL,
    refs       BIGINT NOT NULL,
    PRIMARY KEY (project_id, digest)
);

-- The usage from which `percent` % of `hard` bytes is reached, rounded up, computed
-- without overflow for any limit.
CREATE FUNCTION quota_warn_at(hard BIGINT, percent BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (hard / 100) * percent + ((hard % 100) * percent + 99) / 100
$$;

-- Every project gets a quota with the default limit (Harbor's `storage_per_project`).
CREATE FUNCTION projects_quota() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO quotas (project_id, hard, created_at, updated_at)
    VALUES (NEW.id,
            coalesce((SELECT value::BIGINT FROM settings
                      WHERE key = 'storage_per_project'
                        AND CASE WHEN value ~ '^(-1|[1-9][0-9]{0,18})$'
                                 THEN value::NUMERIC <= 9223372036854775807
                                 ELSE FALSE END),
                     -1),
            NEW.created_at, NEW.created_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER projects_quota AFTER INSERT ON projects
FOR EACH ROW EXECUTE FUNCTION projects_quota();

-- Counts one more reference to `counted` (of `counted_size` bytes) in `project`, raising
-- BQ001 when a digest new to the project would take its usage past its limit.
CREATE FUNCTION quota_count(project BIGINT, counted TEXT, counted_size BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    limit_bytes BIGINT;
    used_bytes BIGINT;
BEGIN
    SELECT hard, used INTO limit_bytes, used_bytes
    FROM quotas WHERE project_id = project FOR UPDATE;
    UPDATE project_blobs SET refs = refs + 1
    WHERE project_id = project AND digest = counted;
    IF FOUND THEN
        RETURN;
    END IF;
    IF limit_bytes >= 0 AND used_bytes + counted_size > limit_bytes THEN
        RAISE EXCEPTION USING ERRCODE = 'BQ001', MESSAGE = 'quota exceeded',
            DETAIL = format('project %s uses %s bytes of %s', project, used_bytes, limit_bytes);
    END IF;
    INSERT INTO project_blobs (project_id, digest, size, refs)
    VALUES (project, counted, counted_size, 1);
    UPDATE quotas SET used = used + counted_size WHERE project_id = project;
END
$$;

CREATE FUNCTION manifests_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_count((SELECT project_id FROM repositories WHERE id = NEW.repository_id),
                        NEW.digest, NEW.size);
    RETURN NULL;
END
$$;
CREATE TRIGGER manifests_count AFTER INSERT ON manifests
FOR EACH ROW EXECUTE FUNCTION manifests_count();

CREATE FUNCTION manifest_references_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_count(r.project_id, NEW.digest, b.size)
    FROM manifests m JOIN repositories r ON r.id = m.repository_id
    JOIN blobs b ON b.digest = NEW.digest
    WHERE m.id = NEW.manifest_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER manifest_references_count AFTER INSERT ON manifest_references
FOR EACH ROW WHEN (NEW.kind = 'blob') EXECUTE FUNCTION manifest_references_count();

-- Before the row goes: its references still exist, and so does its repository.
CREATE FUNCTION manifests_release() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    project BIGINT;
    released BIGINT;
BEGIN
    SELECT project_id INTO project FROM repositories WHERE id = OLD.repository_id;
    PERFORM 1 FROM quotas WHERE project_id = project FOR UPDATE;
    UPDATE project_blobs SET refs = refs - 1
    WHERE project_id = project
      AND (digest = OLD.digest
           OR digest IN (SELECT digest FROM manifest_references
                         WHERE manifest_id = OLD.id AND kind = 'blob'));
    WITH gone AS (DELETE FROM project_blobs
                  WHERE project_id = project AND refs = 0 RETURNING size)
    SELECT coalesce(sum(size), 0) INTO released FROM gone;
    -- Below its share of the limit, the warning mark goes: the next crossing is warned
    -- again.
    IF released > 0 THEN
        UPDATE quotas
        SET used = used - released,
            warned = warned AND hard >= 0
                     AND used - released >= quota_warn_at(hard, warn_percent)
        WHERE project_id = project;
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER manifests_release BEFORE DELETE ON manifests
FOR EACH ROW EXECUTE FUNCTION manifests_release();

-- A repository's manifests go before the repository, while their project is known.
CREATE FUNCTION repositories_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM manifests WHERE repository_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER repositories_release BEFORE DELETE ON repositories
FOR EACH ROW EXECUTE FUNCTION repositories_release();

-- What every project's manifests hold, recomputed from scratch: the counts the triggers
-- keep, for the backfill below and for `berth fsck`.
CREATE VIEW counted_blobs AS
SELECT r.project_id, c.digest, max(c.size) AS size, count(*) AS refs
FROM (SELECT m.repository_id, m.digest, m.size FROM manifests m
      UNION ALL
      SELECT m.repository_id, mr.digest, b.size
      FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
      JOIN blobs b ON b.digest = mr.digest
      WHERE mr.kind = 'blob') AS c
JOIN repositories r ON r.id = c.repository_id
GROUP BY r.project_id, c.digest;

-- Where the stored counters differ from the recomputation: a project without a quota
-- ('missing'), a usage ('used': stored and recomputed usage in the size columns) or a
-- digest's count ('references') that differs. Empty when they agree.
CREATE VIEW usage_drift AS
SELECT 'missing'::TEXT AS kind, p.name AS project, NULL::TEXT AS digest,
       NULL::BIGINT AS stored_size, NULL::BIGINT AS stored_refs,
       NULL::BIGINT AS recomputed_size, NULL::BIGINT AS recomputed_refs
FROM projects p WHERE NOT EXISTS (SELECT 1 FROM quotas q WHERE q.project_id = p.id)
UNION ALL
SELECT 'used', p.name, NULL, q.used, NULL, u.recomputed::BIGINT, NULL
FROM projects p JOIN quotas q ON q.project_id = p.id
JOIN (SELECT p2.id, (SELECT coalesce(sum(c.size), 0) FROM counted_blobs c
                     WHERE c.project_id = p2.id) AS recomputed
      FROM projects p2) AS u ON u.id = p.id
WHERE q.used <> u.recomputed
UNION ALL
SELECT 'references', p.name, c.digest, pb.size, pb.refs, c.size, c.refs
FROM counted_blobs c JOIN projects p ON p.id = c.project_id
LEFT JOIN project_blobs pb ON pb.project_id = c.project_id AND pb.digest = c.digest
WHERE pb.refs IS NULL OR pb.refs <> c.refs OR pb.size <> c.size
UNION ALL
SELECT 'references', p.name, pb.digest, pb.size, pb.refs, NULL, NULL
FROM project_blobs pb JOIN projects p ON p.id = pb.project_id
WHERE NOT EXISTS (SELECT 1 FROM counted_blobs c
                  WHERE c.project_id = pb.project_id AND c.digest = pb.digest);

-- Usage of the projects that exist already.
INSERT INTO project_blobs (project_id, digest, size, refs)
SELECT project_id, digest, size, refs FROM counted_blobs;

INSERT INTO quotas (project_id, hard, used, created_at, updated_at)
SELECT p.id, -1,
       (SELECT coalesce(sum(size), 0) FROM project_blobs pb WHERE pb.project_id = p.id),
       p.created_at, p.created_at
FROM projects p;
