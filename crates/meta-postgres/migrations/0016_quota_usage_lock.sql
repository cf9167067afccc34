-- Pushes into a project without a limit took its quota row `FOR KEY SHARE` (migration
-- 0014). A shared row lock is granted to whoever asks while only shared holders have
-- it, even with a `FOR UPDATE` waiting, so a steady stream of overlapping pushes could
-- hold a delete or a limit change off until its statement timeout. They take an
-- advisory lock of the project's usage instead, shared, and deletes and limit changes
-- take it exclusive before they lock the quota row. Advisory locks queue: a push that
-- asks while a delete waits goes after it.
CREATE FUNCTION quota_usage_lock(project BIGINT, exclusive BOOLEAN) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The two-key form, apart from every single-key advisory lock Berth takes.
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(1366586212, hashint8(project));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(1366586212, hashint8(project));
    END IF;
END
$$;

-- As in 0014, sharing the usage lock instead of the quota row.
CREATE OR REPLACE FUNCTION quota_lock(project BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    limit_bytes BIGINT;
BEGIN
    SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project;
    IF limit_bytes >= 0 THEN
        SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project FOR UPDATE;
        RETURN coalesce(limit_bytes, -1);
    END IF;
    PERFORM quota_usage_lock(project, FALSE);
    SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project;
    IF limit_bytes >= 0 THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'the project''s quota limit changed during the push';
    END IF;
    RETURN -1;
END
$$;

-- A manifest's delete takes the usage lock before `manifests_release` (triggers of one
-- event fire in the order of their names) locks the quota row.
CREATE FUNCTION manifests_lock_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_usage_lock((SELECT project_id FROM repositories
                              WHERE id = OLD.repository_id), TRUE);
    RETURN OLD;
END
$$;
CREATE TRIGGER manifests_lock_usage BEFORE DELETE ON manifests
FOR EACH ROW EXECUTE FUNCTION manifests_lock_usage();
