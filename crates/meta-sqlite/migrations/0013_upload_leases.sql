-- Claims on upload sessions: the node writing a session's bytes and until when.
ALTER TABLE uploads ADD COLUMN lease_holder INTEGER;
ALTER TABLE uploads ADD COLUMN lease_until INTEGER;
