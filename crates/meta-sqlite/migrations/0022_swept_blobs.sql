-- The blobs whose rows a sweep deleted, and when (milliseconds since the Unix epoch, by
-- the system clock): a completing upload that published its bytes before it recorded
-- anything links the blob at once only when no sweep can have taken them since (see
-- `pin_new_upload`). A trigger writes them, whatever deletes the row; the upload purge
-- forgets those older than a day (berth_meta::SWEPT_BLOBS_KEPT_FOR).
CREATE TABLE swept_blobs (
    digest   TEXT    PRIMARY KEY,
    swept_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The purge deletes the rows swept before a cutoff.
CREATE INDEX swept_blobs_swept_at ON swept_blobs(swept_at);

CREATE TRIGGER blobs_deleted AFTER DELETE ON blobs
BEGIN
    INSERT INTO swept_blobs (digest, swept_at)
    VALUES (OLD.digest, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
    ON CONFLICT (digest) DO UPDATE SET swept_at = excluded.swept_at;
END;
