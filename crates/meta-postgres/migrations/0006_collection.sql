-- Garbage collection (docs/design/gc.md). A completing upload pins the digest it is
-- about to publish; a blob is marked for deletion only when no repository links it and
-- no session pins it. Both take a transaction-scoped advisory lock on the digest
-- first and check in a statement of their own after it, so under READ COMMITTED each
-- sees what the other committed: a pin and a mark never both succeed.
ALTER TABLE uploads ADD COLUMN completing TEXT COLLATE "C";
CREATE INDEX uploads_completing ON uploads (completing) WHERE completing IS NOT NULL;

-- The advisory-lock key of a digest (the key space is shared with `Lock` in Rust, whose
-- keys are small constants; a digest's 64-bit hash falls among them with negligible odds).
CREATE FUNCTION digest_lock_key(digest TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtextextended(digest, 0) $$;

-- Pins `pinned_digest` in session `session_id` unless the blob is marked for deletion:
-- 'pinned', 'deleting' or 'no_session'.
CREATE FUNCTION pin_upload_digest(session_id TEXT, pinned_digest TEXT)
RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(digest_lock_key(pinned_digest));
    IF EXISTS (SELECT 1 FROM blobs WHERE digest = pinned_digest AND status = 'deleting') THEN
        RETURN 'deleting';
    END IF;
    UPDATE uploads SET completing = pinned_digest WHERE id = session_id;
    IF NOT FOUND THEN
        RETURN 'no_session';
    END IF;
    RETURN 'pinned';
END
$$;

-- Marks up to `batch` blobs after `after` (digest order) for deletion: present, recorded
-- before `recorded_before`, linked by no repository and pinned by no session. Each is
-- locked (its digest, then its row) before the check that marks it, so a link or pin
-- committed meanwhile is seen.
CREATE FUNCTION mark_unlinked_blobs(after TEXT, batch INTEGER, recorded_before BIGINT)
RETURNS TABLE (marked_digest TEXT, marked_size BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    candidate TEXT;
BEGIN
    FOR candidate IN
        SELECT b.digest FROM blobs b
        WHERE b.digest > after AND b.status = 'present' AND b.created_at < recorded_before
          AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
        ORDER BY b.digest LIMIT batch
    LOOP
        PERFORM pg_advisory_xact_lock(digest_lock_key(candidate));
        PERFORM 1 FROM blobs WHERE digest = candidate FOR UPDATE;
        RETURN QUERY
            UPDATE blobs b SET status = 'deleting'
            WHERE b.digest = candidate AND b.status = 'present'
              AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = candidate)
              AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = candidate)
            RETURNING b.digest, b.size;
    END LOOP;
END
$$;

-- Removes, in up to `batch` repositories after `after` (id order), the blob links no
-- manifest of the repository references, set before `set_before`. Each repository's row
-- is locked before its links are checked, as a delete does, so a manifest pushed
-- meanwhile either keeps its blobs or finds them gone.
CREATE FUNCTION unlink_unreferenced(after BIGINT, batch INTEGER, set_before BIGINT,
                                    OUT last_repository BIGINT, OUT unlinked BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    repo BIGINT;
    removed BIGINT;
BEGIN
    unlinked := 0;
    FOR repo IN SELECT id FROM repositories WHERE id > after ORDER BY id LIMIT batch LOOP
        PERFORM 1 FROM repositories WHERE id = repo FOR UPDATE;
        DELETE FROM repository_blobs rb
        WHERE rb.repository_id = repo AND rb.created_at < set_before
          AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                          JOIN manifests m ON m.id = mr.manifest_id
                          WHERE m.repository_id = repo AND mr.kind = 'blob'
                            AND mr.digest = rb.digest);
        GET DIAGNOSTICS removed = ROW_COUNT;
        unlinked := unlinked + removed;
        last_repository := repo;
    END LOOP;
END
$$;
