-- Upload ids that were ended (completed, cancelled, discarded or purged as stale), and
-- when. A session now gets its row only with its first chunk (or, for a monolithic
-- upload, as it completes), so an id can be open without a row: without this table an
-- ended id would look like a new one, and its upload URL would open it again. A row is
-- kept until no upload URL naming the id can still be valid, then purged by age.
CREATE TABLE ended_uploads (
    id       TEXT    PRIMARY KEY,
    ended_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The purge deletes the rows ended before a cutoff.
CREATE INDEX ended_uploads_ended_at ON ended_uploads(ended_at);
