-- The admin API's audit of every mutating call (DESIGN.md §6), replacing the
-- replays table of 00003; and the claim a replay takes on a dead letter
-- before it publishes it, so two replays of one dead letter publish it once.

-- +goose Up

CREATE TABLE admin_actions (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    -- What was done, e.g. dead_letter.replay, dead_letters.discard,
    -- dlq.retry, outbox.replay, claims.release.
    action        text        NOT NULL,
    -- Who: the ADMIN_TOKENS name of the bearer token (admin for
    -- ADMIN_TOKEN), or system for the API's own actions.
    principal     text        NOT NULL,
    remote_addr   text,
    -- The request's X-Request-Id (or the one the API made up).
    request_id    text,
    -- The ids or the filter the call named.
    target        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dry_run       boolean     NOT NULL DEFAULT false,
    matched_count integer     NOT NULL DEFAULT 0,
    done_count    integer     NOT NULL DEFAULT 0,
    failed_count  integer     NOT NULL DEFAULT 0,
    -- The id sent with replayed messages (x-replay-id, Kafka replayId).
    replay_id     uuid,
    -- Why the call failed, or its first failure; NULL when all went well.
    error         text
);

-- Listing by time and pruning (RETENTION_AUDIT).
CREATE INDEX admin_actions_at_idx ON admin_actions (at);

INSERT INTO admin_actions (at, action, principal, remote_addr, target, matched_count, done_count,
        failed_count, replay_id)
SELECT requested_at,
       CASE kind WHEN 'dead_letter' THEN 'dead_letter.replay'
                 WHEN 'dead_letters' THEN 'dead_letters.replay'
                 WHEN 'dlq_retry' THEN 'dlq.retry'
                 WHEN 'outbox' THEN 'outbox.replay'
                 ELSE kind END,
       principal, remote_addr, filter, replayed_count + failed_count, replayed_count, failed_count, replay_id
FROM replays ORDER BY id;

DROP TABLE replays;

-- A replay's claim: set in the statement that selects the dead letter,
-- cleared when it is marked replayed or released. status stays pending
-- meanwhile (the dead letter is not replayed until the broker confirmed).
ALTER TABLE dead_letters
    ADD COLUMN claim_id   uuid,
    ADD COLUMN claimed_at timestamptz;

-- Finding claims older than the claim timeout (a crash between claim and
-- publish) without reading the table.
CREATE INDEX dead_letters_claimed_at_idx ON dead_letters (claimed_at) WHERE claim_id IS NOT NULL;

-- +goose Down
DROP INDEX dead_letters_claimed_at_idx;
ALTER TABLE dead_letters
    DROP COLUMN claimed_at,
    DROP COLUMN claim_id;

CREATE TABLE replays (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    replay_id      uuid        NOT NULL,
    kind           text        NOT NULL,
    principal      text        NOT NULL,
    remote_addr    text,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    filter         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    replayed_count integer     NOT NULL,
    failed_count   integer     NOT NULL DEFAULT 0,
    CONSTRAINT replays_replay_id_key UNIQUE (replay_id)
);
CREATE INDEX replays_requested_at_idx ON replays (requested_at DESC);

INSERT INTO replays (replay_id, kind, principal, remote_addr, requested_at, filter, replayed_count, failed_count)
SELECT DISTINCT ON (replay_id) replay_id,
       CASE action WHEN 'dead_letter.replay' THEN 'dead_letter'
                   WHEN 'dead_letters.replay' THEN 'dead_letters'
                   WHEN 'dlq.retry' THEN 'dlq_retry'
                   WHEN 'outbox.replay' THEN 'outbox'
                   ELSE action END,
       principal, remote_addr, at, target, done_count, failed_count
FROM admin_actions WHERE replay_id IS NOT NULL AND NOT dry_run ORDER BY replay_id, id;

DROP TABLE admin_actions;
