-- A completion that pins a digest whose blob is marked for deletion revives the blob
-- (present again, any sweep's claim cleared) instead of waiting for its sweep: the
-- completion publishes its own bytes, never over a blob that is there, and a sweep
-- under way deletes the row only under its claim, so it finds the row taken over and
-- restores what it retired. A store that refuses deletions thus holds up no push.
-- Answers 'pinned', 'revived' or 'no_session'.
CREATE OR REPLACE FUNCTION pin_upload_digest(session_id TEXT, pinned_digest TEXT)
RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(digest_lock_key(pinned_digest));
    UPDATE uploads SET completing = pinned_digest WHERE id = session_id;
    IF NOT FOUND THEN
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
