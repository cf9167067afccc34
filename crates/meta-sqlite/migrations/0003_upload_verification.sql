-- Which process wrote and hashed every byte of an upload (NULL: unknown, so the bytes
-- are hashed again when the upload completes).
ALTER TABLE uploads ADD COLUMN verified_by INTEGER;
-- Counting a repository's open sessions, for the per-repository limit.
CREATE INDEX uploads_repository ON uploads(repository);
