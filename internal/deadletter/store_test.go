package deadletter_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func newStore(t *testing.T) (*deadletter.Store, *testenv.Database) {
	t.Helper()
	return newStoreB(t)
}

func newStoreB(t testing.TB) (*deadletter.Store, *testenv.Database) {
	t.Helper()
	db := testenv.MigratedPostgres(t)
	s, err := deadletter.New(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// addOutbox inserts an outbox row for id and returns id.
func addOutbox(t *testing.T, db *testenv.Database, id uuid.UUID) uuid.UUID {
	t.Helper()
	_, err := db.Pool.Exec(ctx(t), `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
		VALUES ($1, 'orders.order.created', 'order-1', '{}', now())`, id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type outboxRow struct {
	failed   bool
	failedAt *time.Time
	message  *string
	attempts int
}

func outbox(t *testing.T, db *testenv.Database, id uuid.UUID) outboxRow {
	t.Helper()
	var r outboxRow
	err := db.Pool.QueryRow(ctx(t), `SELECT failed, failed_at, error_message, attempt_count FROM outbox_events WHERE event_id = $1`, id).
		Scan(&r.failed, &r.failedAt, &r.message, &r.attempts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func count(t *testing.T, db *testenv.Database) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(ctx(t), `SELECT count(*) FROM dead_letters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func record(t *testing.T, s *deadletter.Store, dls ...deadletter.DeadLetter) []deadletter.Recorded {
	t.Helper()
	res, err := s.Record(ctx(t), dls)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(dls) {
		t.Fatalf("Record returned %d results for %d dead letters", len(res), len(dls))
	}
	return res
}

func rabbit(id uuid.UUID, body string) deadletter.DeadLetter {
	return deadletter.DeadLetter{
		EventID: id, Source: deadletter.SourceRabbitMQ, Origin: "orders.q", Reason: "rejected",
		ErrorMessage: "rejected by queue orders.q", EventType: "orders.order.created",
		OriginDetail: map[string]any{"count": 1, "routing_keys": []string{"orders.order.created"}},
		Headers:      json.RawMessage(`{"headers":{},"properties":{"message_id":"x"}}`),
		Body:         []byte(body),
	}
}

// TestRecordIdentity pins DESIGN.md §4's identity: a second arrival of the
// same dead letter from the same origin updates its row (death_count,
// last_seen_at, latest reason) instead of adding one, by event id or, when
// there is none, by body; another origin or source is another dead letter.
func TestRecordIdentity(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	id := uuid.New()
	first := record(t, s, rabbit(id, `{"a":1}`))[0]
	if !first.Inserted || first.DeathCount != 1 || first.Status != deadletter.StatusPending || first.ID == 0 {
		t.Fatalf("first arrival = %+v", first)
	}
	again := rabbit(id, `{"a":2}`)
	again.Reason, again.ErrorMessage = "expired", "expired in queue orders.q"
	second := record(t, s, again)[0]
	if second.Inserted || second.ID != first.ID || second.DeathCount != 2 {
		t.Fatalf("second arrival = %+v, want the same row with death_count 2", second)
	}
	it, err := s.Get(ctx(t), first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Reason != "expired" || string(it.Body) != `{"a":2}` || !it.LastSeenAt.After(it.FirstSeenAt) {
		t.Fatalf("row after second arrival = %+v, want the latest reason and body and a later last_seen_at", it)
	}

	otherOrigin := rabbit(id, `{"a":1}`)
	otherOrigin.Origin = "billing.q"
	kafka := rabbit(id, `{"a":1}`)
	kafka.Source = deadletter.SourceKafka
	raw1 := deadletter.DeadLetter{Source: deadletter.SourceKafka, Origin: "events", Reason: "DECODE", Body: []byte("\x00garbage")}
	raw2 := raw1
	raw2.Body = []byte("other garbage")
	res := record(t, s, otherOrigin, kafka, raw1, raw2, raw1)
	for i, want := range []bool{true, true, true, true, false} {
		if res[i].Inserted != want {
			t.Errorf("result %d inserted = %v, want %v (%+v)", i, res[i].Inserted, want, res[i])
		}
	}
	if res[4].ID != res[2].ID || res[4].DeathCount != 2 {
		t.Errorf("same body without event id: %+v then %+v, want one row with death_count 2", res[2], res[4])
	}
	if n := count(t, db); n != 5 {
		t.Fatalf("%d rows, want 5", n)
	}
}

// TestRecordOutbox pins the outbox sync: the event's outbox row is marked
// failed with the dead letter's error message and one more attempt, in the
// same statement; an event that is not in this outbox is stored anyway
// with outbox_found false.
func TestRecordOutbox(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	known := addOutbox(t, db, uuid.New())
	unknown := uuid.New()
	res := record(t, s, rabbit(known, "{}"), rabbit(unknown, "{}"))
	if !res[0].OutboxFlagged || res[1].OutboxFlagged {
		t.Fatalf("results %+v, want only the first flagged", res)
	}
	row := outbox(t, db, known)
	if !row.failed || row.failedAt == nil || row.message == nil || *row.message != "rejected by queue orders.q" || row.attempts != 1 {
		t.Fatalf("outbox row = %+v", row)
	}
	var found []bool
	rows, err := db.Pool.Query(ctx(t), `SELECT outbox_found FROM dead_letters ORDER BY event_id = $1 DESC`, known)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f bool
		if err := rows.Scan(&f); err != nil {
			t.Fatal(err)
		}
		found = append(found, f)
	}
	if len(found) != 2 || !found[0] || found[1] {
		t.Fatalf("outbox_found = %v, want [true false]", found)
	}
	record(t, s, rabbit(known, "{}"))
	if row := outbox(t, db, known); row.attempts != 2 {
		t.Fatalf("attempt_count after a second dead letter = %d, want 2", row.attempts)
	}
	// One event dead-lettered from two queues in one batch: two dead
	// letters, both flagging the row.
	other := rabbit(known, "{}")
	other.Origin = "billing.q"
	both := record(t, s, other, rabbit(known, "{}"))
	if !both[0].OutboxFlagged || !both[1].OutboxFlagged || !both[0].Inserted || both[1].DeathCount != 3 {
		t.Fatalf("results %+v", both)
	}
	if row := outbox(t, db, known); row.attempts != 4 {
		t.Fatalf("attempt_count = %d, want 4", row.attempts)
	}
}

// TestRecordRepeatedDelivery pins the crash-after-commit case: a receipt
// that may repeat one already recorded (Kafka record, AMQP redelivery) and
// carries a remembered delivery marker changes nothing, neither the row nor
// the outbox; a marker seen before but on a first delivery counts, and
// only the last MaxDeliveries markers are remembered.
func TestRecordRepeatedDelivery(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	id := addOutbox(t, db, uuid.New())
	dl := rabbit(id, "{}")
	dl.Delivery, dl.MaybeRepeated = "amqp:dlq:aaaa", true
	first := record(t, s, dl)[0]
	repeat := record(t, s, dl)[0]
	if !repeat.Duplicate || repeat.ID != 0 {
		t.Fatalf("repeated receipt = %+v, want Duplicate", repeat)
	}
	if row := outbox(t, db, id); row.attempts != 1 {
		t.Fatalf("attempt_count after a repeated receipt = %d, want 1", row.attempts)
	}
	notRedelivered := dl
	notRedelivered.MaybeRepeated = false
	if r := record(t, s, notRedelivered)[0]; r.Duplicate || r.DeathCount != 2 || r.ID != first.ID {
		t.Fatalf("same marker on a first delivery = %+v, want death_count 2", r)
	}
	// Fill the memory with other markers: the first one is forgotten.
	for i := range deadletter.MaxDeliveries {
		other := dl
		other.Delivery = "amqp:dlq:" + strings.Repeat("b", i+1)
		record(t, s, other)
	}
	if r := record(t, s, dl)[0]; r.Duplicate {
		t.Fatalf("marker older than the last %d counted as a repeat: %+v", deadletter.MaxDeliveries, r)
	}
	it, err := s.Get(ctx(t), first.ID)
	if err != nil {
		t.Fatal(err)
	}
	var detail struct {
		Deliveries []string `json:"deliveries"`
		Count      int      `json:"count"`
	}
	if err := json.Unmarshal(it.OriginDetail, &detail); err != nil {
		t.Fatal(err)
	}
	if len(detail.Deliveries) != deadletter.MaxDeliveries || detail.Deliveries[0] != dl.Delivery || detail.Count != 1 {
		t.Fatalf("origin_detail = %s", it.OriginDetail)
	}
}

// TestRecordStatusOnArrival pins what a new arrival does to the status: a
// replayed dead letter becomes pending again, a discarded one stays
// discarded (the operator's decision holds) but counts.
func TestRecordStatusOnArrival(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	replayed := record(t, s, rabbit(uuid.New(), "{}"))[0]
	discarded := record(t, s, rabbit(uuid.New(), "{}"))[0]
	if _, err := s.MarkReplayed(ctx(t), replayed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkDiscarded(ctx(t), discarded.ID, "poison"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   int64
		want deadletter.Status
	}{{replayed.ID, deadletter.StatusPending}, {discarded.ID, deadletter.StatusDiscarded}} {
		it, err := s.Get(ctx(t), tc.id)
		if err != nil {
			t.Fatal(err)
		}
		again := rabbit(it.EventID, "{}")
		r := record(t, s, again)[0]
		if r.Status != tc.want || r.DeathCount != 2 {
			t.Errorf("dead letter %d: new arrival gave %+v, want status %s and death_count 2", tc.id, r, tc.want)
		}
	}
}

// TestRecordCleansAndDegrades pins that Record never fails for content:
// text PostgreSQL refuses is cleaned, and a dead letter whose content is
// still refused (here: headers JSON with \u0000) is stored in reduced form
// while the rest of its batch is stored as given.
func TestRecordCleansAndDegrades(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	dirty := deadletter.DeadLetter{
		Source: deadletter.SourceKafka, Origin: "bad\x00topic\xff" + strings.Repeat("t", 5000),
		Reason: "DECODE\x00", ErrorMessage: "boom\xfe", EventType: strings.Repeat("e", 1000),
		OriginDetail: map[string]any{"k\x00": "v\x00", "nested": []any{"\xff"}},
		Body:         nil,
	}
	poison := deadletter.DeadLetter{
		Source: deadletter.SourceKafka, Origin: "events", Reason: "VALIDATE",
		Headers: json.RawMessage(`{"headers":[{"key":"a","value":"\u0000"}]}`), Body: []byte("x"),
		Key: []byte{0, 1},
	}
	good := rabbit(uuid.New(), "{}")
	res := record(t, s, dirty, poison, good)
	if res[0].Degraded || !res[1].Degraded || res[2].Degraded {
		t.Fatalf("degraded = %v %v %v, want only the poison one", res[0].Degraded, res[1].Degraded, res[2].Degraded)
	}
	it, err := s.Get(ctx(t), res[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(it.Origin) || strings.ContainsRune(it.Origin, 0) || len(it.Origin) > deadletter.MaxOriginBytes ||
		len(it.EventType) > deadletter.MaxEventTypeBytes || it.Reason != "DECODE\uFFFD" || len(it.Body) != 0 || it.Key != nil {
		t.Fatalf("cleaned row = %+v", it)
	}
	p, err := s.Get(ctx(t), res[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Reason != deadletter.ReasonUnparseable || !strings.Contains(p.ErrorMessage, "reduced form") ||
		string(p.Body) != "x" || string(p.Key) != "\x00\x01" || string(p.Headers) != "{}" {
		t.Fatalf("degraded row = %+v", p)
	}
	if g, err := s.Get(ctx(t), res[2].ID); err != nil || g.Reason != "rejected" {
		t.Fatalf("good row = %+v, %v", g, err)
	}
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRecordDatabaseDown pins that a database failure is an error (the
// caller must not acknowledge), not a degraded row.
func TestRecordDatabaseDown(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://root@"+closedPort(t)+"/x?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := deadletter.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.Record(ctx(t), []deadletter.DeadLetter{rabbit(uuid.New(), "{}")}); err == nil {
		t.Fatalf("Record against a closed port = %+v, nil", res)
	}
	if _, err := s.Record(ctx(t), []deadletter.DeadLetter{{Source: "sqs", Origin: "q"}}); err == nil {
		t.Fatal("Record with an invalid source succeeded")
	}
	if _, err := deadletter.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

// TestListFiltersAndPages pins List: newest last_seen_at first, every
// filter, keyset pages that cover all rows once, and the limit and cursor
// checks.
func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	var ids []int64
	for i := range 7 {
		dl := rabbit(uuid.New(), "{}")
		if i%2 == 1 {
			dl.Source, dl.Origin, dl.Reason, dl.EventType = deadletter.SourceKafka, "events", "DECODE", "billing.invoice.paid"
		}
		ids = append(ids, record(t, s, dl)[0].ID)
	}
	if _, err := s.MarkDiscarded(ctx(t), ids[0], "x"); err != nil {
		t.Fatal(err)
	}

	var seen []int64
	cursor := ""
	for page := 0; ; page++ {
		p, err := s.List(ctx(t), deadletter.Filter{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			seen = append(seen, it.ID)
			if it.Body != nil || it.Headers != nil {
				t.Fatalf("List item carries body or headers: %+v", it)
			}
		}
		if p.NextCursor == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = p.NextCursor
	}
	// Discarding does not touch last_seen_at: newest first is the reverse
	// of insertion.
	want := []int64{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}
	if len(seen) != len(want) {
		t.Fatalf("pages listed %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("pages listed %v, want %v", seen, want)
		}
	}

	now := time.Now()
	tests := []struct {
		name string
		f    deadletter.Filter
		want int
	}{
		{"all", deadletter.Filter{}, 7},
		{"source", deadletter.Filter{Source: deadletter.SourceKafka}, 3},
		{"origin", deadletter.Filter{Origin: "orders.q"}, 4},
		{"event type", deadletter.Filter{EventType: "billing.invoice.paid"}, 3},
		{"status", deadletter.Filter{Status: deadletter.StatusPending}, 6},
		{"since", deadletter.Filter{Since: now.Add(-time.Hour)}, 7},
		{"until past", deadletter.Filter{Until: now.Add(-time.Hour)}, 0},
		{"combined", deadletter.Filter{Source: deadletter.SourceRabbitMQ, Status: deadletter.StatusDiscarded}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.List(ctx(t), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) != tc.want || p.NextCursor != "" {
				t.Fatalf("%d items, cursor %q; want %d and none", len(p.Items), p.NextCursor, tc.want)
			}
		})
	}
	for _, f := range []deadletter.Filter{{Limit: -1}, {Limit: deadletter.MaxLimit + 1}, {Cursor: "nonsense"},
		{Cursor: "djE6eDp5"}, {Status: "lost"}, {Source: "sqs"}} {
		if _, err := s.List(ctx(t), f); !errors.Is(err, deadletter.ErrInvalidFilter) {
			t.Errorf("List(%+v) = %v, want ErrInvalidFilter", f, err)
		}
	}
}

// TestMark pins the admin transitions: only pending dead letters are
// replayed or discarded, a replay counts and resets the outbox row's
// failed flags, and unknown ids are ErrNotFound.
func TestMark(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	id := addOutbox(t, db, uuid.New())
	r := record(t, s, rabbit(id, "{}"))[0]
	if !outbox(t, db, id).failed {
		t.Fatal("outbox row not failed after the dead letter")
	}
	it, err := s.MarkReplayed(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Status != deadletter.StatusReplayed || it.ReplayCount != 1 || it.ReplayedAt.IsZero() {
		t.Fatalf("replayed item = %+v", it)
	}
	if row := outbox(t, db, id); row.failed || row.failedAt != nil || row.attempts != 1 {
		t.Fatalf("outbox row after replay = %+v, want failed flags reset and the attempt kept", row)
	}
	if _, err := s.MarkReplayed(ctx(t), r.ID); !errors.Is(err, deadletter.ErrNotPending) {
		t.Fatalf("second replay = %v, want ErrNotPending", err)
	}
	if _, err := s.MarkDiscarded(ctx(t), r.ID, "x"); !errors.Is(err, deadletter.ErrNotPending) {
		t.Fatalf("discarding a replayed one = %v, want ErrNotPending", err)
	}
	d := record(t, s, rabbit(uuid.New(), "{}"))[0]
	it, err = s.MarkDiscarded(ctx(t), d.ID, "poison \x00 pill")
	if err != nil || it.Status != deadletter.StatusDiscarded || it.DiscardReason != "poison \uFFFD pill" {
		t.Fatalf("discarded = %+v, %v", it, err)
	}
	for _, f := range []func() error{
		func() error { _, err := s.Get(ctx(t), 999999); return err },
		func() error { _, err := s.MarkReplayed(ctx(t), 999999); return err },
		func() error { _, err := s.MarkDiscarded(ctx(t), 999999, ""); return err },
	} {
		if err := f(); !errors.Is(err, deadletter.ErrNotFound) {
			t.Errorf("unknown id: %v, want ErrNotFound", err)
		}
	}
}

// TestRecordConcurrent pins that concurrent batches (Kafka partitions and
// AMQP channels record at once) sharing identities and outbox rows count
// every death exactly once: no lost update, no duplicate row. A deadlock
// PostgreSQL breaks is an error the caller retries, as the Recorder does.
func TestRecordConcurrent(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ids := make([]uuid.UUID, 8)
	for i := range ids {
		ids[i] = uuid.New()
		if i%4 != 0 { // two events not in this outbox
			addOutbox(t, db, ids[i])
		}
	}
	origins := []string{"orders.q", "billing.q"}
	const workers, batches, size = 4, 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range batches {
				dls := make([]deadletter.DeadLetter, size)
				for i := range dls {
					dls[i] = rabbit(ids[rng.IntN(len(ids))], "{}")
					dls[i].Origin = origins[rng.IntN(len(origins))]
				}
				for {
					_, err := s.Record(context.Background(), dls)
					var pgErr *pgconn.PgError
					if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
						continue // deadlock: nothing committed, try again
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var rows, deaths, inOutbox, attempts int
	if err := db.Pool.QueryRow(ctx(t), `SELECT count(*), sum(death_count),
		coalesce(sum(death_count) FILTER (WHERE event_id IN (SELECT event_id FROM outbox_events)), 0) FROM dead_letters`).
		Scan(&rows, &deaths, &inOutbox); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx(t), `SELECT sum(attempt_count) FROM outbox_events`).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	const total = workers * batches * size
	if deaths != total || attempts != inOutbox || rows > len(ids)*len(origins) {
		t.Fatalf("%d rows, %d deaths (%d of events in the outbox), %d outbox attempts; want at most %d rows, %d deaths, "+
			"attempts = deaths in the outbox", rows, deaths, inOutbox, attempts, len(ids)*len(origins), total)
	}
}
