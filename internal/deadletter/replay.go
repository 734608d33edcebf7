package deadletter

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// GetMany returns the dead letters with ids that exist, with their message
// (as Get), in no particular order. Missing ids are left out.
func (s *Store) GetMany(ctx context.Context, ids []int64) ([]Item, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.queryFull(ctx, `SELECT `+fullColumns+` FROM dead_letters WHERE id = ANY($1::bigint[])`, ids)
}

// PendingByEvent returns the pending dead letters of eventID, with their
// message, oldest id first.
func (s *Store) PendingByEvent(ctx context.Context, eventID uuid.UUID) ([]Item, error) {
	return s.queryFull(ctx, `SELECT `+fullColumns+` FROM dead_letters
		WHERE event_id = $1 AND status = 'pending' ORDER BY id`, eventID)
}

func (s *Store) queryFull(ctx context.Context, sql string, args ...any) ([]Item, error) {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		it, err := scanItem(rows, true)
		if err != nil {
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return out, nil
}

// markManyReplayed is MarkReplayed for many rows in one statement: the
// outbox rows are locked first in event id order (as Record locks them),
// then the pending dead letters are marked and their outbox rows' failed
// flags reset.
const markManyReplayed = `WITH lock AS (
	SELECT o.event_id FROM outbox_events o
	WHERE o.event_id IN (SELECT messagekit_outbox_event_id(event_id) FROM dead_letters
		WHERE id = ANY($1::bigint[]) AND event_id IS NOT NULL)
	ORDER BY o.event_id FOR UPDATE OF o
), marked AS (
	UPDATE dead_letters SET status = 'replayed', replay_count = replay_count + 1, replayed_at = now()
	WHERE id = ANY($1::bigint[]) AND status = 'pending' AND (SELECT count(*) FROM lock) >= 0
	RETURNING id, event_id
), reset AS (
	UPDATE outbox_events SET failed = false, failed_at = NULL
	WHERE event_id IN (SELECT messagekit_outbox_event_id(event_id) FROM marked WHERE event_id IS NOT NULL)
	RETURNING 1
)
SELECT id FROM marked`

// MarkManyReplayed marks the pending dead letters among ids replayed in
// one transaction, like MarkReplayed (replay_count+1, replayed_at, the
// outbox rows' failed flags reset), and returns the ids it marked; ids
// that are unknown or no longer pending are left out, without error.
func (s *Store) MarkManyReplayed(ctx context.Context, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, markManyReplayed, ids)
	if err != nil {
		return nil, fmt.Errorf("mark %d dead letters replayed: %w", len(ids), err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("mark %d dead letters replayed: %w", len(ids), err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mark %d dead letters replayed: %w", len(ids), err)
	}
	return out, nil
}
