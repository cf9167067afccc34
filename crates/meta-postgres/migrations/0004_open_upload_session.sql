-- Opening an upload session under the session limits in one round trip. With
-- `lock_key`, the advisory lock serializes creations across nodes; the count after it
-- is a statement of its own in a volatile function, so under READ COMMITTED it sees
-- every creation committed before the lock was granted. The session is inserted only
-- within both limits; the counts it was checked against are returned either way.
CREATE FUNCTION open_upload_session(
    lock_key BIGINT,
    session_id TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    max_total BIGINT, max_in_repository BIGINT,
    OUT total BIGINT, OUT in_repository BIGINT)
LANGUAGE plpgsql AS $$
BEGIN
    IF lock_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(lock_key);
    END IF;
    SELECT count(*), count(*) FILTER (WHERE repository = session_repository)
    INTO total, in_repository
    FROM uploads;
    IF total < max_total AND in_repository < max_in_repository THEN
        INSERT INTO uploads (id, repository, algorithm, "offset", hash_state, verified_by,
                             verified_digest, created_at, updated_at)
        VALUES (session_id, session_repository, session_algorithm, session_offset,
                session_hash_state, session_verified_by, session_verified_digest,
                session_created_at, session_updated_at);
    END IF;
END
$$;
