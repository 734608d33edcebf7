-- As migrations/00001_schema.sql creates processed_messages.
CREATE TABLE pm_plain (
    consumer_name text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_name, event_id)
);
CREATE INDEX pm_plain_processed_at_idx ON pm_plain (processed_at);

-- Partitioned by day: PostgreSQL wants the partition key in every unique
-- constraint, so (consumer_name, event_id) is unique per partition only,
-- and a look-up probes each partition's index.
CREATE TABLE pm_parted (
    consumer_name text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_name, event_id, processed_at)
) PARTITION BY RANGE (processed_at);
DO $$
BEGIN
    FOR d IN 0..9 LOOP
        EXECUTE format('CREATE TABLE pm_parted_%s PARTITION OF pm_parted FOR VALUES FROM (%L) TO (%L)',
            d, date_trunc('day', now()) - (d - 1) * interval '1 day' - interval '1 day',
            date_trunc('day', now()) - (d - 1) * interval '1 day');
    END LOOP;
END $$;
