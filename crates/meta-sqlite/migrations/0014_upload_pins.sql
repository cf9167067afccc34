-- The digest a session is publishing, from the completion's pin until the session ends:
-- garbage collection does not mark that blob for deletion meanwhile.
ALTER TABLE uploads ADD COLUMN completing TEXT;
CREATE INDEX uploads_completing ON uploads(completing) WHERE completing IS NOT NULL;
