-- A repository's `tag_version` becomes its version: besides every tag change, it is
-- bumped by every change that could make a cached read of the repository wrong, so a
-- node serves what a digest resolves to and which blobs the repository links from
-- memory only at the version the database reports. Added rows need no bump: only what
-- was found is cached.

-- A statement's deleted manifests or blob links bump their repositories' version once.
CREATE TRIGGER manifests_deleted AFTER DELETE ON manifests
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tags_changed();
CREATE TRIGGER repository_blobs_deleted AFTER DELETE ON repository_blobs
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tags_changed();

-- A blob that stops being servable (marked for deletion) bumps the version of every
-- repository that links it. Becoming servable again only adds facts: no bump, and no
-- lock on other repositories from the link that revives it. Whoever marks blobs for
-- deletion locks the repositories linking them first, in id order, as pushes lock a
-- repository before the blob.
CREATE FUNCTION blob_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repositories SET tag_version = tag_version + 1
    WHERE id IN (SELECT repository_id FROM repository_blobs WHERE digest = NEW.digest);
    RETURN NULL;
END
$$;
CREATE TRIGGER blobs_status_updated AFTER UPDATE OF status ON blobs
    FOR EACH ROW
    WHEN (OLD.status = 'present' AND NEW.status <> 'present')
    EXECUTE FUNCTION blob_status_changed();
