\timing on
-- Batched DELETE of everything older than 7 days, 1000 rows a statement.
CREATE PROCEDURE prune_plain() LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    LOOP
        DELETE FROM pm_plain p USING (
            SELECT consumer_name, event_id FROM pm_plain
            WHERE processed_at < now() - interval '7 days' LIMIT 1000 FOR UPDATE SKIP LOCKED) old
        WHERE p.consumer_name = old.consumer_name AND p.event_id = old.event_id;
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        EXIT WHEN n < 1000;
    END LOOP;
END $$;
SELECT 'expired rows', count(*) FROM pm_plain WHERE processed_at < now() - interval '7 days';
CALL prune_plain();
SELECT 'size after DELETE', pg_size_pretty(pg_total_relation_size('pm_plain'));
VACUUM pm_plain;
SELECT 'size after VACUUM', pg_size_pretty(pg_total_relation_size('pm_plain'));
-- The partitioned way: detach and drop the partitions older than 7 days.
SELECT 'partitions to drop', count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'pm_parted'::regclass AND c.relname IN ('pm_parted_8', 'pm_parted_9');
DROP TABLE pm_parted_8, pm_parted_9;
