-- What pkg/outbox needs beyond 00001: a wake-up for the Relay, and the
-- writer's trace context as plain columns so that Debezium's outbox router can
-- put it in Kafka headers (deployments/debezium/).

-- +goose Up

-- Every INSERT into the outbox notifies channel messagekit_outbox. NOTIFY is
-- delivered at commit (and not at all on rollback), one notification per
-- transaction however many rows it wrote, so outbox.Relay wakes exactly when
-- new rows become visible; it still polls as a fallback. PostgreSQL
-- serialises the commits of notifying transactions, so deployments with many
-- concurrent writers, and Debezium deployments (which need no wake-up), may
-- ALTER TABLE outbox_events DISABLE TRIGGER outbox_events_notify and let the
-- Relay poll (RelayConfig.PollInterval).
-- +goose StatementBegin
CREATE FUNCTION messagekit_outbox_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('messagekit_outbox', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Only on the outbox table 00001 created (it has transaction_id): a
-- pre-existing one, such as the Python messagekit's, is never altered.
-- +goose StatementBegin
DO $outbox$
BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('outbox_events')
        AND attname = 'transaction_id' AND NOT attisdropped) THEN
    RETURN;
END IF;
CREATE TRIGGER outbox_events_notify
    AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION messagekit_outbox_notify();

-- The writer's W3C trace context, also kept in headers (the contract column).
-- Debezium's router can place a column in a Kafka header but can not spread a
-- jsonb object over several headers, and PostgreSQL 15's logical replication
-- does not publish generated columns: so outbox.Writer fills these plain
-- columns itself. NULL when the writer's context had no span.
ALTER TABLE outbox_events
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate  text;
END
$outbox$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $outbox$
BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('outbox_events')
        AND attname = 'transaction_id' AND NOT attisdropped) THEN
    RETURN;
END IF;
ALTER TABLE outbox_events
    DROP COLUMN tracestate,
    DROP COLUMN traceparent;
DROP TRIGGER outbox_events_notify ON outbox_events;
END
$outbox$;
-- +goose StatementEnd
DROP FUNCTION messagekit_outbox_notify();
