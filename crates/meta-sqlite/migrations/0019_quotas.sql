-- Storage quotas. A project's usage is the deduplicated size of what its repositories'
-- manifests hold: each manifest's own bytes and the blobs (config, layers) it references
-- as kind 'blob'; an index's children count through their own manifest rows. Blob links
-- alone (an upload no manifest references yet) count nothing.
--
-- `project_blobs` has one row per project and counted digest, with `refs` the number of
-- (manifest row, counted digest) pairs in the project's repositories; `quotas.used` is the
-- sum of its sizes. Triggers keep both exact in the transaction of every change that
-- adds or removes a manifest, whatever the path (push, delete, garbage collection,
-- retention, repository delete). The quota's id is its project's id (never reused).
CREATE TABLE quotas (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    hard       INTEGER NOT NULL CHECK (hard = -1 OR hard > 0),
    used       INTEGER NOT NULL DEFAULT 0,
    -- The warning mark and the percentage of `hard` it was set at: a delete that takes
    -- usage below that share, or a limit that puts it there, clears it.
    warned     INTEGER NOT NULL DEFAULT 0,
    warn_percent INTEGER NOT NULL DEFAULT 0 CHECK (warn_percent BETWEEN 0 AND 100),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE project_blobs (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    refs       INTEGER NOT NULL,
    PRIMARY KEY (project_id, digest)
) WITHOUT ROWID;
CREATE INDEX project_blobs_released ON project_blobs(project_id) WHERE refs = 0;

-- Every project gets a quota with the default limit (Harbor's `storage_per_project`).
CREATE TRIGGER projects_quota AFTER INSERT ON projects BEGIN
    INSERT INTO quotas (project_id, hard, created_at, updated_at)
    VALUES (NEW.id,
            coalesce((SELECT CAST(value AS INTEGER) FROM settings
                      WHERE key = 'storage_per_project'
                        AND (value = '-1' OR CAST(value AS INTEGER) > 0)), -1),
            NEW.created_at, NEW.created_at);
END;

-- A repository's manifests go before the repository, while their project is known.
CREATE TRIGGER repositories_release BEFORE DELETE ON repositories BEGIN
    DELETE FROM manifests WHERE repository_id = OLD.id;
END;

CREATE TRIGGER manifests_count AFTER INSERT ON manifests BEGIN
    UPDATE quotas SET used = used + NEW.size
    WHERE project_id = (SELECT project_id FROM repositories WHERE id = NEW.repository_id)
      AND NOT EXISTS (SELECT 1 FROM project_blobs pb
                      WHERE pb.project_id = quotas.project_id AND pb.digest = NEW.digest);
    INSERT INTO project_blobs (project_id, digest, size, refs)
    SELECT project_id, NEW.digest, NEW.size, 1 FROM repositories WHERE id = NEW.repository_id
    ON CONFLICT (project_id, digest) DO UPDATE SET refs = refs + 1;
END;

CREATE TRIGGER manifest_references_count AFTER INSERT ON manifest_references
WHEN NEW.kind = 'blob' BEGIN
    UPDATE quotas SET used = used + (SELECT size FROM blobs WHERE digest = NEW.digest)
    WHERE project_id = (SELECT r.project_id FROM manifests m
                        JOIN repositories r ON r.id = m.repository_id
                        WHERE m.id = NEW.manifest_id)
      AND NOT EXISTS (SELECT 1 FROM project_blobs pb
                      WHERE pb.project_id = quotas.project_id AND pb.digest = NEW.digest);
    INSERT INTO project_blobs (project_id, digest, size, refs)
    SELECT r.project_id, NEW.digest, b.size, 1
    FROM manifests m JOIN repositories r ON r.id = m.repository_id
    JOIN blobs b ON b.digest = NEW.digest
    WHERE m.id = NEW.manifest_id
    ON CONFLICT (project_id, digest) DO UPDATE SET refs = refs + 1;
END;

-- Before the row goes: its references still exist, and so does its repository.
CREATE TRIGGER manifests_release BEFORE DELETE ON manifests BEGIN
    UPDATE project_blobs SET refs = refs - 1
    WHERE project_id = (SELECT project_id FROM repositories WHERE id = OLD.repository_id)
      AND (digest = OLD.digest
           OR digest IN (SELECT digest FROM manifest_references
                         WHERE manifest_id = OLD.id AND kind = 'blob'));
    UPDATE quotas
    SET used = used - (SELECT coalesce(sum(size), 0) FROM project_blobs pb
                       WHERE pb.project_id = quotas.project_id AND pb.refs = 0)
    WHERE project_id = (SELECT project_id FROM repositories WHERE id = OLD.repository_id);
    -- Below its share of the limit (rounded up, without overflow), the mark goes: the
    -- next crossing is warned again.
    UPDATE quotas SET warned = 0
    WHERE project_id = (SELECT project_id FROM repositories WHERE id = OLD.repository_id)
      AND warned
      AND (hard < 0
           OR used < (hard / 100) * warn_percent + ((hard % 100) * warn_percent + 99) / 100);
    DELETE FROM project_blobs
    WHERE project_id = (SELECT project_id FROM repositories WHERE id = OLD.repository_id)
      AND refs = 0;
END;

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
SELECT 'missing' AS kind, p.name AS project, NULL AS digest,
       NULL AS stored_size, NULL AS stored_refs, NULL AS recomputed_size,
       NULL AS recomputed_refs
FROM projects p WHERE NOT EXISTS (SELECT 1 FROM quotas q WHERE q.project_id = p.id)
UNION ALL
SELECT 'used', p.name, NULL, q.used, NULL, u.recomputed, NULL
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
