package deadletter

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what a Store needs of PostgreSQL; *pgxpool.Pool satisfies it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store reads and writes dead_letters (and flags outbox_events) in one
// PostgreSQL database. It is safe for concurrent use.
type Store struct {
	db DB
}

// New returns a Store on db, a database migrated with messagekit's schema.
// It returns an error when db is nil.
func New(db DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("deadletter: nil DB")
	}
	return &Store{db: db}, nil
}

// The upsert of one dead letter, in two variants that differ in identity:
// with an event id (which also flags the outbox row) and without. In both,
// $11/$12 recognise a repeated receipt: the row is then left alone and the
// statement returns no row.
//
// Parameters: $1 event_id, $2 source, $3 origin, $4 origin_detail, $5
// reason, $6 error_message, $7 event_type, $8 headers, $9 message_key, $10
// body, $11 delivery marker, $12 whether the receipt may repeat one.
const (
	upsertHead = `WITH prev AS (
	SELECT origin_detail->'deliveries' AS deliveries FROM dead_letters
	WHERE source = $2::text AND origin = $3::text AND %s
), dup AS (
	SELECT COALESCE(bool_or($12::boolean AND $11::text IS NOT NULL AND deliveries ? $11::text), false) AS is_dup FROM prev
)%s
INSERT INTO dead_letters AS d (event_id, source, origin, origin_detail, reason, error_message, event_type,
	headers, message_key, body, outbox_found)
VALUES ($1::uuid, $2, $3, $4::jsonb || jsonb_build_object('deliveries',
		CASE WHEN $11::text IS NULL THEN '[]'::jsonb ELSE jsonb_build_array($11::text) END),
	$5::text, $6::text, $7::text, $8::jsonb, $9::bytea, $10::bytea, %s)
ON CONFLICT %s DO UPDATE SET
	death_count = d.death_count + 1,
	last_seen_at = now(),
	status = CASE WHEN d.status = 'replayed' THEN 'pending' ELSE d.status END,
	reason = EXCLUDED.reason,
	error_message = EXCLUDED.error_message,
	event_type = COALESCE(EXCLUDED.event_type, d.event_type),
	headers = EXCLUDED.headers,
	message_key = EXCLUDED.message_key,
	body = EXCLUDED.body,
	origin_detail = $4::jsonb || jsonb_build_object('deliveries', jsonb_path_query_array(
		CASE WHEN $11::text IS NULL THEN '[]'::jsonb ELSE jsonb_build_array($11::text) END
			|| COALESCE(d.origin_detail->'deliveries', '[]'::jsonb), '$[0 to %d]')),
	outbox_found = d.outbox_found OR EXCLUDED.outbox_found
WHERE NOT ($12::boolean AND $11::text IS NOT NULL AND COALESCE(d.origin_detail->'deliveries' ? $11::text, false))
RETURNING id, death_count, status, xmax = 0, %s`

	flagOutbox = `, flag AS (
	UPDATE outbox_events SET failed = true, failed_at = now(), error_message = $6::text,
		attempt_count = attempt_count + 1
	WHERE event_id = messagekit_outbox_event_id($1::uuid) AND NOT (SELECT is_dup FROM dup)
	RETURNING 1
)`
)

var (
	upsertByEvent = fmt.Sprintf(upsertHead, "event_id = $1::uuid", flagOutbox,
		"EXISTS (SELECT 1 FROM flag)",
		"(source, origin, event_id) WHERE event_id IS NOT NULL", MaxDeliveries-1,
		"EXISTS (SELECT 1 FROM flag)")
	upsertByBody = fmt.Sprintf(upsertHead, "event_id IS NULL AND body_sha256 = sha256($10::bytea)", "",
		"false",
		"(source, origin, body_sha256) WHERE event_id IS NULL", MaxDeliveries-1,
		"false")
)

// prepared is a DeadLetter with its columns ready to send.
type prepared struct {
	dl       DeadLetter
	detail   []byte
	headers  []byte
	degraded bool
}

// Record stores dls in one transaction and reports for each (by index)
// what it did. See the package documentation for the identity, the outbox
// flags and repeated receipts. The dead letters whose identity and event id
// are unique in dls are written by one multi-row statement per identity
// kind; the others one by one after them, in order; all statements are
// pipelined. The outbox rows of the batch's events are locked first, in
// event id order, so that concurrent batches with events in common wait for
// each other instead of deadlocking; a deadlock that can remain (the same
// event, not in this outbox, in two batches) is broken by PostgreSQL, and
// Record returns it like any database error, to be retried.
//
// A dead letter whose content PostgreSQL rejects (a data exception,
// integrity or size limit, SQLSTATE classes 22, 23 and 54, despite the
// cleaning) is stored in reduced form instead, marked Recorded.Degraded,
// and the batch is written again. Any error Record returns is the
// database's (unreachable, failing, ctx ended) or a DeadLetter with an
// invalid Source, and means nothing of the batch may have been committed:
// do not acknowledge the messages. When the error is about the commit
// itself the batch may or may not be committed; storing it again is then
// safe as long as each DeadLetter carries its Delivery marker.
func (s *Store) Record(ctx context.Context, dls []DeadLetter) ([]Recorded, error) {
	if len(dls) == 0 {
		return nil, nil
	}
	ps := make([]prepared, len(dls))
	for i, dl := range dls {
		if !dl.Source.Valid() {
			return nil, fmt.Errorf("deadletter: record %d: invalid source %q", i, dl.Source)
		}
		ps[i] = prepare(dl)
	}
	order := lockOrder(ps)
	res, err := s.recordBulk(ctx, ps, order)
	if err == nil || !contentError(err) {
		return res, err
	}
	// PostgreSQL refused some dead letter's content: write the batch row by
	// row to find it, store it in reduced form, and go again.
	for {
		res, bad, err := s.recordOnce(ctx, ps, order)
		if err == nil {
			return res, nil
		}
		if bad < 0 || ps[bad].degraded || !contentError(err) {
			return nil, err
		}
		ps[bad] = degrade(ps[bad], err)
	}
}

// recordOnce writes ps in one transaction, one statement per dead letter.
// On failure it returns the index of the dead letter whose statement
// failed, or -1.
func (s *Store) recordOnce(ctx context.Context, ps []prepared, order []int) ([]Recorded, int, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, -1, fmt.Errorf("record dead letters: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	var b pgx.Batch
	locking := queueOutboxLock(&b, ps)
	for _, i := range order {
		queueSingle(&b, &ps[i])
	}
	br := tx.SendBatch(ctx, &b)
	if locking {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, -1, fmt.Errorf("record dead letters: lock outbox rows: %w", err)
		}
	}
	res := make([]Recorded, len(ps))
	for _, i := range order {
		if err := scanSingle(br.QueryRow(), &res[i]); err != nil {
			_ = br.Close()
			return nil, i, fmt.Errorf("record dead letter %d (%s %s): %w", i, ps[i].dl.Source, ps[i].dl.Origin, err)
		}
		res[i].Degraded = ps[i].degraded
	}
	if err := br.Close(); err != nil {
		return nil, -1, fmt.Errorf("record dead letters: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, -1, fmt.Errorf("record dead letters: commit: %w", err)
	}
	return res, -1, nil
}

// lockOutbox locks the outbox rows of a batch's events in event id order
// before anything else, so that two batches with events in common wait for
// each other instead of deadlocking over their outbox rows.
const lockOutbox = `SELECT 1 FROM outbox_events WHERE event_id = ANY(messagekit_outbox_event_ids($1::uuid[]))
	ORDER BY event_id FOR UPDATE`

// queueOutboxLock queues lockOutbox for the event ids of ps, if any, and
// reports whether it did.
func queueOutboxLock(b *pgx.Batch, ps []prepared) bool {
	var ids []uuid.UUID
	for i := range ps {
		if id := ps[i].dl.EventID; id != uuid.Nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return false
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	b.Queue(lockOutbox, slices.Compact(ids))
	return true
}

// queueSingle queues the single-row upsert of p.
func queueSingle(b *pgx.Batch, p *prepared) {
	sql := upsertByBody
	var eventID any
	if p.dl.EventID != uuid.Nil {
		sql, eventID = upsertByEvent, p.dl.EventID
	}
	b.Queue(sql, eventID, string(p.dl.Source), p.dl.Origin, p.detail, p.dl.Reason,
		nullText(p.dl.ErrorMessage), nullText(p.dl.EventType), p.headers, p.dl.Key, p.dl.Body,
		nullText(p.dl.Delivery), p.dl.MaybeRepeated)
}

// scanSingle reads the result of a single-row upsert into r.
func scanSingle(row pgx.Row, r *Recorded) error {
	var status string
	err := row.Scan(&r.ID, &r.DeathCount, &status, &r.Inserted, &r.OutboxFlagged)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		*r = Recorded{Duplicate: true}
		return nil
	case err != nil:
		return err
	}
	r.Status = Status(status)
	return nil
}

// contentError reports whether err is PostgreSQL refusing a value (data
// exception, integrity constraint, program limit such as an index row too
// large), as opposed to the database being unavailable.
func contentError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// prepare cleans dl's text and renders its JSON columns.
func prepare(dl DeadLetter) prepared {
	dl.Origin = CleanText(dl.Origin, MaxOriginBytes)
	if dl.Origin == "" {
		dl.Origin = "unknown"
	}
	dl.Reason = CleanText(dl.Reason, MaxReasonBytes)
	if dl.Reason == "" {
		dl.Reason = ReasonUnparseable
	}
	dl.ErrorMessage = CleanText(dl.ErrorMessage, MaxErrorMessageBytes)
	dl.EventType = CleanText(dl.EventType, MaxEventTypeBytes)
	dl.Delivery = CleanText(dl.Delivery, MaxDeliveryBytes)
	if dl.Body == nil {
		dl.Body = []byte{}
	}
	p := prepared{dl: dl, headers: dl.Headers}
	if len(bytes.TrimSpace(p.headers)) == 0 {
		p.headers = []byte("{}")
	}
	detail, err := json.Marshal(cleanJSON(dl.OriginDetail))
	if err != nil || detail[0] != '{' {
		detail, _ = json.Marshal(map[string]string{"detail_error": CleanText(fmt.Sprint("origin detail: ", err), MaxErrorMessageBytes)})
	}
	p.detail = detail
	return p
}

// degrade reduces p to what PostgreSQL can not refuse: cleaned short text,
// JSON of our own, the raw key and body.
func degrade(p prepared, cause error) prepared {
	msg := CleanText("stored in reduced form, PostgreSQL rejected the dead letter's content: "+cause.Error(), MaxErrorMessageBytes)
	detail, _ := json.Marshal(map[string]string{
		"store_error":     msg,
		"original_reason": CleanText(p.dl.Reason, MaxReasonBytes),
	})
	p.dl.Reason = ReasonUnparseable
	p.dl.ErrorMessage = msg
	p.dl.EventType = ""
	p.detail = detail
	p.headers = []byte("{}")
	p.degraded = true
	return p
}

// cleanJSON returns v with every string (keys included) cleaned for jsonb,
// which refuses \u0000 even where JSON allows it.
func cleanJSON(v any) any {
	switch v := v.(type) {
	case string:
		return CleanText(v, MaxErrorMessageBytes)
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = CleanText(s, MaxErrorMessageBytes)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cleanJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[CleanText(k, MaxOriginBytes)] = cleanJSON(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(v))
		for k, e := range v {
			out[CleanText(k, MaxOriginBytes)] = CleanText(e, MaxErrorMessageBytes)
		}
		return out
	case nil:
		return map[string]any{}
	}
	return v
}

// lockOrder returns the order to write ps in: by event id, then source and
// origin, so that concurrent batches lock outbox and dead-letter rows in
// the same order and rarely deadlock. Dead letters without event id come
// last; equal keys keep their order.
func lockOrder(ps []prepared) []int {
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := ps[a].dl, ps[b].dl
		if xn, yn := x.EventID == uuid.Nil, y.EventID == uuid.Nil; xn != yn {
			if xn {
				return 1
			}
			return -1
		}
		if c := bytes.Compare(x.EventID[:], y.EventID[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Source, y.Source); c != 0 {
			return c
		}
		return cmp.Compare(x.Origin, y.Origin)
	})
	return order
}

// nullText maps "" to NULL.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
