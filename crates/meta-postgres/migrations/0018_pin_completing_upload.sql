-- A completing upload's pin, as pin_upload_digest (0015) places it, moving the session
-- over the bytes its completing request appended first (when from_offset is given),
-- compare-and-set on the offset as an append's advance does: a completion that carries
-- the last chunk records it and pins in one statement. Answers 'pinned', 'revived',
-- 'no_session' or 'moved' (the session is no longer at from_offset: nothing changed).
-- pin_upload_digest stays for nodes still running the previous release.
CREATE OR REPLACE FUNCTION pin_completing_upload(
    session_id TEXT, pinned_digest TEXT, from_offset BIGINT, to_offset BIGINT,
    state BYTEA, writer BIGINT, at BIGINT)
RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(digest_lock_key(pinned_digest));
    IF from_offset IS NULL THEN
        UPDATE uploads SET completing = pinned_digest WHERE id = session_id;
    ELSE
        UPDATE uploads
        SET completing = pinned_digest, "offset" = to_offset, hash_state = state,
            verified_digest = NULL, updated_at = at,
            verified_by = CASE WHEN verified_by = writer THEN verified_by END
        WHERE id = session_id AND "offset" = from_offset;
    END IF;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM uploads WHERE id = session_id) THEN
            RETURN 'moved';
        END IF;
        RETURN 'no_session';
    END IF;
    UPDATE blobs SET status = 'present', sweep_token = NULL, sweep_until = NULL
    WHERE digest = pinned_digest AND status = 'deleting';
    IF FOUND THEN
        RETURN 'revived';
    END IF;
    RETURN 'pinned';
END
$$;
