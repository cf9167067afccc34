-- Lighter pushes: a small image's push (two blobs in one request each, then its
-- manifest) costs the database a sixth less work. Every change is made in place or
-- beside what it replaces, so that nodes of the release before run on unchanged.
-- 1. Keys and checks that each cost every insert a query, or a parse, of its own:
--    - Foreign keys whose parent row every writer of the child already holds locked:
--      a manifest's, a tag's and a blob link's repository, a tag's and a reference's
--      manifest. Every insert of one runs with the repository's row locked (`FOR
--      UPDATE`, or the update that touches it), which every delete of a repository or
--      a manifest takes first, and with the manifest written in the same transaction.
--      A project's counted blobs and usage shards: written only by pushes into one of
--      its repositories, whose row keeps the project from being deleted
--      (`repositories.project_id` keeps its key). A repository's delete deletes its
--      tags, manifests and blob links itself; the other cascades these keys made become
--      statement triggers, below. A blob link's key on the blob stays: a sweep must
--      never delete a linked blob's row.
--    - The checks on `blobs.status` and `manifest_references.kind`, whose values only
--      Berth's own statements write, as literals.
-- 2. push_manifest runs eight statements where it ran sixteen: the locks of the
--    repository's and project's rows read the rules' revision and the quota limit too;
--    the reference and media type checks are one query; the repository's update and
--    the manifest's insert one statement, and so are the inserts of references, tags
--    and the audit entry. It looks for protected tags only when there are some, and
--    counts a project without a limit inline (what quota_count, quota_lock and
--    quota_usage_lock do then, without their three calls), reading the limit again and
--    upserting counted blobs and usage shard in one statement once the usage lock is
--    held.
-- 3. complete_whole_upload, which new nodes call in place of complete_new_upload, reads
--    the quota itself (below).
-- Dropping a key locks its table and the table it references: every table is locked
-- here first, parents before children, in the order the nodes of the release before
-- take them (a repository's row before its manifests, tags and blob links), so that
-- the migration waits for their transactions instead of deadlocking with one.
LOCK TABLE repositories, projects, blobs, manifests, tags, manifest_references,
           repository_blobs, project_blobs, quota_shards IN ACCESS EXCLUSIVE MODE;
ALTER TABLE manifests DROP CONSTRAINT manifests_repository_id_fkey;
ALTER TABLE tags DROP CONSTRAINT tags_repository_id_fkey,
                 DROP CONSTRAINT tags_manifest_id_fkey;
ALTER TABLE manifest_references DROP CONSTRAINT manifest_references_manifest_id_fkey;
ALTER TABLE repository_blobs DROP CONSTRAINT repository_blobs_repository_id_fkey;
ALTER TABLE project_blobs DROP CONSTRAINT project_blobs_project_id_fkey;
ALTER TABLE quota_shards DROP CONSTRAINT quota_shards_project_id_fkey;
ALTER TABLE blobs DROP CONSTRAINT blobs_status_check;
ALTER TABLE manifest_references DROP CONSTRAINT manifest_references_kind_check;

-- A deleted manifest takes its tags and references with it (a repository's delete
-- deletes its manifests first: `repositories_release`).
CREATE FUNCTION manifests_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tags WHERE manifest_id IN (SELECT id FROM gone);
    DELETE FROM manifest_references WHERE manifest_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;
CREATE TRIGGER manifests_cascade AFTER DELETE ON manifests
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION manifests_cascade();

-- A deleted project takes its counted blobs and usage shards with it.
CREATE FUNCTION projects_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM project_blobs WHERE project_id IN (SELECT id FROM gone);
    DELETE FROM quota_shards WHERE project_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;
CREATE TRIGGER projects_cascade AFTER DELETE ON projects
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION projects_cascade();

CREATE OR REPLACE FUNCTION push_manifest(
    repository_name TEXT, pushed BIGINT,
    manifest_digest TEXT, manifest_media_type TEXT, manifest_artifact_type TEXT,
    manifest_annotations TEXT, manifest_subject TEXT, manifest_content BYTEA,
    reference_kinds TEXT[], reference_digests TEXT[], reference_sizes BIGINT[],
    tag_names TEXT[],
    guard_project BIGINT, guard_revision BIGINT, protected_tags TEXT[],
    audit_project_id BIGINT, audit_username TEXT, audit_operation TEXT,
    audit_resource_type TEXT, audit_resource TEXT, audit_success BOOLEAN,
    audit_client_ip TEXT, audit_op_time BIGINT,
    OUT outcome TEXT, OUT failed_at BIGINT, OUT actual_size BIGINT,
    OUT stored_media_type TEXT, OUT quota_watched BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    repo_id BIGINT;
    repo_project BIGINT;
    stored_id BIGINT;
    stored_new BOOLEAN;
    rules_revision BIGINT;
    limit_bytes BIGINT;
    warned BOOLEAN;
BEGIN
    -- The repository's row, and with a guard the project's row in share mode (a rule
    -- change waits for the push); the quota limit as last committed, which picks how
    -- the push counts (each way reads it again under its lock).
    IF guard_revision IS NOT NULL THEN
        SELECT r.id, r.project_id, p.immutable_rules_revision, q.hard
        INTO repo_id, repo_project, rules_revision, limit_bytes
        FROM repositories r
        JOIN projects p ON p.id = r.project_id
        LEFT JOIN quotas q ON q.project_id = r.project_id
        WHERE r.name = repository_name
        FOR UPDATE OF r FOR SHARE OF p;
    ELSE
        SELECT r.id, r.project_id, q.hard INTO repo_id, repo_project, limit_bytes
        FROM repositories r
        LEFT JOIN quotas q ON q.project_id = r.project_id
        WHERE r.name = repository_name
        FOR UPDATE OF r;
    END IF;
    IF NOT FOUND THEN
        outcome := 'absent';
        RETURN;
    END IF;

    IF guard_revision IS NOT NULL THEN
        -- A guard decided on no project holds for one whose rules never changed.
        IF guard_project <> repo_project OR rules_revision IS DISTINCT FROM guard_revision THEN
            outcome := 'rules_changed';
            RETURN;
        END IF;
        IF cardinality(protected_tags) > 0 THEN
            SELECT p.n INTO failed_at
            FROM unnest(protected_tags) WITH ORDINALITY AS p(name, n)
            JOIN tags t ON t.repository_id = repo_id AND t.name = p.name
            JOIN manifests m ON m.id = t.manifest_id
            WHERE m.digest <> manifest_digest
            ORDER BY p.n
            LIMIT 1;
            IF FOUND THEN
                outcome := 'immutable';
                RETURN;
            END IF;
        END IF;
    END IF;

    -- The first reference the repository does not hold as declared, and the media type
    -- the manifest is stored with, if it is.
    SELECT (SELECT m.media_type FROM manifests m
            WHERE m.repository_id = repo_id AND m.digest = manifest_digest),
           failed.n, failed.actual
    INTO stored_media_type, failed_at, actual_size
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT checked.n, checked.actual
        FROM (SELECT d.n, d.size,
                     CASE d.kind
                         WHEN 'blob' THEN (SELECT b.size FROM repository_blobs rb
                                           JOIN blobs b ON b.digest = rb.digest
                                           WHERE rb.repository_id = repo_id
                                             AND rb.digest = d.digest
                                             AND b.status = 'present')
                         ELSE (SELECT m.size FROM manifests m
                               WHERE m.repository_id = repo_id AND m.digest = d.digest)
                     END AS actual
              FROM unnest(reference_kinds, reference_digests, reference_sizes)
                   WITH ORDINALITY AS d(kind, digest, size, n)) AS checked
        WHERE checked.actual IS DISTINCT FROM checked.size
        ORDER BY checked.n
        LIMIT 1) AS failed ON TRUE;
    IF failed_at IS NOT NULL THEN
        stored_media_type := NULL;
        outcome := 'reference';
        RETURN;
    END IF;
    IF stored_media_type <> manifest_media_type THEN
        outcome := 'media_type';
        RETURN;
    END IF;
    stored_media_type := NULL;

    WITH touched AS (
        UPDATE repositories
        SET updated_at = pushed,
            tag_version = tag_version + (EXISTS (
                SELECT 1 FROM unnest(tag_names) AS t(name)
                WHERE NOT EXISTS (SELECT 1 FROM tags x
                                  WHERE x.repository_id = repo_id AND x.name = t.name)))::INT
        WHERE id = repo_id)
    INSERT INTO manifests (repository_id, digest, media_type, artifact_type, annotations,
                           subject, size, content, pushed_at)
    VALUES (repo_id, manifest_digest, manifest_media_type, manifest_artifact_type,
            manifest_annotations, manifest_subject, length(manifest_content),
            manifest_content, pushed)
    ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at
    RETURNING id, xmax = 0 INTO stored_id, stored_new;
    -- A manifest stored anew counts its own bytes and the blobs it references, each
    -- once however often it lists it (its references are all new with it; a manifest
    -- pushed again adds none).
    IF stored_new AND limit_bytes >= 0 THEN
        PERFORM quota_count(repo_project,
                            manifest_digest || array_agg(b.digest),
                            length(manifest_content)::BIGINT || array_agg(b.size))
        FROM (SELECT DISTINCT r.digest, r.size
              FROM unnest(reference_kinds, reference_digests, reference_sizes)
                   AS r(kind, digest, size)
              WHERE r.kind = 'blob') AS b;
    ELSIF stored_new THEN
        -- No limit: quota_count's work, inline. The usage lock is shared with other
        -- pushes; once it is held, the limit is read again (a limit set meanwhile makes
        -- the push try again, as quota_lock does) beside the upserts.
        PERFORM pg_advisory_xact_lock_shared(1366586212, hashint8(repo_project));
        WITH quota AS (
                 SELECT q.hard, q.warned FROM quotas q WHERE q.project_id = repo_project),
             counted AS (
                 SELECT manifest_digest AS digest, length(manifest_content)::BIGINT AS size
                 UNION ALL
                 SELECT DISTINCT r.digest, r.size
                 FROM unnest(reference_kinds, reference_digests, reference_sizes)
                      AS r(kind, digest, size)
                 WHERE r.kind = 'blob'),
             upserted AS (
                 INSERT INTO project_blobs AS pb (project_id, digest, size, refs)
                 SELECT repo_project, c.digest, max(c.size), count(*) FROM counted c
                 GROUP BY c.digest ORDER BY c.digest
                 ON CONFLICT (project_id, digest) DO UPDATE SET refs = pb.refs + excluded.refs
                 RETURNING pb.size, pb.xmax = 0 AS inserted),
             shard AS (
                 INSERT INTO quota_shards AS s (project_id, shard, used)
                 SELECT repo_project, (txid_current() % 16)::SMALLINT,
                        sum(u.size) FILTER (WHERE u.inserted)
                 FROM upserted u
                 HAVING sum(u.size) FILTER (WHERE u.inserted) > 0
                 ON CONFLICT (project_id, shard) DO UPDATE SET used = s.used + excluded.used)
        SELECT quota.hard, quota.warned INTO limit_bytes, warned
        FROM (SELECT 1) AS one LEFT JOIN quota ON TRUE;
        IF limit_bytes >= 0 THEN
            RAISE EXCEPTION USING ERRCODE = '40001',
                MESSAGE = 'the project''s quota limit changed during the push';
        END IF;
        -- Whether the project's quota warning mark may have to change after this push:
        -- not when the project has neither a limit nor a mark.
        quota_watched := coalesce(warned, TRUE);
    END IF;
    -- A statement may not update one tag twice. The repository's version was bumped
    -- above: the insert trigger stays quiet.
    PERFORM set_config('berth.tags_counted', 'on', true);
    WITH referenced AS (
             INSERT INTO manifest_references (manifest_id, kind, digest)
             SELECT stored_id, r.kind, r.digest
             FROM unnest(reference_kinds, reference_digests) AS r(kind, digest)
             ON CONFLICT DO NOTHING),
         audited AS (
             INSERT INTO audit_log (project_id, username, operation, resource_type,
                                    resource, success, client_ip, op_time)
             SELECT coalesce(audit_project_id, repo_project), audit_username,
                    audit_operation, audit_resource_type, audit_resource, audit_success,
                    audit_client_ip, audit_op_time
             WHERE audit_op_time IS NOT NULL)
    INSERT INTO tags (repository_id, name, manifest_id, pushed_at)
    SELECT DISTINCT repo_id, t.name, stored_id, pushed FROM unnest(tag_names) AS t(name)
    ON CONFLICT (repository_id, name)
    DO UPDATE SET manifest_id = excluded.manifest_id, pushed_at = excluded.pushed_at;
    PERFORM set_config('berth.tags_counted', 'off', true);
    IF quota_watched IS NULL THEN
        SELECT q.hard >= 0 OR q.warned INTO quota_watched
        FROM quotas q WHERE q.project_id = repo_project;
        quota_watched := coalesce(quota_watched, TRUE);
    END IF;
    outcome := 'stored';
END
$$;

-- As complete_new_upload (0023), which nodes of the release before go on calling, with
-- the quota read inside, after the locks, and looked at closely only for a project with
-- a limit: the query its callers ran beside it was planned and set up on every call,
-- whether or not the project had a limit, and cost a tenth of a small blob's push.
-- Answers the outcome and, with 'over_quota', what refused it: the project's usage, its
-- limit and the session's size.
CREATE FUNCTION complete_whole_upload(
    session_id TEXT, pinned_digest TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    holder BIGINT, held_until BIGINT, project_name TEXT, published_at BIGINT,
    fresh_for BIGINT, OUT outcome TEXT, OUT refusal BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    open_id BOOLEAN;
    ended_id BOOLEAN;
    linkable BOOLEAN;
    limit_bytes BIGINT;
    repo_id BIGINT;
BEGIN
    -- Few statements, each a round of the executor: the locks (the id's, then the
    -- digest's), the checks (after both were granted), the writes.
    PERFORM pg_advisory_xact_lock(1433431140, hashtext(session_id)),
            pg_advisory_xact_lock(digest_lock_key(pinned_digest));
    SELECT EXISTS (SELECT 1 FROM uploads WHERE id = session_id),
           EXISTS (SELECT 1 FROM ended_uploads WHERE id = session_id),
           clock_ms() - published_at < fresh_for
           AND NOT EXISTS (SELECT 1 FROM swept_blobs WHERE digest = pinned_digest)
           AND NOT EXISTS (SELECT 1 FROM blobs WHERE digest = pinned_digest
                                                  AND status <> 'present'),
           (SELECT q.hard FROM quotas q JOIN projects p ON p.id = q.project_id
            WHERE p.name = project_name)
    INTO open_id, ended_id, linkable, limit_bytes;
    IF open_id THEN
        outcome := 'taken';
        RETURN;
    END IF;
    IF ended_id THEN
        outcome := 'no_session';
        RETURN;
    END IF;
    -- Refused when the project has a limit, the blob is new to it, and its bytes would
    -- take the usage past the limit.
    IF limit_bytes >= 0 THEN
        SELECT ARRAY[quota_used(q.project_id), q.hard, session_offset] INTO refusal
        FROM quotas q JOIN projects p ON p.id = q.project_id
        WHERE p.name = project_name AND q.hard >= 0
          AND NOT EXISTS (SELECT 1 FROM project_blobs pb
                          WHERE pb.project_id = q.project_id AND pb.digest = pinned_digest)
          AND session_offset > q.hard - quota_used(q.project_id);
        IF refusal IS NOT NULL THEN
            outcome := 'over_quota';
            RETURN;
        END IF;
    END IF;
    IF linkable THEN
        WITH repo AS (
                 UPDATE repositories SET updated_at = session_updated_at
                 WHERE name = session_repository RETURNING id),
             blob AS (
                 INSERT INTO blobs (digest, size, created_at)
                 SELECT pinned_digest, session_offset, session_updated_at FROM repo
                 ON CONFLICT (digest) DO NOTHING),
             link AS (
                 INSERT INTO repository_blobs AS rb (repository_id, digest, created_at)
                 SELECT id, pinned_digest, session_updated_at FROM repo
                 ON CONFLICT (repository_id, digest) DO UPDATE
                 SET created_at = GREATEST(rb.created_at, excluded.created_at)),
             ended AS (
                 INSERT INTO ended_uploads (id, ended_at)
                 SELECT session_id, session_updated_at FROM repo
                 ON CONFLICT (id) DO NOTHING)
        SELECT id INTO repo_id FROM repo;
        IF FOUND THEN
            outcome := 'linked';
            RETURN;
        END IF;
    END IF;
    outcome := pin_new_upload(session_id, pinned_digest, session_repository,
                              session_algorithm, session_offset, session_hash_state,
                              session_verified_by, session_verified_digest,
                              session_created_at, session_updated_at, holder, held_until,
                              FALSE);
END
$$;
