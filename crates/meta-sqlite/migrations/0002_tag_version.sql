-- A counter bumped by every tag change, so a cached tag list can be checked for
-- staleness with one point lookup (by any node).
ALTER TABLE repositories ADD COLUMN tag_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER tags_inserted AFTER INSERT ON tags BEGIN
    UPDATE repositories SET tag_version = tag_version + 1 WHERE id = NEW.repository_id;
END;
CREATE TRIGGER tags_updated AFTER UPDATE OF manifest_id, name ON tags BEGIN
    UPDATE repositories SET tag_version = tag_version + 1 WHERE id = NEW.repository_id;
END;
CREATE TRIGGER tags_deleted AFTER DELETE ON tags BEGIN
    UPDATE repositories SET tag_version = tag_version + 1 WHERE id = OLD.repository_id;
END;
