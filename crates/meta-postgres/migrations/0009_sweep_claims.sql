-- A sweep claims a marked blob for a lease instead of holding its row locked while the
-- bytes are deleted: a lock goes with the session that holds it, and the server ends an
-- idle session after the statement timeout, while the deletion it guarded may still
-- land. A claim lasts until its lease lapses (in milliseconds since 1970 by the
-- database's clock), whatever becomes of the session, and the sweep gives up on its
-- deletion well before then.
ALTER TABLE blobs
    ADD COLUMN sweep_token TEXT COLLATE "C",
    ADD COLUMN sweep_until BIGINT;
