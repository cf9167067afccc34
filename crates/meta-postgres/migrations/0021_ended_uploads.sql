-- Upload ids that were ended (completed, cancelled, discarded or purged as stale), and
-- when. A session now gets its row only with its first chunk (or, for a monolithic
-- upload, as it completes), so an id can be open without a row: without this table an
-- ended id would look like a new one, and its upload URL would open it again. A row is
-- kept until no upload URL naming the id can still be valid, then purged by age.
CREATE TABLE ended_uploads (
    id       TEXT   COLLATE "C" PRIMARY KEY,
    ended_at BIGINT NOT NULL
);
-- The purge deletes the rows ended before a cutoff.
CREATE INDEX ended_uploads_ended_at ON ended_uploads (ended_at);

-- Opening a session (0004) now also refuses an id that is taken: one with a session, or
-- one that was ended. The check comes first, before the creations' lock; a concurrent
-- creation of the same id is caught by the insert itself (ON CONFLICT DO NOTHING waits
-- for the other insert and, once it commits, inserts nothing), so it too answers
-- `taken` rather than failing on the primary key. A taken id answers no counts. The
-- inputs are unchanged and the OUT columns only grow, so that a node still running the
-- previous release, which selects `total, in_repository`, keeps working.
DROP FUNCTION open_upload_session(BIGINT, TEXT, TEXT, TEXT, BIGINT, BYTEA, BIGINT, TEXT,
                                  BIGINT, BIGINT, BIGINT, BIGINT);
CREATE FUNCTION open_upload_session(
    lock_key BIGINT,
    session_id TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    max_total BIGINT, max_in_repository BIGINT,
    OUT total BIGINT, OUT in_repository BIGINT, OUT taken BOOLEAN)
LANGUAGE plpgsql AS $$
BEGIN
    taken := EXISTS (SELECT 1 FROM uploads WHERE id = session_id)
             OR EXISTS (SELECT 1 FROM ended_uploads WHERE id = session_id);
    IF taken THEN
        RETURN;
    END IF;
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
                session_created_at, session_updated_at)
        ON CONFLICT (id) DO NOTHING;
        taken := NOT FOUND;
    END IF;
END
$$;

-- A session recorded as it completes: a monolithic upload's completing request has
-- written and hashed every byte before the session had a row, and records it here
-- already pinned on its digest and claimed by its node, as create, lease and
-- pin_completing_upload (0018) would leave it, in one round trip. Answers 'taken' (the
-- id has a session, or a concurrent creation inserted it first: ON CONFLICT waits for
-- it), 'no_session' (the id was ended), 'over_quota' (the caller's verdict, read
-- beside the quota as pin_upload_digest reads it: nothing is recorded), else 'pinned'
-- or 'revived' as the pin does (0015), under the digest's lock. The open-session
-- limits do not apply: the session lives only as long as the request completing it.
CREATE FUNCTION pin_new_upload(
    session_id TEXT, pinned_digest TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    holder BIGINT, held_until BIGINT, over_quota BOOLEAN)
RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM uploads WHERE id = session_id) THEN
        RETURN 'taken';
    END IF;
    IF EXISTS (SELECT 1 FROM ended_uploads WHERE id = session_id) THEN
        RETURN 'no_session';
    END IF;
    IF over_quota THEN
        RETURN 'over_quota';
    END IF;
    PERFORM pg_advisory_xact_lock(digest_lock_key(pinned_digest));
    INSERT INTO uploads (id, repository, algorithm, "offset", hash_state, verified_by,
                         verified_digest, created_at, updated_at, completing,
                         lease_holder, lease_until)
    VALUES (session_id, session_repository, session_algorithm, session_offset,
            session_hash_state, session_verified_by, session_verified_digest,
            session_created_at, session_updated_at, pinned_digest, holder, held_until)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;
    UPDATE blobs SET status = 'present', sweep_token = NULL, sweep_until = NULL
    WHERE digest = pinned_digest AND status = 'deleting';
    IF FOUND THEN
        RETURN 'revived';
    END IF;
    RETURN 'pinned';
END
$$;
