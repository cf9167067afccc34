-- Two lighter pushes, in `push_manifest`, which new nodes call in place of
-- `put_manifest`. Nodes of the release before go on calling `put_manifest`, unchanged
-- here (a function dropped or replaced while they run it fails their pushes); a later
-- migration drops it.
-- 1. push_manifest also answers whether the push needs a look at its project's quota
--    warning mark (`quota_watched`): a project with neither a limit nor a mark needs
--    none, and most pushes then make one round trip instead of two.
-- 2. A push that adds a tag bumps its repository's `tag_version` in the update of the
--    repository's row it makes anyway (a tag it moves bumps it through the row trigger
--    `tags_updated`; one it sets again as it was changes nothing cached), and its tag
--    upsert runs with the setting `berth.tags_counted` on, under which the statement
--    trigger `tags_inserted` does not fire: the trigger's second update of the same
--    row, and its PL/pgSQL call, cost each push a twentieth of its time. Every other
--    insert of tags, `put_manifest`'s included, still bumps through the trigger.
CREATE FUNCTION push_manifest(
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
BEGIN
    SELECT id, project_id INTO repo_id, repo_project
    FROM repositories WHERE name = repository_name FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'absent';
        RETURN;
    END IF;

    IF guard_revision IS NOT NULL THEN
        SELECT immutable_rules_revision INTO rules_revision
        FROM projects WHERE id = repo_project FOR SHARE;
        -- A guard decided on no project holds for one whose rules never changed.
        IF guard_project <> repo_project OR rules_revision IS DISTINCT FROM guard_revision THEN
            outcome := 'rules_changed';
            RETURN;
        END IF;
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

    SELECT checked.n, checked.actual INTO failed_at, actual_size
    FROM (SELECT d.n, d.size,
                 CASE d.kind
                     WHEN 'blob' THEN (SELECT b.size FROM repository_blobs rb
                                       JOIN blobs b ON b.digest = rb.digest
                                       WHERE rb.repository_id = repo_id
                                         AND rb.digest = d.digest AND b.status = 'present')
                     ELSE (SELECT m.size FROM manifests m
                           WHERE m.repository_id = repo_id AND m.digest = d.digest)
                 END AS actual
          FROM unnest(reference_kinds, reference_digests, reference_sizes)
               WITH ORDINALITY AS d(kind, digest, size, n)) AS checked
    WHERE checked.actual IS DISTINCT FROM checked.size
    ORDER BY checked.n
    LIMIT 1;
    IF FOUND THEN
        outcome := 'reference';
        RETURN;
    END IF;

    SELECT m.media_type INTO stored_media_type
    FROM manifests m WHERE m.repository_id = repo_id AND m.digest = manifest_digest;
    IF FOUND AND stored_media_type <> manifest_media_type THEN
        outcome := 'media_type';
        RETURN;
    END IF;

    UPDATE repositories
    SET updated_at = pushed,
        tag_version = tag_version + (EXISTS (
            SELECT 1 FROM unnest(tag_names) AS t(name)
            WHERE NOT EXISTS (SELECT 1 FROM tags x
                              WHERE x.repository_id = repo_id AND x.name = t.name)))::INT
    WHERE id = repo_id;
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
    IF stored_new THEN
        PERFORM quota_count(repo_project,
                            manifest_digest || array_agg(b.digest),
                            length(manifest_content)::BIGINT || array_agg(b.size))
        FROM (SELECT DISTINCT r.digest, r.size
              FROM unnest(reference_kinds, reference_digests, reference_sizes)
                   AS r(kind, digest, size)
              WHERE r.kind = 'blob') AS b;
    END IF;
    INSERT INTO manifest_references (manifest_id, kind, digest)
    SELECT stored_id, r.kind, r.digest
    FROM unnest(reference_kinds, reference_digests) AS r(kind, digest)
    ON CONFLICT DO NOTHING;
    -- A statement may not update one tag twice. The repository's version was bumped
    -- above: the insert trigger stays quiet.
    PERFORM set_config('berth.tags_counted', 'on', true);
    INSERT INTO tags (repository_id, name, manifest_id, pushed_at)
    SELECT DISTINCT repo_id, t.name, stored_id, pushed FROM unnest(tag_names) AS t(name)
    ON CONFLICT (repository_id, name)
    DO UPDATE SET manifest_id = excluded.manifest_id, pushed_at = excluded.pushed_at;
    PERFORM set_config('berth.tags_counted', 'off', true);
    IF audit_op_time IS NOT NULL THEN
        INSERT INTO audit_log (project_id, username, operation, resource_type, resource,
                               success, client_ip, op_time)
        VALUES (coalesce(audit_project_id, repo_project), audit_username, audit_operation,
                audit_resource_type, audit_resource, audit_success, audit_client_ip,
                audit_op_time);
    END IF;
    -- Whether the project's quota warning mark may have to change after this push: not
    -- when the project has neither a limit nor a mark. The caller looks at the mark
    -- only when it may.
    SELECT q.hard >= 0 OR q.warned INTO quota_watched
    FROM quotas q WHERE q.project_id = repo_project;
    quota_watched := coalesce(quota_watched, TRUE);
    outcome := 'stored';
END
$$;

-- Replaced in place: a lock that lets the tags be read meanwhile.
CREATE OR REPLACE TRIGGER tags_inserted AFTER INSERT ON tags
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT
    WHEN (current_setting('berth.tags_counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tags_changed();
