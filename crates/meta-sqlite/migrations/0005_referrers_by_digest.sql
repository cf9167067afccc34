-- Referrers are listed in pages ordered by digest, each starting after the previous
-- page's last digest; the index serves that order so a page reads only its own rows.
DROP INDEX manifests_subject;
CREATE INDEX manifests_subject ON manifests(repository_id, subject, digest)
    WHERE subject IS NOT NULL;
