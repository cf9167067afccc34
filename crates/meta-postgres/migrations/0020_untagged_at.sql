-- When a manifest last lost a tag (0 for never): a manifest untagged is unreferenced from
-- then on, not from its push, so a collection that deletes untagged manifests keeps it
-- for the grace period after. A tag moved to another manifest marks the one it left, at
-- the push that moved it; a tag deleted marks its manifest in the delete itself.
ALTER TABLE manifests ADD COLUMN untagged_at BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION tags_moved_off() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE manifests SET untagged_at = NEW.pushed_at WHERE id = OLD.manifest_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tags_moved_off AFTER UPDATE OF manifest_id ON tags
FOR EACH ROW WHEN (OLD.manifest_id <> NEW.manifest_id)
EXECUTE FUNCTION tags_moved_off();
