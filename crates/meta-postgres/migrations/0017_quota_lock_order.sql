-- As in 0016, except that a push which waited for the quota row and finds the limit
-- removed once it holds it is tried again: counting on without a limit, it would take
-- the usage lock after the quota row, the reverse of the order deletes and limit
-- changes take them in, and could deadlock with one of them.
CREATE OR REPLACE FUNCTION quota_lock(project BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    limit_bytes BIGINT;
BEGIN
    SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project;
    IF limit_bytes >= 0 THEN
        SELECT hard INTO limit_bytes FROM quotas WHERE project_id = project FOR UPDATE;
        IF coalesce(limit_bytes, -1) < 0 THEN
            RAISE EXCEPTION USING ERRCODE = '40001',
                MESSAGE = 'the project''s quota limit changed during the push';
        END IF;
        RETURN limit_bytes;
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
