-- Concurrent counting for projects without a limit. Migration 0013 locked a project's
-- quota row (`FOR UPDATE`) for every count, so pushes into one project committed one
-- after the other, each holding the lock through its commit's flush. A limit needs that
-- order (no two pushes both fit into the last free bytes); a project without one only
-- needs its counters exact. Such a project now takes the quota row `FOR KEY SHARE`,
-- which pushes share, and adds the bytes it counts to one of a few shard rows, so that
-- concurrent pushes seldom wait on each other. A limit change locks the row `FOR
-- UPDATE`, which waits for those counts to commit. A project's usage is its quota row's
-- `used` plus its shards' (`quota_used`, the view `quota_totals`); rows with a limit
-- keep counting into `quotas.used`. Usage released by deletes, which lock the quota
-- row `FOR UPDATE` as before, is subtracted from `quotas.used`.
CREATE TABLE quota_shards (
    project_id BIGINT   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    shard      SMALLINT NOT NULL,
    used       BIGINT   NOT NULL,
    PRIMARY KEY (project_id, shard)
);

-- The bytes project `project` holds: its quota row's count and its shards'.
CREATE FUNCTION quota_used(project BIGINT) RETURNS BIGINT
LANGUAGE sql STABLE AS $$
    SELECT q.used + coalesce((SELECT sum(s.used) FROM quota_shards s
                              WHERE s.project_id = project), 0)::BIGINT
    FROM quotas q WHERE q.project_id = project
$$;

-- Every quota with its whole usage in `used` (the sum of `quota_used`, written out so
-- that the planner folds it into the queries that read the view).
CREATE VIEW quota_totals AS
SELECT q.project_id, q.hard,
       q.used + coalesce((SELECT sum(s.used) FROM quota_shards s
                          WHERE s.project_id = q.project_id), 0)::BIGINT AS used,
       q.warned, q.warn_percent, q.created_at, q.updated_at
FROM quotas q;

-- Takes the lock a count in `project` needs and returns the project's limit (-1: none).
-- A project with a limit is counted one push at a time (`FOR UPDATE`); one without
-- shares its row (`FOR KEY SHARE`). A limit set between the unlocked read and the
-- shared lock raises a serialization failure, which the push retries: upgrading a
-- shared lock could deadlock with another push doing the same.
CREATE FUNCTION quota_lock(project BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    limit_bytes BIGINT;
BEGIN
    SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project;
    IF limit_bytes >= 0 THEN
        SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project FOR UPDATE;
        RETURN coalesce(limit_bytes, -1);
    END IF;
    SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project FOR KEY SHARE;
    IF limit_bytes >= 0 THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'the project''s quota limit changed during the push';
    END IF;
    RETURN -1;
END
$$;

-- Counts one more reference to each of `counted` (of `sizes` bytes) in `project`,
-- raising BQ001 when the digests new to the project would take its usage past its limit.
-- Rows are upserted in digest order, so two pushes sharing digests never deadlock.
DROP FUNCTION quota_count(BIGINT, TEXT, BIGINT);
CREATE FUNCTION quota_count(project BIGINT, counted TEXT[], sizes BIGINT[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    limit_bytes BIGINT := quota_lock(project);
    used_bytes BIGINT;
    new_digests BIGINT;
    added BIGINT;
BEGIN
    IF limit_bytes >= 0 THEN
        used_bytes := quota_used(project);
        SELECT count(*), coalesce(sum(c.size), 0) INTO new_digests, added
        FROM (SELECT digest, max(size) AS size FROM unnest(counted, sizes) AS u(digest, size)
              GROUP BY digest) AS c
        WHERE NOT EXISTS (SELECT 1 FROM project_blobs pb
                          WHERE pb.project_id = project AND pb.digest = c.digest);
        IF new_digests > 0 AND used_bytes + added > limit_bytes THEN
            RAISE EXCEPTION USING ERRCODE = 'BQ001', MESSAGE = 'quota exceeded',
                DETAIL = format('project %s uses %s bytes of %s', project, used_bytes,
                                limit_bytes);
        END IF;
    END IF;
    WITH upserted AS (
        INSERT INTO project_blobs AS pb (project_id, digest, size, refs)
        SELECT project, digest, max(size), count(*)
        FROM unnest(counted, sizes) AS u(digest, size)
        GROUP BY digest ORDER BY digest
        ON CONFLICT (project_id, digest) DO UPDATE SET refs = pb.refs + excluded.refs
        RETURNING pb.size, pb.xmax = 0 AS inserted)
    SELECT coalesce(sum(size) FILTER (WHERE inserted), 0) INTO added FROM upserted;
    IF added = 0 THEN
        RETURN;
    END IF;
    IF limit_bytes >= 0 THEN
        UPDATE quotas SET used = used + added WHERE project_id = project;
    ELSE
        INSERT INTO quota_shards AS s (project_id, shard, used)
        VALUES (project, (txid_current() % 16)::SMALLINT, added)
        ON CONFLICT (project_id, shard) DO UPDATE SET used = s.used + excluded.used;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION manifests_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_count((SELECT project_id FROM repositories WHERE id = NEW.repository_id),
                        ARRAY[NEW.digest], ARRAY[NEW.size]);
    RETURN NULL;
END
$$;

-- A manifest's blob references are counted together, once per statement.
DROP TRIGGER manifest_references_count ON manifest_references;
DROP FUNCTION manifest_references_count();
CREATE FUNCTION manifest_references_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_count(r.project_id, array_agg(a.digest), array_agg(b.size))
    FROM added a JOIN manifests m ON m.id = a.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    JOIN blobs b ON b.digest = a.digest
    WHERE a.kind = 'blob'
    GROUP BY r.project_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER manifest_references_count AFTER INSERT ON manifest_references
REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION manifest_references_count();

-- As in 0013, with the warning mark measured against the whole usage.
CREATE OR REPLACE FUNCTION manifests_release() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    project BIGINT;
    released BIGINT;
    remaining BIGINT;
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
    IF released > 0 THEN
        remaining := quota_used(project) - released;
        UPDATE quotas
        SET used = used - released,
            warned = warned AND hard >= 0 AND remaining >= quota_warn_at(hard, warn_percent)
        WHERE project_id = project;
    END IF;
    RETURN OLD;
END
$$;

-- As in 0013, comparing the whole usage.
CREATE OR REPLACE VIEW usage_drift AS
SELECT 'missing'::TEXT AS kind, p.name AS project, NULL::TEXT AS digest,
       NULL::BIGINT AS stored_size, NULL::BIGINT AS stored_refs,
       NULL::BIGINT AS recomputed_size, NULL::BIGINT AS recomputed_refs
FROM projects p WHERE NOT EXISTS (SELECT 1 FROM quotas q WHERE q.project_id = p.id)
UNION ALL
SELECT 'used', p.name, NULL, q.used, NULL, u.recomputed::BIGINT, NULL
FROM projects p JOIN quota_totals q ON q.project_id = p.id
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
