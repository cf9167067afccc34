-- Committing a pushed manifest in one round trip: the repository's row is locked first,
-- as by every write into the repository, so no delete in it runs between the checks and
-- the commit. Nothing changes unless every check passes. `outcome` says what happened:
--   'absent'      there is no such repository: the caller creates it in a transaction
--                 and calls again within that transaction;
--   'reference'   the reference at `failed_at` (1-based, in the order given) is not in
--                 the repository (`actual_size` is NULL) or has another size;
--   'media_type'  the repository holds the digest with `stored_media_type`: one digest
--                 is served with one media type;
--   'stored'      the manifest, its references, its tags and the audit entry (when
--                 `audit_op_time` is not NULL) are written.
-- A reference of kind 'blob' must be a blob linked to the repository and present; any
-- other kind, a manifest of the repository.
CREATE FUNCTION put_manifest(
    repository_name TEXT, pushed BIGINT,
    manifest_digest TEXT, manifest_media_type TEXT, manifest_artifact_type TEXT,
    manifest_annotations TEXT, manifest_subject TEXT, manifest_content BYTEA,
    reference_kinds TEXT[], reference_digests TEXT[], reference_sizes BIGINT[],
    tag_names TEXT[],
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
BEGIN
    SELECT id, project_id INTO repo_id, repo_project
    FROM repositories WHERE name = repository_name FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'absent';
        RETURN;
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
    RETURNING id INTO stored_id;
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
