-- Marking passes over pinned blobs when it picks its candidates, as it does over linked
-- ones: a batch whose candidates were all pinned marked nothing, and a collection takes
-- a batch that marks nothing for the end of its marking.
CREATE OR REPLACE FUNCTION mark_unlinked_blobs(after TEXT, batch INTEGER,
                                               recorded_before BIGINT)
RETURNS TABLE (marked_digest TEXT, marked_size BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    candidate TEXT;
BEGIN
    FOR candidate IN
        SELECT b.digest FROM blobs b
        WHERE b.digest > after AND b.status = 'present' AND b.created_at < recorded_before
          AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
          AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.completing = b.digest)
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
