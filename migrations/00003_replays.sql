-- The admin API's audit of replays (DESIGN.md §6: every replay is recorded,
-- who, when, how many).

-- +goose Up

CREATE TABLE replays (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The replay id sent with the messages (x-replay-id, Kafka replayId).
    replay_id      uuid        NOT NULL,
    -- dead_letter, dead_letters (bulk), dlq_retry or outbox.
    kind           text        NOT NULL,
    -- Who asked: the ADMIN_TOKEN principal, and the client's address.
    principal      text        NOT NULL,
    remote_addr    text,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    -- The request's selection (ids, filters, time range) as JSON.
    filter         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    replayed_count integer     NOT NULL,
    failed_count   integer     NOT NULL DEFAULT 0,
    CONSTRAINT replays_replay_id_key UNIQUE (replay_id)
);

CREATE INDEX replays_requested_at_idx ON replays (requested_at DESC);

-- +goose Down
DROP TABLE replays;
