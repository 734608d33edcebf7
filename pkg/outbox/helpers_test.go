package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// testCtx bounds a test: integration tests share one PostgreSQL server, whose
// cluster-wide xmin horizon other tests' transactions can hold back.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// event builds a valid envelope for aggregate with data {"n": n}.
func event(t testing.TB, aggregate string, n int) contracts.Envelope {
	t.Helper()
	e, err := contracts.New("sales.order.placed", aggregate, "sales-service", map[string]int{"n": n})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// write commits events in one transaction.
func write(t testing.TB, ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, events ...contracts.Envelope) {
	t.Helper()
	var w outbox.Writer
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, tx, events...); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 20 ms until it returns nil or the deadline
// passes, then fails with cond's last error.
func eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(t testing.TB, ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// newPublisher returns a sarama publisher on brokers, closed when the test
// ends.
func newPublisher(t testing.TB, brokers []string, tune func(*sarama.Config)) *outboxsarama.Publisher {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Retry.Backoff = 20 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 20 * time.Millisecond
	if tune != nil {
		tune(cfg)
	}
	p, err := outboxsarama.New(brokers, outboxsarama.Config{Sarama: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// testLogger logs to stderr when MESSAGEKIT_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("MESSAGEKIT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startRelay runs a Relay until the test ends (or stop is called) and fails
// the test if Run returns an error.
func startRelay(t testing.TB, pool outbox.Pool, pub outbox.Publisher, cfg outbox.RelayConfig) (r *outbox.Relay, stop func()) {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.TakeoverInterval == 0 {
		cfg.TakeoverInterval = 50 * time.Millisecond
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	r, err := outbox.NewRelay(pool, pub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// consumed is a record read back from Kafka.
type consumed struct {
	key, value []byte
	headers    map[string]string
	partition  int32
	offset     int64
	eventID    string
}

// consumer reads topic from the start with franz-go, independently of the
// sarama producer under test.
type consumer struct {
	cl *kgo.Client
	mu sync.Mutex
	rs []consumed
}

func newConsumer(t testing.TB, brokers []string, topic string) *consumer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{cl: cl}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				h := map[string]string{}
				for _, rh := range r.Headers {
					h[rh.Key] = string(rh.Value)
				}
				c.mu.Lock()
				c.rs = append(c.rs, consumed{key: r.Key, value: r.Value, headers: h, partition: r.Partition, offset: r.Offset, eventID: h[contracts.KafkaHeaderID]})
				c.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return c
}

func (c *consumer) records() []consumed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.rs)
}

// waitDistinct waits until n distinct event ids were consumed and returns
// the records.
func (c *consumer) waitDistinct(t testing.TB, n int, within time.Duration) []consumed {
	t.Helper()
	var rs []consumed
	eventually(t, within, func() error {
		rs = c.records()
		if d := len(distinct(rs)); d < n {
			return fmt.Errorf("%d of %d events consumed (%d records)", d, n, len(rs))
		}
		return nil
	})
	return rs
}

func distinct(rs []consumed) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r.eventID]++
	}
	return m
}

// firstDeliveryOrder returns, per key, the event ids in the order of their
// first appearance in Kafka (records of one key share a partition, and a
// partition's records arrive in offset order).
func firstDeliveryOrder(rs []consumed) map[string][]string {
	seen := map[string]bool{}
	out := map[string][]string{}
	for _, r := range rs {
		if seen[r.eventID] {
			continue
		}
		seen[r.eventID] = true
		out[string(r.key)] = append(out[string(r.key)], r.eventID)
	}
	return out
}

// dbOrder returns, per aggregate, the event ids in publish order: the
// Relay's (transaction_id, id).
func dbOrder(t testing.TB, ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) map[string][]string {
	t.Helper()
	rows, err := db.Query(ctx, "SELECT aggregate_id, event_id::text FROM outbox_events ORDER BY transaction_id, id")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for rows.Next() {
		var agg, id string
		if err := rows.Scan(&agg, &id); err != nil {
			t.Fatal(err)
		}
		out[agg] = append(out[agg], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertOrder fails unless every aggregate's first deliveries follow want.
func assertOrder(t testing.TB, got, want map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d aggregates in Kafka, want %d", len(got), len(want))
	}
	for agg, ids := range want {
		if !slices.Equal(got[agg], ids) {
			t.Errorf("aggregate %s: first deliveries\n%v\nwant\n%v", agg, got[agg], ids)
		}
	}
}

// assertSameEvent compares envelopes as consumers do: field by field, and
// data and metadata as JSON values (jsonb re-formats them: key order,
// spacing).
func assertSameEvent(t testing.TB, got, want contracts.Envelope) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want json.RawMessage
	}{{"data", got.Data, want.Data}, {"metadata", got.Metadata, want.Metadata}} {
		var g, w any
		if err := json.Unmarshal(f.got, &g); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if err := json.Unmarshal(f.want, &w); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s %s, want %s", f.name, f.got, f.want)
		}
	}
	got.Data, got.Metadata, want.Data, want.Metadata = nil, nil, nil, nil
	if !got.Equal(want) {
		t.Errorf("event %+v\nwant  %+v", got, want)
	}
}

func ids(events ...contracts.Envelope) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventID.String()
	}
	return out
}
