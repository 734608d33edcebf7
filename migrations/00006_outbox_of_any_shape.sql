-- messagekit's statements on outbox_events, made to work on the table 00001
-- creates and on one that was there before (the Python messagekit's seed
-- DDL: event_id varchar(36), payload json, no id, aggregate_type, headers,
-- transaction_id or trace columns), without altering the latter (ADR 0036).
--
-- messagekit_outbox_event_id(uuid) and messagekit_outbox_event_ids(uuid[])
-- turn an event id into the type of outbox_events.event_id, so that
-- "event_id = messagekit_outbox_event_id($1::uuid)" compares in the
-- column's own type and keeps using its index. They are inlined SQL
-- functions: IMMUTABLE, one SELECT.
--
-- messagekit_processed_event_id(uuid) does the same for processed_messages,
-- which the bridge keeps its dedup keys in: the Python messagekit's has a
-- varchar event_id too, and no server-side default for processed_at.
--
-- The view messagekit_outbox shows either table with the columns the admin
-- API reads; those the table lacks are NULL. It is a simple view, so the
-- admin API's UPDATEs of failed, failed_at, error_message and attempt_count
-- go through it to the table.

-- +goose Up
-- +goose StatementBegin
DO $outbox$
DECLARE
    id_type text := (SELECT format_type(atttypid, NULL) FROM pg_attribute
        WHERE attrelid = to_regclass('outbox_events') AND attname = 'event_id' AND NOT attisdropped);
    processed_type text := (SELECT format_type(atttypid, NULL) FROM pg_attribute
        WHERE attrelid = to_regclass('processed_messages') AND attname = 'event_id' AND NOT attisdropped);
    ours boolean := EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('outbox_events')
        AND attname = 'transaction_id' AND NOT attisdropped);
BEGIN
IF id_type IS NULL OR processed_type IS NULL THEN
    RAISE EXCEPTION 'outbox_events or processed_messages has no event_id column';
END IF;
EXECUTE format('CREATE FUNCTION messagekit_processed_event_id(id uuid) RETURNS %1$s
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$ SELECT id::%1$s $f$', processed_type);
EXECUTE format('CREATE FUNCTION messagekit_outbox_event_id(id uuid) RETURNS %1$s
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$ SELECT id::%1$s $f$', id_type);
EXECUTE format('CREATE FUNCTION messagekit_outbox_event_ids(ids uuid[]) RETURNS %1$s[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$ SELECT ids::%1$s[] $f$', id_type);
IF ours THEN
    CREATE VIEW messagekit_outbox AS
        SELECT id, event_id, event_type, aggregate_type, aggregate_id, payload, occurred_at, created_at,
            published, published_at, failed, failed_at, attempt_count, error_message, traceparent, tracestate
        FROM outbox_events;
ELSE
    CREATE VIEW messagekit_outbox AS
        SELECT NULL::bigint AS id, event_id, event_type, NULL::text AS aggregate_type, aggregate_id, payload,
            occurred_at, created_at, published, published_at, failed, failed_at, attempt_count, error_message,
            NULL::text AS traceparent, NULL::text AS tracestate
        FROM outbox_events;
END IF;
END
$outbox$;
-- +goose StatementEnd

-- +goose Down
DROP VIEW messagekit_outbox;
DROP FUNCTION messagekit_outbox_event_ids(uuid[]);
DROP FUNCTION messagekit_outbox_event_id(uuid);
DROP FUNCTION messagekit_processed_event_id(uuid);
