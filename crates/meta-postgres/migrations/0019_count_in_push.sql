-- Quota counting in the push itself: put_manifest counts a manifest stored anew, its own
-- bytes and the blobs it references, in one quota_count call, where a row trigger on
-- manifests and a statement trigger on manifest_references (both only ever fired by
-- put_manifest) each made one: a push takes the project's usage lock and upserts its
-- counted digests once instead of twice. The call comes where the row trigger fired,
-- right after the manifest's row, so locks are taken in the same order as before.
-- Reference sizes are those put_manifest has just checked against the blobs' rows; a
-- blob listed twice (as config and layer, or as two layers) has one reference row, and
-- counts once.
DROP TRIGGER manifests_count ON manifests;
DROP FUNCTION manifests_count();
DROP TRIGGER manifest_references_count ON manifest_references;
DROP FUNCTION manifest_references_count();

CREATE OR REPLACE FUNCTION put_manifest(
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
    OUT stored_media_type TEXT)
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

    UPDATE repositories SET updated_at = pushed WHERE id = repo_id;
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
    -- A statement may not update one tag twice.
    INSERT INTO tags (repository_id, name, manifest_id, pushed_at)
    SELECT DISTINCT repo_id, t.name, stored_id, pushed FROM unnest(tag_names) AS t(name)
    ON CONFLICT (repository_id, name)
    DO UPDATE SET manifest_id = excluded.manifest_id, pushed_at = excluded.pushed_at;
    IF audit_op_time IS NOT NULL THEN
        INSERT INTO audit_log (project_id, username, operation, resource_type, resource,
                               success, client_ip, op_time)
        VALUES (coalesce(audit_project_id, repo_project), audit_username, audit_operation,
                audit_resource_type, audit_resource, audit_success, audit_client_ip,
                audit_op_time);
    END IF;
    outcome := 'stored';
END
$$;
