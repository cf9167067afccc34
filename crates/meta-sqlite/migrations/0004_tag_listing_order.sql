-- tags/list is in case-insensitive order, ties by bytes (`berth_oci::tag_listing_order`);
-- this index serves that order and `last` paging without sorting the repository's tags.
CREATE INDEX tags_listing ON tags(repository_id, name COLLATE NOCASE, name);
