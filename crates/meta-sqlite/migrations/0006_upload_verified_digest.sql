-- The digest an upload's bytes at rest were found to hash to just before they were
-- published (NULL: not hashed at rest since the last append), so that a retried
-- completion that finds them published can link them.
ALTER TABLE uploads ADD COLUMN verified_digest TEXT;
