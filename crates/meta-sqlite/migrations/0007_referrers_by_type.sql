-- A referrers page filtered by artifactType walks only the referrers of that type, in
-- digest order, instead of every referrer of the subject.
CREATE INDEX manifests_subject_type ON manifests(repository_id, subject, artifact_type, digest)
    WHERE subject IS NOT NULL;
