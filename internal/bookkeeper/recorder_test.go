package bookkeeper_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// fakeStore fails while down is set and otherwise answers with results.
type fakeStore struct {
	down     atomic.Bool
	failWith error // the error while down; a plain error when nil
	attempts atomic.Int64
	block    chan struct{} // when not nil, each attempt waits for it
	answer   func(dls []deadletter.DeadLetter) []deadletter.Recorded
}

func (s *fakeStore) Record(_ context.Context, dls []deadletter.DeadLetter) ([]deadletter.Recorded, error) {
	s.attempts.Add(1)
	if s.block != nil {
		<-s.block
	}
	if s.down.Load() {
		if s.failWith != nil {
			return nil, s.failWith
		}
		return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	if s.answer != nil {
		return s.answer(dls), nil
	}
	res := make([]deadletter.Recorded, len(dls))
	for i := range res {
		res[i] = deadletter.Recorded{ID: int64(i + 1), DeathCount: 1, Inserted: true, Status: deadletter.StatusPending}
	}
	return res, nil
}

// syncBuffer is a log sink safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	s := b.b.String()
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func newRecorder(t *testing.T, cfg bookkeeper.Config) (*bookkeeper.Recorder, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := bookkeeper.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg.Metrics = m
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := bookkeeper.NewRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, reg, logs
}

// metric returns the value of the sample of name whose labels include
// labels, or -1.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func letters(n int) []bookkeeper.Letter {
	ls := make([]bookkeeper.Letter, n)
	for i := range ls {
		ls[i] = bookkeeper.Letter{DeadLetter: deadletter.DeadLetter{Origin: "orders.q", Reason: "rejected", Body: []byte("{}")}}
	}
	return ls
}

// TestRecordPausesWhileDatabaseDown pins §9's behaviour for the
// bookkeeper: while the store fails, Record does not return (so nothing is
// acknowledged), the breaker opens after BreakerFailures attempts and then
// lets a probe through only every BreakerTimeout (no busy loop), the
// readiness check reports it, and once the store works Record returns and
// the breaker closes.
func TestRecordPausesWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	store := &fakeStore{}
	store.down.Store(true)
	const timeout = 300 * time.Millisecond
	r, reg, logs := newRecorder(t, bookkeeper.Config{Store: store, BreakerFailures: 3, BreakerTimeout: timeout,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := r.Record(context.Background(), deadletter.SourceRabbitMQ, letters(2))
		done <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "open breaker", func() bool { return r.Check(context.Background()) != nil })
	if err := r.Check(context.Background()); !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Check = %v, want it to name the database error", err)
	}
	if v := metric(t, reg, "messagekit_bookkeeper_breaker_state", nil); v != 2 {
		t.Errorf("breaker gauge = %v, want 2 (open)", v)
	}
	opened := store.attempts.Load()
	time.Sleep(3 * timeout) // observing the pause itself: nothing to poll for
	select {
	case err := <-done:
		t.Fatalf("Record returned %v while the store was down", err)
	default:
	}
	// Open for 3 timeouts: at most one probe per timeout.
	if probes := store.attempts.Load() - opened; probes > 4 {
		t.Fatalf("%d attempts while the breaker was open for %v, want at most one per %v", probes, 3*timeout, timeout)
	}
	store.down.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Record did not return after the store came back")
	}
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("Check after recovery = %v", err)
	}
	if v := metric(t, reg, "messagekit_bookkeeper_processing_errors_total",
		map[string]string{"source": "rabbitmq", "kind": bookkeeper.ErrorStore}); v < 3 {
		t.Errorf("store errors counted = %v, want at least 3", v)
	}
	if len(logs.lines(t, "postgres circuit breaker open: dead-letter consumption paused")) != 1 {
		t.Errorf("want one log line about the open breaker")
	}
}

// TestRecordReturnsWhenContextEnds pins that a source can always stop:
// Record gives up with ctx's error, having committed nothing.
func TestRecordReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	store := &fakeStore{}
	store.down.Store(true)
	r, _, _ := newRecorder(t, bookkeeper.Config{Store: store, RetryMin: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.Record(ctx, deadletter.SourceKafka, letters(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Record took %v to notice its context", d)
	}
	if _, err := r.Record(ctx, deadletter.SourceKafka, letters(1)); err == nil {
		t.Fatal("Record with an ended context succeeded")
	}
}

// TestRecordFinishesAttemptInFlight pins the graceful shutdown: an attempt
// that started is finished even if ctx ends meanwhile, so its batch can be
// acknowledged instead of being stored again after a restart.
func TestRecordFinishesAttemptInFlight(t *testing.T) {
	t.Parallel()
	store := &fakeStore{block: make(chan struct{})}
	r, _, _ := newRecorder(t, bookkeeper.Config{Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Record(ctx, deadletter.SourceKafka, letters(1))
		done <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "attempt", func() bool { return store.attempts.Load() == 1 })
	cancel()
	close(store.block)
	if err := <-done; err != nil {
		t.Fatalf("Record = %v, want the attempt in flight to finish", err)
	}
}

// TestDeadlocksDoNotOpenBreaker pins that a deadlock between two batches
// (SQLSTATE 40P01) is retried without counting as a database failure.
func TestDeadlocksDoNotOpenBreaker(t *testing.T) {
	t.Parallel()
	store := &fakeStore{failWith: &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}}
	store.down.Store(true)
	r, _, _ := newRecorder(t, bookkeeper.Config{Store: store, BreakerFailures: 2, RetryMin: time.Millisecond,
		RetryMax: time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := r.Record(context.Background(), deadletter.SourceKafka, letters(1))
		done <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "five attempts", func() bool { return store.attempts.Load() >= 5 })
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("breaker opened on deadlocks: %v", err)
	}
	store.down.Store(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRecordReportsEachDeadLetter pins the metrics and the log line per
// dead letter (origin and event id named, DESIGN.md §8).
func TestRecordReportsEachDeadLetter(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	store := &fakeStore{answer: func(dls []deadletter.DeadLetter) []deadletter.Recorded {
		return []deadletter.Recorded{
			{ID: 1, DeathCount: 1, Inserted: true, OutboxFlagged: true, Status: deadletter.StatusPending},
			{ID: 2, DeathCount: 3, Status: deadletter.StatusPending},
			{Duplicate: true},
			{ID: 4, DeathCount: 1, Inserted: true, Degraded: true, Status: deadletter.StatusPending},
		}
	}}
	r, reg, logs := newRecorder(t, bookkeeper.Config{Store: store})
	ls := []bookkeeper.Letter{
		{DeadLetter: deadletter.DeadLetter{EventID: id, Origin: "orders.q", Reason: "rejected"},
			Attrs: []slog.Attr{slog.String("queue", "events.dlq")}},
		{DeadLetter: deadletter.DeadLetter{EventID: uuid.New(), Origin: "events", Reason: "SOMETHING_NEW"}},
		{DeadLetter: deadletter.DeadLetter{Origin: "orders.q", Reason: "rejected"}},
		{DeadLetter: deadletter.DeadLetter{Origin: "events.dlq", Reason: deadletter.ReasonUnparseable},
			Problem: errors.New("no x-death header")},
	}
	if _, err := r.Record(context.Background(), deadletter.SourceRabbitMQ, ls); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"messagekit_bookkeeper_dead_letters_total", map[string]string{"source": "rabbitmq", "reason": "rejected"}, 1},
		{"messagekit_bookkeeper_dead_letters_total", map[string]string{"source": "rabbitmq", "reason": "other"}, 1},
		{"messagekit_bookkeeper_dead_letters_total", map[string]string{"source": "rabbitmq", "reason": "unparseable"}, 1},
		{"messagekit_bookkeeper_duplicate_deliveries_total", map[string]string{"source": "rabbitmq"}, 1},
		{"messagekit_bookkeeper_outbox_flagged_total", map[string]string{"source": "rabbitmq"}, 1},
		{"messagekit_bookkeeper_outbox_not_found_total", map[string]string{"source": "rabbitmq"}, 1},
		{"messagekit_bookkeeper_processing_errors_total", map[string]string{"source": "rabbitmq", "kind": "unparseable"}, 1},
		{"messagekit_bookkeeper_processing_errors_total", map[string]string{"source": "rabbitmq", "kind": "degraded"}, 1},
		{"messagekit_bookkeeper_batch_size_dead_letters", map[string]string{"source": "rabbitmq"}, 1},
	} {
		if got := metric(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	recorded := logs.lines(t, "dead letter recorded")
	if len(recorded) != 2 {
		t.Fatalf("%d 'dead letter recorded' lines, want 2", len(recorded))
	}
	first := recorded[0]
	if first["origin"] != "orders.q" || first["event_id"] != id.String() || first["queue"] != "events.dlq" ||
		first["reason"] != "rejected" || first["outbox_found"] != true {
		t.Errorf("log line = %v", first)
	}
	raw := logs.lines(t, "dead letter stored raw")
	if len(raw) != 1 || raw[0]["level"] != "WARN" || raw[0]["problem"] != "no x-death header" {
		t.Errorf("raw log lines = %v", raw)
	}
}

func TestNewRecorderValidates(t *testing.T) {
	if _, err := bookkeeper.NewRecorder(bookkeeper.Config{}); err == nil {
		t.Error("NewRecorder without a store succeeded")
	}
	if _, err := bookkeeper.NewRecorder(bookkeeper.Config{Store: &fakeStore{}, RetryMin: -1}); err == nil {
		t.Error("NewRecorder with a negative duration succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := bookkeeper.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := bookkeeper.NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}
