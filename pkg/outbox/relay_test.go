package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// The Relay writes exactly DESIGN.md §3's record: key aggregateId, value the
// envelope JSON, headers id, eventType, aggregateType (only when set) and
// the writer's traceparent/tracestate; and it marks the rows published.
func TestRelayRecordFormat(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	brokers := testenv.Kafka(t, "events")
	c := newConsumer(t, brokers, "events")

	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	spanCtx, span := tp.Tracer("test").Start(ctx, "signup")
	traced := event(t, "order-1", 1)
	write(t, spanCtx, db.Pool, traced)
	span.End()
	untyped := event(t, "order-2", 2)
	noType := outbox.NewWriter(outbox.WriterConfig{AggregateType: func(contracts.Envelope) string { return "" }})
	if err := noType.Add(ctx, db.Pool, untyped); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	startRelay(t, db.Pool, newPublisher(t, brokers, nil), outbox.RelayConfig{Registerer: reg})
	rs := c.waitDistinct(t, 2, 20*time.Second)

	byID := map[string]consumed{}
	for _, r := range rs {
		byID[r.eventID] = r
	}
	for _, tc := range []struct {
		name    string
		env     contracts.Envelope
		headers map[string]string
	}{
		{"traced, aggregate type derived", traced, map[string]string{
			"id": traced.EventID.String(), "eventType": "sales.order.placed", "aggregateType": "order",
			"traceparent": fmt.Sprintf("00-%s-%s-01", span.SpanContext().TraceID(), span.SpanContext().SpanID()),
		}},
		{"untraced, no aggregate type", untyped, map[string]string{
			"id": untyped.EventID.String(), "eventType": "sales.order.placed",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := byID[tc.env.EventID.String()]
			if !ok {
				t.Fatalf("event %s not in Kafka", tc.env.EventID)
			}
			if string(r.key) != tc.env.AggregateID {
				t.Errorf("key %q, want %q", r.key, tc.env.AggregateID)
			}
			got, err := contracts.Decode(r.value)
			if err != nil {
				t.Fatalf("value is not an envelope: %v\n%s", err, r.value)
			}
			assertSameEvent(t, got, tc.env)
			if fmt.Sprint(r.headers) != fmt.Sprint(tc.headers) {
				t.Errorf("headers %v\nwant    %v", r.headers, tc.headers)
			}
		})
	}
	eventually(t, 10*time.Second, func() error {
		if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE published AND published_at IS NOT NULL AND attempt_count = 1"); n != 2 {
			return fmt.Errorf("%d rows marked published", n)
		}
		return nil
	})
	if got := metricValue(t, reg, "messagekit_outbox_relay_published_total"); got != 2 {
		t.Errorf("published_total %v, want 2", got)
	}
}

// metricValue returns the sum of a counter's or gauge's series in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
		return v
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// hookPublisher wraps a Publisher to record what the Relay sends and to
// inject faults.
type hookPublisher struct {
	inner outbox.Publisher
	// after runs after inner published, with its results; it may replace
	// them.
	after func(records []outbox.Record, errs []error) []error

	mu    sync.Mutex
	sent  []outbox.Record
	calls int
}

func (h *hookPublisher) Publish(ctx context.Context, records []outbox.Record) []error {
	h.mu.Lock()
	h.sent = append(h.sent, records...)
	h.calls++
	h.mu.Unlock()
	errs := h.inner.Publish(ctx, records)
	if h.after != nil {
		errs = h.after(records, errs)
	}
	return errs
}

func (h *hookPublisher) sentIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.sent {
		for _, hd := range r.Headers {
			if hd.Key == contracts.KafkaHeaderID {
				out = append(out, string(hd.Value))
			}
		}
	}
	return out
}

// leaderPID returns the backend pid of the Relay holding the default lease.
func leaderPID(t testing.TB, ctx context.Context, db *testenv.Database) (pid int32) {
	t.Helper()
	key := outbox.LeaseKey(outbox.DefaultLeaseName)
	eventually(t, 20*time.Second, func() error {
		err := db.Pool.QueryRow(ctx, `SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 1
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND classid::bigint = $1 AND objid::bigint = $2`,
			int64(uint64(key)>>32), int64(uint32(key))).Scan(&pid)
		return err
	})
	return pid
}

// The xid8 horizon keeps per-aggregate order under concurrent writers: T1
// writes A1 and stays open, T2 writes A2 and commits; the Relay must not
// publish A2 while T1 is open, and publishes A1 then A2 once T1 commits.
func TestRelayOrderUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	brokers := testenv.Kafka(t, "events")
	c := newConsumer(t, brokers, "events")
	pub := &hookPublisher{inner: newPublisher(t, brokers, nil)}
	startRelay(t, db.Pool, pub, outbox.RelayConfig{PollInterval: 50 * time.Millisecond})
	pid := leaderPID(t, ctx, db)

	var w outbox.Writer
	a1, a2, b1 := event(t, "A", 1), event(t, "A", 2), event(t, "B", 1)
	t1, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = t1.Rollback(ctx) }()
	if err := w.Add(ctx, t1, a1); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, db.Pool, a2, b1) // T2: commits while T1 is open

	// Wait until the Relay has looked at the outbox after T2's commit (its
	// connection ran a query since, and is idle again) ...
	var committed time.Time
	if err := db.Pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&committed); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		var ran bool
		err := db.Pool.QueryRow(ctx, `SELECT query_start > $2 AND state = 'idle' FROM pg_stat_activity WHERE pid = $1`,
			pid, committed).Scan(&ran)
		if err == nil && !ran {
			err = errors.New("relay has not run since T2 committed")
		}
		return err
	})
	// ... and has published neither A2 nor anything else of T2.
	if sent := pub.sentIDs(); len(sent) != 0 {
		t.Fatalf("relay published %v while T1 (writing A1) was open", sent)
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE published"); n != 0 {
		t.Fatalf("%d rows published while T1 was open", n)
	}

	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rs := c.waitDistinct(t, 3, 20*time.Second)
	assertOrder(t, firstDeliveryOrder(rs), map[string][]string{"A": ids(a1, a2), "B": ids(b1)})
	if got := pub.sentIDs(); !slices.Equal(got[:2], ids(a1, a2)) && !slices.Equal(got[:2], ids(a1, b1)) {
		t.Errorf("relay sent %v; A1 must come before A2", got)
	}
}

// A transaction running in another database of the server, which holds
// back pg_snapshot_xmin for everyone, does not hold the Relay back: it can
// not write this outbox.
func TestRelayIgnoresOtherDatabasesTransactions(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	other := testenv.Postgres(t)
	brokers := testenv.Kafka(t, "events")
	c := newConsumer(t, brokers, "events")

	long, err := other.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = long.Rollback(ctx) }()
	var xid string
	if err := long.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	e := event(t, "order-1", 1)
	write(t, ctx, db.Pool, e)
	var blocksXmin bool
	if err := db.Pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot()) <= $1::xid8", xid).Scan(&blocksXmin); err != nil {
		t.Fatal(err)
	}
	if !blocksXmin {
		t.Fatal("the other database's transaction does not hold back pg_snapshot_xmin; the test proves nothing")
	}
	startRelay(t, db.Pool, newPublisher(t, brokers, nil), outbox.RelayConfig{})
	c.waitDistinct(t, 1, 10*time.Second)
}

// A notification wakes the Relay: with a poll interval far beyond the
// test's deadline, events still arrive within seconds.
func TestRelayWakesOnNotify(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	brokers := testenv.Kafka(t, "events")
	c := newConsumer(t, brokers, "events")
	startRelay(t, db.Pool, newPublisher(t, brokers, nil), outbox.RelayConfig{PollInterval: time.Hour})
	leaderPID(t, ctx, db) // listening from now on
	for i := range 3 {
		write(t, ctx, db.Pool, event(t, "order-1", i))
		c.waitDistinct(t, i+1, 10*time.Second)
	}
}

// Kafka failing while the Relay publishes: rows stay pending (counting
// attempts, never marked failed), the Relay retries with backoff, and once
// Kafka is back every event arrives with per-aggregate order kept.
func TestRelayKafkaDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault func(kmsg.Request) (kmsg.Response, error, bool)
	}{
		{"broker answers NOT_LEADER_FOR_PARTITION", func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			req := kreq.(*kmsg.ProduceRequest)
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition = rp.Partition
					sp.ErrorCode = 6 // NOT_LEADER_FOR_PARTITION, retriable
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}},
		{"broker drops the connection", func(kmsg.Request) (kmsg.Response, error, bool) {
			return nil, errors.New("injected: connection dropped"), true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			db := testenv.MigratedPostgres(t)
			kafka := testenv.KafkaWith(t, testenv.KafkaOptions{Topics: []string{"events"}})
			if kafka.Fake == nil {
				t.Skip("needs kfake for fault injection")
			}
			var down atomic.Bool
			kafka.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				kafka.Fake.KeepControl()
				if !down.Load() {
					return nil, nil, false
				}
				return tc.fault(req)
			})
			c := newConsumer(t, kafka.Brokers, "events")
			reg := prometheus.NewRegistry()
			startRelay(t, db.Pool, newPublisher(t, kafka.Brokers, func(cfg *sarama.Config) {
				cfg.Producer.Retry.Max = 2
			}), outbox.RelayConfig{Registerer: reg})

			aggs := []string{"A", "B", "C", "D"}
			for i := range 8 {
				write(t, ctx, db.Pool, event(t, aggs[i%4], i))
			}
			c.waitDistinct(t, 8, 20*time.Second)

			down.Store(true)
			for i := range 24 {
				write(t, ctx, db.Pool, event(t, aggs[i%4], 100+i), event(t, aggs[(i+1)%4], 200+i))
			}
			eventually(t, 20*time.Second, func() error {
				if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE NOT published AND attempt_count >= 2"); n == 0 {
					return errors.New("no pending row retried twice yet")
				}
				return nil
			})
			if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE NOT published"); n != 48 {
				t.Errorf("%d rows pending while Kafka is down, want 48", n)
			}
			if v := metricValue(t, reg, "messagekit_outbox_relay_publish_errors_total"); v == 0 {
				t.Error("publish_errors_total stayed 0 while Kafka was down")
			}

			down.Store(false)
			rs := c.waitDistinct(t, 56, 30*time.Second)
			assertOrder(t, firstDeliveryOrder(rs), dbOrder(t, ctx, db.Pool))
			eventually(t, 10*time.Second, func() error {
				if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE NOT published"); n != 0 {
					return fmt.Errorf("%d rows still pending", n)
				}
				return nil
			})
			if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE failed OR error_message IS NOT NULL"); n != 0 {
				t.Errorf("%d rows marked failed by a Kafka outage", n)
			}
		})
	}
}

// A connection dies after Kafka acknowledged a batch but before its rows
// were marked. If it is the one marking them, the batch is published again
// (at least once); if it is the Relay's own (lease, LISTEN) connection, the
// Relay reconnects and listens again. Either way nothing is lost and order
// is kept.
func TestRelayConnectionLostMidBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		republished bool
		// kill runs once, after the first batch was acknowledged.
		kill func(t *testing.T, ctx context.Context, db *testenv.Database) error
	}{
		{"marking connection", true, func(t *testing.T, ctx context.Context, db *testenv.Database) error {
			// Hold the mark back with a lock, then terminate the backend
			// waiting for it.
			lock, err := db.Pool.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := lock.Exec(ctx, "LOCK TABLE outbox_events IN SHARE MODE"); err != nil {
				return err
			}
			go func() {
				defer func() { _ = lock.Rollback(ctx) }()
				eventually(t, 10*time.Second, func() error {
					var n int
					err := db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
						WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox_events AS o%'`).Scan(&n)
					if err == nil && n == 0 {
						err = errors.New("no mark waiting yet")
					}
					return err
				})
			}()
			return nil
		}},
		{"listening connection", false, func(t *testing.T, ctx context.Context, db *testenv.Database) error {
			_, err := db.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", leaderPID(t, ctx, db))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			db := testenv.MigratedPostgres(t)
			brokers := testenv.Kafka(t, "events")
			c := newConsumer(t, brokers, "events")

			var killed atomic.Bool
			var killErr atomic.Value
			var oldLeader atomic.Int32
			pub := &hookPublisher{inner: newPublisher(t, brokers, nil)}
			pub.after = func(records []outbox.Record, errs []error) []error {
				if errs == nil && killed.CompareAndSwap(false, true) {
					oldLeader.Store(leaderPID(t, ctx, db))
					if err := tc.kill(t, ctx, db); err != nil {
						killErr.Store(err)
					}
				}
				return errs
			}
			var batch []contracts.Envelope
			for i := range 10 {
				batch = append(batch, event(t, fmt.Sprintf("agg-%d", i%3), i))
			}
			write(t, ctx, db.Pool, batch...)
			// A poll interval beyond the deadline: later events can only
			// arrive through a re-established LISTEN.
			startRelay(t, db.Pool, pub, outbox.RelayConfig{PollInterval: time.Hour})

			eventually(t, 20*time.Second, func() error {
				if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE published"); n != 10 {
					return fmt.Errorf("%d of 10 rows published", n)
				}
				return nil
			})
			if err, _ := killErr.Load().(error); err != nil {
				t.Fatal(err)
			}
			// Back on a new connection, and past taking the lease: its next
			// statement was LISTEN.
			eventually(t, 10*time.Second, func() error {
				pid := leaderPID(t, ctx, db)
				if pid == oldLeader.Load() {
					return errors.New("the old connection still holds the lease")
				}
				var q string
				if err := db.Pool.QueryRow(ctx, "SELECT query FROM pg_stat_activity WHERE pid = $1", pid).Scan(&q); err != nil {
					return err
				}
				if strings.Contains(q, "pg_try_advisory_lock") {
					return errors.New("relay still taking the lease")
				}
				return nil
			})
			more := []contracts.Envelope{event(t, "agg-0", 100), event(t, "agg-1", 101)}
			write(t, ctx, db.Pool, more...)
			rs := c.waitDistinct(t, 12, 10*time.Second)

			counts := distinct(rs)
			republished := 0
			for _, e := range batch {
				if counts[e.EventID.String()] >= 2 {
					republished++
				}
			}
			if tc.republished && republished != len(batch) {
				t.Errorf("%d of the %d events of the unmarked batch published again; counts %v", republished, len(batch), counts)
			}
			assertOrder(t, firstDeliveryOrder(rs), dbOrder(t, ctx, db.Pool))
		})
	}
}

// Two Relays at once: one publishes, the other stands by, every row is
// published once, in per-aggregate order. Stopping the active one mid-run
// hands over to the other, and nothing is lost or reordered.
func TestRelayTwoInstances(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	brokers := testenv.Kafka(t, "events")
	c := newConsumer(t, brokers, "events")
	pubs := []*hookPublisher{{inner: newPublisher(t, brokers, nil)}, {inner: newPublisher(t, brokers, nil)}}
	var stops []func()
	for _, p := range pubs {
		_, stop := startRelay(t, db.Pool, p, outbox.RelayConfig{BatchSize: 50})
		stops = append(stops, stop)
	}

	// writers runs 4 concurrent writers of n transactions each.
	writers := func(base, n int) {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range n {
					k := base + g*n + i
					write(t, ctx, db.Pool, event(t, fmt.Sprintf("agg-%d", k%7), k), event(t, fmt.Sprintf("agg-%d", (k+3)%7), k))
				}
			})
		}
		wg.Wait()
	}
	writers(0, 25) // 200 events
	rs := c.waitDistinct(t, 200, 30*time.Second)
	for id, n := range distinct(rs) {
		if n != 1 {
			t.Errorf("event %s published %d times with both relays healthy", id, n)
		}
	}
	assertOrder(t, firstDeliveryOrder(rs), dbOrder(t, ctx, db.Pool))
	active := slices.IndexFunc(pubs, func(p *hookPublisher) bool { return len(p.sentIDs()) > 0 })
	if other := pubs[1-active]; len(other.sentIDs()) != 0 {
		t.Fatalf("both relays published: %d and %d records", len(pubs[0].sentIDs()), len(pubs[1].sentIDs()))
	}

	// Stop the active relay while writers are running.
	done := make(chan struct{})
	go func() {
		defer close(done)
		writers(1000, 25)
	}()
	eventually(t, 20*time.Second, func() error {
		if d := len(distinct(c.records())); d < 240 {
			return fmt.Errorf("%d events consumed", d)
		}
		return nil
	})
	stops[active]()
	<-done
	rs = c.waitDistinct(t, 400, 30*time.Second)
	assertOrder(t, firstDeliveryOrder(rs), dbOrder(t, ctx, db.Pool))
	if len(pubs[1-active].sentIDs()) == 0 {
		t.Error("the standby never took over")
	}
	eventually(t, 10*time.Second, func() error {
		if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE NOT published"); n != 0 {
			return fmt.Errorf("%d rows still pending", n)
		}
		return nil
	})
}

// A record Kafka can never accept (here: over Producer.MaxMessageBytes)
// marks its row failed with the reason and does not block the events after
// it.
func TestRelayPermanentFailure(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	brokers := testenv.Kafka(t, "events")
	c := newConsumer(t, brokers, "events")
	big, err := contracts.New("sales.order.placed", "A", "sales-service", map[string]string{"blob": strings.Repeat("x", 4096)})
	if err != nil {
		t.Fatal(err)
	}
	before, after := event(t, "A", 1), event(t, "A", 3)
	write(t, ctx, db.Pool, before, big, after)
	reg := prometheus.NewRegistry()
	startRelay(t, db.Pool, newPublisher(t, brokers, func(cfg *sarama.Config) {
		cfg.Producer.MaxMessageBytes = 2048
	}), outbox.RelayConfig{Registerer: reg})

	rs := c.waitDistinct(t, 2, 20*time.Second)
	assertOrder(t, firstDeliveryOrder(rs), map[string][]string{"A": ids(before, after)})
	eventually(t, 10*time.Second, func() error {
		var failed, published bool
		var msg *string
		var attempts int
		err := db.Pool.QueryRow(ctx, "SELECT failed, published, error_message, attempt_count FROM outbox_events WHERE event_id = $1",
			big.EventID).Scan(&failed, &published, &msg, &attempts)
		switch {
		case err != nil:
			return err
		case !failed || published || msg == nil || attempts != 1:
			return fmt.Errorf("big row: failed=%v published=%v error_message=%v attempts=%d", failed, published, msg, attempts)
		case !strings.Contains(*msg, "MaxMessageBytes"):
			return fmt.Errorf("error_message %q does not say why", *msg)
		}
		return nil
	})
	if v := metricValue(t, reg, "messagekit_outbox_relay_publish_errors_total"); v != 1 {
		t.Errorf("publish_errors_total %v, want 1", v)
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE NOT published AND NOT failed"); n != 0 {
		t.Errorf("%d rows pending", n)
	}
}

// Close stops Run, is idempotent, releases the lease at once (a second
// Relay becomes active), and a closed Relay does not run again.
func TestRelayCloseAndRestart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	brokers := testenv.Kafka(t, "events")
	pub := newPublisher(t, brokers, nil)
	r, stop := startRelay(t, db.Pool, pub, outbox.RelayConfig{})
	first := leaderPID(t, ctx, db)
	stop()
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.Run(ctx); !errors.Is(err, outbox.ErrRelayClosed) {
		t.Errorf("Run after Close: %v, want ErrRelayClosed", err)
	}
	startRelay(t, db.Pool, pub, outbox.RelayConfig{})
	eventually(t, 5*time.Second, func() error {
		if pid := leaderPID(t, ctx, db); pid == first {
			return fmt.Errorf("lease still held by the closed relay's backend %d", pid)
		}
		return nil
	})
	// Run's context ending stops it too, returning nil.
	r3, err := outbox.NewRelay(db.Pool, pub, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- r3.Run(runCtx) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// NewRelay rejects invalid configurations, naming the field.
func TestNewRelayConfig(t *testing.T) {
	t.Parallel()
	pool := poolStub{}
	pub := &hookPublisher{}
	for _, tc := range []struct {
		cfg  outbox.RelayConfig
		want string
	}{
		{outbox.RelayConfig{Topic: "bad topic"}, "Topic"},
		{outbox.RelayConfig{Topic: strings.Repeat("t", 250)}, "Topic"},
		{outbox.RelayConfig{BatchSize: -1}, "BatchSize"},
		{outbox.RelayConfig{PollInterval: -time.Second}, "PollInterval"},
		{outbox.RelayConfig{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff"},
		{outbox.RelayConfig{StatsInterval: -1}, "StatsInterval"},
		{outbox.RelayConfig{TakeoverInterval: -1}, "TakeoverInterval"},
		{outbox.RelayConfig{}, ""},
		{outbox.RelayConfig{Topic: "orders.v1_events-x"}, ""},
	} {
		_, err := outbox.NewRelay(pool, pub, tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := outbox.NewRelay(nil, pub, outbox.RelayConfig{}); err == nil {
		t.Error("NewRelay accepted a nil pool")
	}
	// Two relays share one registry's collectors.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{Registerer: reg}); err != nil {
			t.Fatal(err)
		}
	}
}

type poolStub struct{}

func (poolStub) Acquire(context.Context) (*pgxpool.Conn, error) { return nil, errors.New("stub") }

// memKafka is an in-memory Publisher: it appends acknowledged records to a
// log, fails records on demand, and checks the Relay's side of the
// Publisher contract (no two records of one key in a call).
type memKafka struct {
	mu       sync.Mutex
	log      []string            // event ids acknowledged, in order
	failures map[string]int      // event id -> times to fail before succeeding
	offered  [][]string          // event ids per call
	attempts map[string][]string // key -> event ids in the order offered
	err      error
}

func (m *memKafka) Publish(_ context.Context, records []outbox.Record) []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := make([]error, len(records))
	keys := map[string]bool{}
	var call []string
	failed := false
	for i, r := range records {
		id := headerValue(r, contracts.KafkaHeaderID)
		call = append(call, id)
		if keys[string(r.Key)] {
			m.err = fmt.Errorf("two records of key %s in one call", r.Key)
		}
		keys[string(r.Key)] = true
		m.attempts[string(r.Key)] = append(m.attempts[string(r.Key)], id)
		if m.failures[id] > 0 {
			m.failures[id]--
			errs[i], failed = errors.New("injected: not enough replicas"), true
			continue
		}
		m.log = append(m.log, id)
	}
	m.offered = append(m.offered, call)
	if !failed {
		return nil
	}
	return errs
}

func headerValue(r outbox.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// A record that fails is never overtaken by a later record of its
// aggregate: the Relay does not even offer the later one until the failed
// one is acknowledged, whatever the producer would do with it. Other
// aggregates go on; attempts are counted.
func TestRelayNeverOvertakesAFailedRecord(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	a := []contracts.Envelope{event(t, "A", 1), event(t, "A", 2), event(t, "A", 3)}
	b := []contracts.Envelope{event(t, "B", 1), event(t, "B", 2)}
	write(t, ctx, db.Pool, a[0], b[0], a[1], b[1], a[2])
	k := &memKafka{failures: map[string]int{a[0].EventID.String(): 2}, attempts: map[string][]string{}}
	startRelay(t, db.Pool, k, outbox.RelayConfig{})

	eventually(t, 20*time.Second, func() error {
		if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events WHERE published"); n != 5 {
			return fmt.Errorf("%d of 5 published", n)
		}
		return nil
	})
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		t.Fatal(k.err)
	}
	aID := ids(a...)
	if want := []string{aID[0], aID[0], aID[0], aID[1], aID[2]}; !slices.Equal(k.attempts["A"], want) {
		t.Errorf("A offered as %v\nwant %v", k.attempts["A"], want)
	}
	if want := ids(b...); !slices.Equal(k.attempts["B"], want) {
		t.Errorf("B offered as %v, want %v (B must not wait for A)", k.attempts["B"], want)
	}
	var logA []string
	for _, id := range k.log {
		if slices.Contains(aID, id) {
			logA = append(logA, id)
		}
	}
	if !slices.Equal(logA, aID) {
		t.Errorf("A acknowledged as %v, want %v", logA, aID)
	}
	if n := count(t, ctx, db.Pool, "SELECT attempt_count FROM outbox_events WHERE event_id = $1", a[0].EventID); n != 3 {
		t.Errorf("A1 attempt_count %d, want 3", n)
	}
}
