-- A completing upload that publishes its bytes before it records anything links the
-- blob in one round trip (complete_new_upload), when no sweep can have taken the bytes
-- since they were published. A sweep retires a blob's bytes under its marked row and
-- deletes the row only after: so the bytes found or placed at publishing are still
-- there when the row is present, or when there is none and no sweep deleted one since.
-- `swept_blobs` remembers the deletions (a trigger, so that every node's sweeps count,
-- those of the release before included), by the database's clock; the upload purge
-- forgets those older than a day (berth_meta::SWEPT_BLOBS_KEPT_FOR).
CREATE TABLE swept_blobs (
    digest   TEXT   COLLATE "C" PRIMARY KEY,
    swept_at BIGINT NOT NULL
);
-- The purge deletes the rows swept before a cutoff.
CREATE INDEX swept_blobs_swept_at ON swept_blobs (swept_at);

-- Milliseconds since the Unix epoch, by the database's clock, now (not at the start of
-- the transaction).
CREATE FUNCTION clock_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
$$;

CREATE FUNCTION blobs_swept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO swept_blobs (digest, swept_at) VALUES (OLD.digest, clock_ms())
    ON CONFLICT (digest) DO UPDATE SET swept_at = excluded.swept_at;
    RETURN NULL;
END
$$;

CREATE TRIGGER blobs_deleted AFTER DELETE ON blobs
    FOR EACH ROW EXECUTE FUNCTION blobs_swept();

-- Every step that records an upload id, or completes one without recording it, takes
-- the id's lock first (namespace 1433431140), and checks the id in statements that
-- start after the lock was granted: a whole blob completing at once ends the id with
-- no session row, so a concurrent creation (a chunk, a cancel, a refusal recording the
-- id to end it) could otherwise miss it and record the id again. Replaced in place, so
-- that nodes of the release before take the lock too.

CREATE OR REPLACE FUNCTION open_upload_session(
    lock_key BIGINT,
    session_id TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    max_total BIGINT, max_in_repository BIGINT,
    OUT total BIGINT, OUT in_repository BIGINT, OUT taken BOOLEAN)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1433431140, hashtext(session_id));
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

CREATE OR REPLACE FUNCTION pin_new_upload(
    session_id TEXT, pinned_digest TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    holder BIGINT, held_until BIGINT, over_quota BOOLEAN)
RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1433431140, hashtext(session_id));
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

-- A session completing in one request, its bytes published at `published_at` (by the
-- node's clock): answers 'taken', 'no_session' or 'over_quota' as pin_new_upload (0021)
-- does; else, under the digest's lock, 'linked' when it may link the blob at once (the
-- blob's row present, or none and no tombstone; published less than `fresh_for`
-- milliseconds ago by the database's clock; the repository there): the blob is linked
-- and the id ended, as complete_upload_in_existing_repository does. Otherwise it records
-- the session pinned and claimed with pin_new_upload ('pinned' or 'revived'; its locks
-- are held already), and the caller publishes the bytes again under the pin and
-- completes the session.
CREATE FUNCTION complete_new_upload(
    session_id TEXT, pinned_digest TEXT, session_repository TEXT, session_algorithm TEXT,
    session_offset BIGINT, session_hash_state BYTEA, session_verified_by BIGINT,
    session_verified_digest TEXT, session_created_at BIGINT, session_updated_at BIGINT,
    holder BIGINT, held_until BIGINT, over_quota BOOLEAN, published_at BIGINT,
    fresh_for BIGINT)
RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    open_id BOOLEAN;
    ended_id BOOLEAN;
    linkable BOOLEAN;
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
                                                  AND status <> 'present')
    INTO open_id, ended_id, linkable;
    IF open_id THEN
        RETURN 'taken';
    END IF;
    IF ended_id THEN
        RETURN 'no_session';
    END IF;
    IF over_quota THEN
        RETURN 'over_quota';
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
            RETURN 'linked';
        END IF;
    END IF;
    RETURN pin_new_upload(session_id, pinned_digest, session_repository, session_algorithm,
                          session_offset, session_hash_state, session_verified_by,
                          session_verified_digest, session_created_at, session_updated_at,
                          holder, held_until, FALSE);
END
$$;
