package adminapi

// Every query of the admin API on the producer's outbox table is in this
// file: GET /dlq, POST /dlq/{event_id}/retry, GET and POST /replay. (The
// health and stats figures come from pkg/outbox.ReadStats.) Keep them here,
// so that a change of the outbox's shape (the Python messagekit's seed
// table, DESIGN.md §3) touches one file.

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// listFailedSQL reads the failed rows newest first through
// outbox_events_failed_idx; ($1 = ” OR ...) keeps one parameterised plan.
// messagekit_outbox (migration 00006) is outbox_events with the columns a
// pre-existing outbox such as the Python messagekit's lacks (id) as NULL.
const listFailedSQL = `SELECT event_id, event_type, failed_at, error_message
	FROM messagekit_outbox
	WHERE failed AND ($1 = '' OR event_type = $1)
	ORDER BY failed_at DESC, id DESC, event_id DESC
	LIMIT $2 OFFSET $3`

func (h *Handler) readFailed(ctx context.Context, eventType string, limit, offset int64) ([]failedEvent, error) {
	rows, err := h.db.Query(ctx, listFailedSQL, eventType, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list failed outbox events: %w", err)
	}
	defer rows.Close()
	events := make([]failedEvent, 0)
	for rows.Next() {
		var e failedEvent
		if err := rows.Scan(&e.ID, &e.EventType, &e.FailedAt, &e.ErrorMessage); err != nil {
			return nil, fmt.Errorf("list failed outbox events: %w", err)
		}
		if e.FailedAt != nil {
			*e.FailedAt = e.FailedAt.UTC()
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list failed outbox events: %w", err)
	}
	return events, nil
}

// errNoOutboxEvent is an event id the outbox does not hold.
var errNoOutboxEvent = errors.New("no such outbox event")

// readFailedFlag reports whether the outbox event is failed, or returns
// errNoOutboxEvent.
func (h *Handler) readFailedFlag(ctx context.Context, eventID uuid.UUID) (bool, error) {
	var failed bool
	err := h.db.QueryRow(ctx, `SELECT failed FROM outbox_events WHERE event_id = messagekit_outbox_event_id($1::uuid)`, eventID).Scan(&failed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, errNoOutboxEvent
	case err != nil:
		return false, fmt.Errorf("read outbox event %s: %w", eventID, err)
	}
	return failed, nil
}

// resetFailedSQL is the seed's retry: the outbox row is no longer failed
// and the attempt is counted.
const resetFailedSQL = `UPDATE outbox_events SET failed = false, failed_at = NULL, error_message = NULL,
		attempt_count = attempt_count + 1
	WHERE event_id = messagekit_outbox_event_id($1::uuid) RETURNING 1`

// resetFailed clears the outbox event's failed flags.
func (h *Handler) resetFailed(ctx context.Context, eventID uuid.UUID) error {
	var one int
	if err := h.db.QueryRow(ctx, resetFailedSQL, eventID).Scan(&one); err != nil {
		return fmt.Errorf("reset outbox event %s: %w", eventID, err)
	}
	return nil
}

// rangeSQL reads a created_at range oldest first through
// outbox_events_created_at_idx. On a pre-existing outbox (the Python
// messagekit's), messagekit_outbox has NULL id, aggregate_type and trace
// columns, and rows of one created_at go in event id order.
const rangeSQL = `SELECT event_id, event_type, aggregate_id, aggregate_type, created_at, occurred_at,
		published, failed, payload, traceparent, tracestate
	FROM messagekit_outbox
	WHERE created_at >= $1 AND created_at <= $2 AND ($3 = '' OR event_type = $3)
	ORDER BY created_at, id, event_id
	LIMIT $4`

// eachInRange calls fn with each event of q, oldest first, one at a time:
// the range is streamed, never held whole. fn's error stops it and is
// returned.
func (h *Handler) eachInRange(ctx context.Context, q outboxRange, fn func(*outboxEvent) error) error {
	rows, err := h.db.Query(ctx, rangeSQL, q.From, q.To, q.EventType, q.Limit)
	if err != nil {
		return fmt.Errorf("read outbox range: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.EventID, &e.EventType, &e.AggregateID, &e.AggregateType, &e.CreatedAt, &e.OccurredAt,
			&e.Published, &e.Failed, &e.Payload, &e.traceparent, &e.tracestate); err != nil {
			return fmt.Errorf("read outbox range: %w", err)
		}
		e.CreatedAt, e.OccurredAt = e.CreatedAt.UTC(), e.OccurredAt.UTC()
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read outbox range: %w", err)
	}
	return nil
}

// outboxEventSize is what an event of the range weighs in a replay page.
func outboxEventSize(e *outboxEvent) int {
	return len(e.Payload) + len(e.AggregateID) + len(e.EventType) + 128
}
