-- messagekit schema: the transactional outbox, the consumers' dedup store and
-- the dead-letter store. Column names are a contract (DESIGN.md §4).

-- +goose Up

-- Events written by producer services in their business transaction and
-- published to Kafka by Debezium or outbox.Relay. A database that already
-- has an outbox_events table (the Python messagekit's seed DDL: event_id
-- varchar(36), no id, aggregate_type, headers or transaction_id) keeps it
-- as it is: migrate never alters a table it did not create (DESIGN.md §3,
-- ADR 0036), and 00006 adapts messagekit's statements to it.
-- +goose StatementBegin
DO $outbox$
BEGIN
IF to_regclass('outbox_events') IS NOT NULL THEN
    RETURN;
END IF;
CREATE TABLE outbox_events (
    -- Write order inside one transaction; with transaction_id it gives the
    -- Relay's publish order.
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    aggregate_type text,
    aggregate_id   text        NOT NULL,
    -- The whole envelope (DESIGN.md §3), as Kafka carries it.
    payload        jsonb       NOT NULL,
    -- Trace context of the writer (traceparent, tracestate).
    headers        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction. The Relay reads only rows whose transaction is
    -- older than every running one (pg_snapshot_xmin), so a transaction that
    -- commits late can not let a later event overtake an earlier one.
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    published      boolean     NOT NULL DEFAULT false,
    published_at   timestamptz,
    failed         boolean     NOT NULL DEFAULT false,
    failed_at      timestamptz,
    attempt_count  integer     NOT NULL DEFAULT 0,
    error_message  text,
    CONSTRAINT outbox_events_event_id_key UNIQUE (event_id),
    CONSTRAINT outbox_events_attempt_count_check CHECK (attempt_count >= 0)
);

-- The Relay's scan: pending rows in publish order.
CREATE INDEX outbox_events_pending_idx ON outbox_events (transaction_id, id) WHERE NOT published;
-- Failed rows by time (admin GET /dlq, outbox stats).
CREATE INDEX outbox_events_failed_idx ON outbox_events (failed_at, id) WHERE failed;
-- Replay by time range and pruning by age.
CREATE INDEX outbox_events_created_at_idx ON outbox_events (created_at, id);
END
$outbox$;
-- +goose StatementEnd

-- Consumers' dedup store (pkg/dedup): one row per handled event and consumer.
-- Kept as it is when the database already has one (the Python messagekit's
-- has event_id varchar(36)); pkg/dedup needs this uuid one, in a consumer's
-- own database.
-- +goose StatementBegin
DO $processed$
BEGIN
IF to_regclass('processed_messages') IS NOT NULL THEN
    RETURN;
END IF;
CREATE TABLE processed_messages (
    consumer_name text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_name, event_id)
);

-- Retention pruning.
CREATE INDEX processed_messages_processed_at_idx ON processed_messages (processed_at);
END
$processed$;
-- +goose StatementEnd

-- Every dead letter seen by the bookkeeper, from Kafka DLQ topics and RabbitMQ
-- dead-letter queues.
CREATE TABLE dead_letters (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid,
    source         text        NOT NULL,
    origin         text        NOT NULL,
    origin_detail  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    reason         text        NOT NULL,
    error_message  text,
    -- Not in the contract's list: the event type (Kafka header eventType, AMQP
    -- property type, else the body), kept so the admin API can filter on it
    -- through an index instead of parsing bodies.
    event_type     text,
    death_count    integer     NOT NULL DEFAULT 1,
    headers        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    message_key    bytea,
    body           bytea       NOT NULL,
    -- Identity of a dead letter without an event id.
    body_sha256    bytea       NOT NULL GENERATED ALWAYS AS (sha256(body)) STORED,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    status         text        NOT NULL DEFAULT 'pending',
    replay_count   integer     NOT NULL DEFAULT 0,
    replayed_at    timestamptz,
    discard_reason text,
    outbox_found   boolean     NOT NULL DEFAULT false,
    CONSTRAINT dead_letters_source_check CHECK (source IN ('kafka', 'rabbitmq')),
    CONSTRAINT dead_letters_status_check CHECK (status IN ('pending', 'replayed', 'discarded')),
    CONSTRAINT dead_letters_death_count_check CHECK (death_count >= 1),
    CONSTRAINT dead_letters_replay_count_check CHECK (replay_count >= 0)
);

-- A dead letter's identity (DESIGN.md §4): a second arrival updates its row.
CREATE UNIQUE INDEX dead_letters_identity_event_key ON dead_letters (source, origin, event_id)
    WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX dead_letters_identity_body_key ON dead_letters (source, origin, body_sha256)
    WHERE event_id IS NULL;

-- Listing: newest last_seen_at first, keyset cursor (last_seen_at, id), with
-- one index per filter the admin API offers.
CREATE INDEX dead_letters_last_seen_idx ON dead_letters (last_seen_at DESC, id DESC);
CREATE INDEX dead_letters_status_idx ON dead_letters (status, last_seen_at DESC, id DESC);
CREATE INDEX dead_letters_source_idx ON dead_letters (source, last_seen_at DESC, id DESC);
CREATE INDEX dead_letters_origin_idx ON dead_letters (origin, last_seen_at DESC, id DESC);
CREATE INDEX dead_letters_event_type_idx ON dead_letters (event_type, last_seen_at DESC, id DESC);
-- An event's dead letters (admin POST /dlq/{event_id}/retry).
CREATE INDEX dead_letters_event_id_idx ON dead_letters (event_id) WHERE event_id IS NOT NULL;

-- +goose Down
DROP TABLE dead_letters;
-- Only the tables 00001 created: the seed's outbox has no transaction_id,
-- and its processed_messages a varchar event_id.
-- +goose StatementBegin
DO $processed$
BEGIN
IF (SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = to_regclass('processed_messages')
        AND attname = 'event_id' AND NOT attisdropped) = 'uuid' THEN
    DROP TABLE processed_messages;
END IF;
END
$processed$;
-- +goose StatementEnd
-- +goose StatementBegin
DO $outbox$
BEGIN
IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('outbox_events')
        AND attname = 'transaction_id' AND NOT attisdropped) THEN
    DROP TABLE outbox_events;
END IF;
END
$outbox$;
-- +goose StatementEnd
