-- The bridge's dedup look-up (internal/bridge/store.go): 250 keys that
-- exist (md5 of a loaded row number) and 250 that do not.
SELECT count(*) FROM unnest(ARRAY(
    SELECT md5((1 + floor(random() * greatest(NROWS, 1)))::bigint::text)::uuid FROM generate_series(1, 250)
    UNION ALL SELECT gen_random_uuid() FROM generate_series(1, 250))) AS k,
LATERAL (SELECT 1 FROM TABLE WHERE consumer_name = 'bridge' AND event_id = k LIMIT 1) p;
