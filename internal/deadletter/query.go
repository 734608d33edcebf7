package deadletter

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// List limits (DESIGN.md §7).
const (
	// DefaultLimit is Filter.Limit's default.
	DefaultLimit = 100
	// MaxLimit is the largest Filter.Limit.
	MaxLimit = 1000
	// MaxDiscardReasonBytes bounds MarkDiscarded's reason; longer ones are cut.
	MaxDiscardReasonBytes = 4096
)

// Filter selects dead letters for List. Zero fields do not filter.
type Filter struct {
	Status    Status
	Source    Source
	EventType string
	// Origin is the queue (RabbitMQ) or original topic (Kafka): the admin
	// API's "queue" parameter.
	Origin string
	// Since and Until bound last_seen_at, both inclusive.
	Since, Until time.Time
	// EventID selects one event's dead letters; uuid.Nil does not filter.
	EventID uuid.UUID
	// Limit is the page size, 1 to MaxLimit; zero means DefaultLimit.
	Limit int
	// Cursor is Page.NextCursor of the previous page; "" for the first.
	Cursor string
}

// Page is one page of List.
type Page struct {
	// Items are newest last_seen_at first (ties: highest id first). They
	// carry no OriginDetail, Headers, Key or Body: Get has those.
	Items []Item
	// NextCursor fetches the next page; "" when this is the last one.
	NextCursor string
}

const itemColumns = `id, event_id, source, origin, reason, error_message, event_type, death_count,
	first_seen_at, last_seen_at, status, replay_count, replayed_at, discard_reason, outbox_found, claimed_at`

const fullColumns = itemColumns + `, origin_detail, headers, message_key, body`

// Get returns the dead letter with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id int64) (Item, error) {
	row := s.db.QueryRow(ctx, `SELECT `+fullColumns+` FROM dead_letters WHERE id = $1`, id)
	it, err := scanItem(row, true)
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, fmt.Errorf("get dead letter %d: %w", id, err)
	}
	return it, nil
}

// List returns one page of the dead letters that match f, newest
// last_seen_at first, with keyset pagination: a row whose last_seen_at
// changes between two pages may be skipped or listed twice. It returns an
// error wrapping ErrInvalidFilter for a Limit out of range, an invalid
// Status or Source, or a Cursor List did not issue.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, fmt.Errorf("%w: limit %d, want 1 to %d", ErrInvalidFilter, f.Limit, MaxLimit)
	}
	where, args, err := f.conditions()
	if err != nil {
		return Page{}, err
	}
	sql := `SELECT ` + itemColumns + ` FROM dead_letters`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	sql += fmt.Sprintf(` ORDER BY last_seen_at DESC, id DESC LIMIT $%d`, len(args))

	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var page Page
	for rows.Next() {
		it, err := scanItem(rows, false)
		if err != nil {
			return Page{}, fmt.Errorf("list dead letters: %w", err)
		}
		page.Items = append(page.Items, it)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("list dead letters: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = makeCursor(last.LastSeenAt, last.ID)
	}
	return page, nil
}

// conditions returns f as SQL conditions on dead_letters with their
// arguments ($1 onwards). Text that PostgreSQL would refuse (NUL, invalid
// UTF-8) is an ErrInvalidFilter, not a database error.
func (f Filter) conditions() ([]string, []any, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	switch f.Status {
	case "":
	case StatusPending, StatusReplayed, StatusDiscarded:
		add("status = $%d", string(f.Status))
	default:
		return nil, nil, fmt.Errorf("%w: status %q", ErrInvalidFilter, CleanText(string(f.Status), 64))
	}
	if f.Source != "" {
		if !f.Source.Valid() {
			return nil, nil, fmt.Errorf("%w: source %q", ErrInvalidFilter, CleanText(string(f.Source), 64))
		}
		add("source = $%d", string(f.Source))
	}
	for _, t := range []struct{ name, v, col string }{{"event_type", f.EventType, "event_type"}, {"queue", f.Origin, "origin"}} {
		if t.v == "" {
			continue
		}
		if !ValidText(t.v) {
			return nil, nil, fmt.Errorf("%w: %s holds a NUL byte or invalid UTF-8", ErrInvalidFilter, t.name)
		}
		add(t.col+" = $%d", t.v)
	}
	if f.EventID != uuid.Nil {
		add("event_id = $%d", f.EventID)
	}
	if !f.Since.IsZero() {
		add("last_seen_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("last_seen_at <= $%d", f.Until)
	}
	if f.Cursor != "" {
		at, id, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(last_seen_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	return where, args, nil
}

// ValidText reports whether s can be a PostgreSQL text value: valid UTF-8
// without NUL bytes.
func ValidText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// MarkReplayed records that the pending dead letter id was replayed:
// status replayed, replay_count+1, replayed_at now; and, in the same
// transaction, resets the failed flags (failed, failed_at) of its event's
// outbox row, keeping error_message and attempt_count as history (DESIGN.md
// §6). It returns the updated dead letter, or an error wrapping ErrNotFound
// or ErrNotPending.
func (s *Store) MarkReplayed(ctx context.Context, id int64) (Item, error) {
	return s.mark(ctx, id, `UPDATE dead_letters SET status = 'replayed', replay_count = replay_count + 1,
		replayed_at = now() WHERE id = $1 AND status = 'pending' AND claim_id IS NULL RETURNING `+fullColumns, nil, true)
}

// MarkDiscarded records that an operator gave up on the pending dead letter
// id, for reason (cut to MaxDiscardReasonBytes). It returns the updated dead
// letter, or an error wrapping ErrNotFound or ErrNotPending.
func (s *Store) MarkDiscarded(ctx context.Context, id int64, reason string) (Item, error) {
	return s.mark(ctx, id, `UPDATE dead_letters SET status = 'discarded', discard_reason = $2
		WHERE id = $1 AND status = 'pending' AND claim_id IS NULL RETURNING `+fullColumns,
		[]any{CleanText(reason, MaxDiscardReasonBytes)}, false)
}

func (s *Store) mark(ctx context.Context, id int64, sql string, extra []any, resetOutbox bool) (Item, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Item{}, fmt.Errorf("update dead letter %d: begin: %w", id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if resetOutbox {
		// Outbox row first, as Record locks them, so the two can not deadlock.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM outbox_events
			WHERE event_id = messagekit_outbox_event_id((SELECT event_id FROM dead_letters WHERE id = $1)) FOR UPDATE`, id); err != nil {
			return Item{}, fmt.Errorf("update dead letter %d: lock outbox row: %w", id, err)
		}
	}
	it, err := scanItem(tx.QueryRow(ctx, sql, append([]any{id}, extra...)...), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, whyNot(ctx, tx, id)
	}
	if err != nil {
		return Item{}, fmt.Errorf("update dead letter %d: %w", id, err)
	}
	if resetOutbox && it.EventID != uuid.Nil {
		if _, err := tx.Exec(ctx, `UPDATE outbox_events SET failed = false, failed_at = NULL
			WHERE event_id = messagekit_outbox_event_id($1::uuid)`,
			it.EventID); err != nil {
			return Item{}, fmt.Errorf("update dead letter %d: reset outbox row: %w", id, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Item{}, fmt.Errorf("update dead letter %d: commit: %w", id, err)
	}
	return it, nil
}

func scanItem(row pgx.Row, full bool) (Item, error) {
	var (
		it                         Item
		eventID                    pgtype.UUID
		source, status             string
		errMsg, eventType, discard pgtype.Text
		replayedAt, claimedAt      pgtype.Timestamptz
		detail, headers            []byte
	)
	scanned := []any{&it.ID, &eventID, &source, &it.Origin, &it.Reason, &errMsg, &eventType, &it.DeathCount,
		&it.FirstSeenAt, &it.LastSeenAt, &status, &it.ReplayCount, &replayedAt, &discard, &it.OutboxFound, &claimedAt}
	if full {
		scanned = append(scanned, &detail, &headers, &it.Key, &it.Body)
	}
	if err := row.Scan(scanned...); err != nil {
		return Item{}, err
	}
	if eventID.Valid {
		it.EventID = eventID.Bytes
	}
	it.Source, it.Status = Source(source), Status(status)
	it.ErrorMessage, it.EventType, it.DiscardReason = errMsg.String, eventType.String, discard.String
	if replayedAt.Valid {
		it.ReplayedAt = replayedAt.Time
	}
	if claimedAt.Valid {
		it.ClaimedAt = claimedAt.Time
	}
	if full {
		it.OriginDetail, it.Headers = detail, headers
		if it.Body == nil {
			it.Body = []byte{}
		}
	}
	return it, nil
}

const cursorVersion = "v1"

func makeCursor(at time.Time, id int64) string {
	s := cursorVersion + ":" + strconv.FormatInt(at.UnixMicro(), 10) + ":" + strconv.FormatInt(id, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseCursor(c string) (time.Time, int64, error) {
	bad := fmt.Errorf("%w: cursor %q", ErrInvalidFilter, CleanText(c, 64))
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, 0, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != cursorVersion {
		return time.Time{}, 0, bad
	}
	micros, err1 := strconv.ParseInt(parts[1], 10, 64)
	id, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, bad
	}
	return time.UnixMicro(micros).UTC(), id, nil
}
