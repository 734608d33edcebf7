package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// A replay claims its dead letters before it publishes them (DESIGN.md
// §6): claim_id and claimed_at are set in the statement that selects them,
// so two replays of one dead letter, however concurrent, never both get
// it. The replay then marks the ones the broker confirmed (FinishReplay)
// and releases the others (Release); a claim left by a crash is released
// by ReleaseStale once it is older than the claim timeout. A claimed dead
// letter keeps status pending: it has not been replayed until the broker
// confirmed it.

// queryer is what whyNot needs: a pool or a transaction.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// whyNot explains why dead letter id was not claimed or updated: it does
// not exist, is not pending, or is claimed.
func whyNot(ctx context.Context, db queryer, id int64) error {
	var status string
	var claimed bool
	err := db.QueryRow(ctx, `SELECT status, claim_id IS NOT NULL FROM dead_letters WHERE id = $1`, id).Scan(&status, &claimed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("dead letter %d: %w", id, err)
	case status != string(StatusPending):
		return fmt.Errorf("dead letter %d is %s: %w", id, status, ErrNotPending)
	case claimed:
		return fmt.Errorf("dead letter %d: %w by another request", id, ErrClaimed)
	}
	// It changed between the two statements: report it as taken.
	return fmt.Errorf("dead letter %d: %w by another request", id, ErrClaimed)
}

// Claim claims the pending, unclaimed dead letter id for the replay
// claimID and returns it with its message. It returns an error wrapping
// ErrNotFound, ErrNotPending or ErrClaimed when it did not claim it.
func (s *Store) Claim(ctx context.Context, id int64, claimID uuid.UUID) (Item, error) {
	row := s.db.QueryRow(ctx, `UPDATE dead_letters SET claim_id = $2, claimed_at = now()
		WHERE id = $1 AND status = 'pending' AND claim_id IS NULL RETURNING `+fullColumns, id, claimID)
	it, err := scanItem(row, true)
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, whyNot(ctx, s.db, id)
	}
	if err != nil {
		return Item{}, fmt.Errorf("claim dead letter %d: %w", id, err)
	}
	return it, nil
}

// ClaimPage claims, for the replay claimID, the next pending and unclaimed
// dead letters that match f (f.Status is ignored; f.Cursor continues after
// the previous page), at most limit of them and, past the first, no more
// than maxBytes of body, key and headers in all; rows other requests hold
// locked are skipped, not waited for. It returns them with their message,
// newest last_seen_at first, and the cursor of the page that follows, ""
// when f matched no more rows.
func (s *Store) ClaimPage(ctx context.Context, f Filter, claimID uuid.UUID, limit int, maxBytes int64) ([]Item, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("%w: limit %d", ErrInvalidFilter, limit)
	}
	f.Status = StatusPending
	where, args, err := f.conditions()
	if err != nil {
		return nil, "", err
	}
	where = append(where, "claim_id IS NULL")
	args = append(args, limit, maxBytes, claimID)
	n := len(args)
	sql := fmt.Sprintf(`WITH cand AS (
	SELECT id, last_seen_at,
		octet_length(body) + coalesce(octet_length(message_key), 0) + octet_length(headers::text) AS size
	FROM dead_letters WHERE %s
	ORDER BY last_seen_at DESC, id DESC LIMIT $%d FOR UPDATE SKIP LOCKED
), picked AS (
	SELECT id AS pid FROM (
		SELECT id, size, sum(size) OVER (ORDER BY last_seen_at DESC, id DESC) AS upto FROM cand
	) c WHERE upto = size OR upto <= $%d
)
UPDATE dead_letters SET claim_id = $%d, claimed_at = now() FROM picked WHERE id = picked.pid
RETURNING `+fullColumns, strings.Join(where, " AND "), n-2, n-1, n)
	items, err := s.queryFull(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("claim dead letters: %w", err)
	}
	slices.SortFunc(items, func(a, b Item) int {
		if c := b.LastSeenAt.Compare(a.LastSeenAt); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	if len(items) == 0 {
		return nil, "", nil
	}
	last := items[len(items)-1]
	return items, makeCursor(last.LastSeenAt, last.ID), nil
}

// CountPending counts the pending, unclaimed dead letters that match f
// (f.Status and f.Cursor are ignored), up to limit: what a bulk operation
// with that filter and limit would take now.
func (s *Store) CountPending(ctx context.Context, f Filter, limit int) (int, error) {
	f.Status, f.Cursor = StatusPending, ""
	where, args, err := f.conditions()
	if err != nil {
		return 0, err
	}
	where = append(where, "claim_id IS NULL")
	args = append(args, limit)
	var n int
	err = s.db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM dead_letters WHERE %s LIMIT $%d) m`,
		strings.Join(where, " AND "), len(args)), args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// Destinations returns the distinct (source, origin) pairs of the pending
// dead letters that match f (f.Status and f.Cursor are ignored): where a
// replay of them would publish.
func (s *Store) Destinations(ctx context.Context, f Filter) ([][2]string, error) {
	f.Status, f.Cursor = StatusPending, ""
	where, args, err := f.conditions()
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT DISTINCT source, origin FROM dead_letters WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("read replay destinations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var d [2]string
		err := r.Scan(&d[0], &d[1])
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read replay destinations: %w", err)
	}
	return out, nil
}

// finishReplay marks the dead letters among ids that claimID holds
// replayed and clears the claim; the outbox rows are locked first in event
// id order (as Record locks them), and their failed flags reset.
const finishReplay = `WITH lock AS (
	SELECT o.event_id FROM outbox_events o
	WHERE o.event_id IN (SELECT messagekit_outbox_event_id(event_id) FROM dead_letters
		WHERE id = ANY($1::bigint[]) AND event_id IS NOT NULL)
	ORDER BY o.event_id FOR UPDATE OF o
), marked AS (
	UPDATE dead_letters SET status = 'replayed', replay_count = replay_count + 1, replayed_at = now(),
		claim_id = NULL, claimed_at = NULL
	WHERE id = ANY($1::bigint[]) AND claim_id = $2 AND (SELECT count(*) FROM lock) >= 0
	RETURNING id, event_id
), reset AS (
	UPDATE outbox_events SET failed = false, failed_at = NULL
	WHERE event_id IN (SELECT messagekit_outbox_event_id(event_id) FROM marked WHERE event_id IS NOT NULL)
	RETURNING 1
)
SELECT id FROM marked`

// FinishReplay marks the dead letters among ids that the replay claimID
// still holds replayed (replay_count+1, replayed_at now, claim cleared) and
// resets their outbox rows' failed flags, in one transaction, keeping
// error_message and attempt_count as history. It returns the ids it
// marked; the others (claim lost to ReleaseStale) are left out.
func (s *Store) FinishReplay(ctx context.Context, ids []int64, claimID uuid.UUID) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.ids(ctx, fmt.Sprintf("mark %d dead letters replayed", len(ids)), finishReplay, ids, claimID)
}

// Release clears the claim of claimID on ids, which stay pending (their
// publish failed or never happened). It returns the ids it released.
func (s *Store) Release(ctx context.Context, ids []int64, claimID uuid.UUID) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.ids(ctx, fmt.Sprintf("release %d dead letters", len(ids)), `UPDATE dead_letters
		SET claim_id = NULL, claimed_at = NULL WHERE id = ANY($1::bigint[]) AND claim_id = $2 RETURNING id`, ids, claimID)
}

// ReleaseStale clears every claim older than olderThan (a replay that
// crashed between claim and publish) and returns the ids it released,
// which are pending and replayable again.
func (s *Store) ReleaseStale(ctx context.Context, olderThan time.Duration) ([]int64, error) {
	return s.ids(ctx, "release stale claims", `UPDATE dead_letters SET claim_id = NULL, claimed_at = NULL
		WHERE claim_id IS NOT NULL AND claimed_at < now() - $1::interval RETURNING id`, olderThan)
}

// DiscardPage discards, for reason (cut to MaxDiscardReasonBytes), up to
// limit pending and unclaimed dead letters that match f (f.Status is
// ignored), skipping rows other requests hold locked, and returns their ids.
func (s *Store) DiscardPage(ctx context.Context, f Filter, limit int, reason string) ([]int64, error) {
	f.Status, f.Cursor = StatusPending, ""
	where, args, err := f.conditions()
	if err != nil {
		return nil, err
	}
	where = append(where, "claim_id IS NULL")
	args = append(args, limit, CleanText(reason, MaxDiscardReasonBytes))
	n := len(args)
	return s.ids(ctx, "discard dead letters", fmt.Sprintf(`UPDATE dead_letters SET status = 'discarded', discard_reason = $%d
	WHERE id IN (SELECT id FROM dead_letters WHERE %s ORDER BY last_seen_at DESC, id DESC LIMIT $%d FOR UPDATE SKIP LOCKED)
	RETURNING id`, n, strings.Join(where, " AND "), n-1), args...)
}

// ids runs sql and collects the bigint ids it returns.
func (s *Store) ids(ctx context.Context, what, sql string, args ...any) ([]int64, error) {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
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

// Group is one group of [Store.Summary].
type Group struct {
	// Key is the group's value of the grouping column; nil for NULL.
	Key                                *string
	Count                              int64
	OldestLastSeenAt, NewestLastSeenAt time.Time
}

// summaryColumns are the columns Summary groups by.
var summaryColumns = map[string]bool{"origin": true, "reason": true, "event_type": true, "source": true, "status": true}

// Summary counts the dead letters that match f (f.Cursor and f.Limit are
// ignored) by the column groupBy (origin, reason, event_type, source or
// status), largest count first. It returns an error wrapping
// ErrInvalidFilter for another column.
func (s *Store) Summary(ctx context.Context, f Filter, groupBy string) ([]Group, error) {
	if !summaryColumns[groupBy] {
		return nil, fmt.Errorf("%w: group by %q", ErrInvalidFilter, CleanText(groupBy, 64))
	}
	f.Cursor = ""
	where, args, err := f.conditions()
	if err != nil {
		return nil, err
	}
	sql := `SELECT ` + groupBy + `, count(*), min(last_seen_at), max(last_seen_at) FROM dead_letters`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` GROUP BY 1 ORDER BY 2 DESC, 1`
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("summarize dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Group, error) {
		var g Group
		err := r.Scan(&g.Key, &g.Count, &g.OldestLastSeenAt, &g.NewestLastSeenAt)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("summarize dead letters: %w", err)
	}
	return out, nil
}
