package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// The cost of the outbox to a business transaction: BEGIN, one business
// INSERT, optionally the outbox write, COMMIT (fsync on: the server's
// defaults). Targets: one event ≤ 1.25× the bare transaction; 100 events ≤ 5×
// one event.
//
// The machine is shared, so the variants run interleaved, one transaction
// each in turn, and each reports its own mean (…_ns/tx) plus the ratios: a
// load spike slows all of them alike. Variants: the bare transaction; Add of
// 1 event; Queue of 1 event in the same batch (round trip) as the business
// INSERT; Add of 1 event into a database whose notify trigger is disabled
// (the cost of waking the Relay); Add of 100 events.
func BenchmarkWriterAdd(b *testing.B) {
	ctx := context.Background()
	var w outbox.Writer
	conns := map[bool]*pgxpool.Conn{} // by notify trigger enabled
	for _, notify := range []bool{true, false} {
		db := testenv.MigratedPostgres(b)
		if _, err := db.Pool.Exec(ctx, "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		if !notify {
			if _, err := db.Pool.Exec(ctx, "ALTER TABLE outbox_events DISABLE TRIGGER outbox_events_notify"); err != nil {
				b.Fatal(err)
			}
		}
		conn, err := db.Pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(conn.Release)
		conns[notify] = conn
	}
	const business = "INSERT INTO orders (customer, total) VALUES ($1, $2)"
	tx := func(conn *pgxpool.Conn, body func(pgx.Tx) error) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := body(tx); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	newEvents := func(n int) []contracts.Envelope {
		es := make([]contracts.Envelope, n)
		for i := range es {
			es[i] = event(b, fmt.Sprintf("order-%d", i%10), i)
		}
		return es
	}
	variants := []struct {
		name   string
		events int
		run    func([]contracts.Envelope)
	}{
		{"business_row_only", 0, func([]contracts.Envelope) {
			tx(conns[true], func(tx pgx.Tx) error { _, err := tx.Exec(ctx, business, "c-42", "19.99"); return err })
		}},
		{"plus_1_event", 1, func(es []contracts.Envelope) {
			tx(conns[true], func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, business, "c-42", "19.99"); err != nil {
					return err
				}
				return w.Add(ctx, tx, es...)
			})
		}},
		{"plus_1_event_queued", 1, func(es []contracts.Envelope) {
			tx(conns[true], func(tx pgx.Tx) error {
				var batch pgx.Batch
				batch.Queue(business, "c-42", "19.99")
				if err := w.Queue(ctx, &batch, es...); err != nil {
					return err
				}
				return tx.SendBatch(ctx, &batch).Close()
			})
		}},
		{"plus_1_event_no_notify", 1, func(es []contracts.Envelope) {
			tx(conns[false], func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, business, "c-42", "19.99"); err != nil {
					return err
				}
				return w.Add(ctx, tx, es...)
			})
		}},
		{"plus_100_events", 100, func(es []contracts.Envelope) {
			tx(conns[true], func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, business, "c-42", "19.99"); err != nil {
					return err
				}
				return w.Add(ctx, tx, es...)
			})
		}},
	}
	total := make([]time.Duration, len(variants))
	n := 0
	for b.Loop() {
		for i, v := range variants {
			es := newEvents(v.events)
			start := time.Now()
			v.run(es)
			total[i] += time.Since(start)
		}
		n++
	}
	mean := func(i int) float64 { return float64(total[i].Nanoseconds()) / float64(n) }
	for i, v := range variants {
		b.ReportMetric(mean(i), v.name+"_ns/tx")
	}
	b.ReportMetric(mean(1)/mean(0), "plus_1/bare")
	b.ReportMetric(mean(2)/mean(0), "plus_1_queued/bare")
	b.ReportMetric(mean(3)/mean(0), "plus_1_no_notify/bare")
	b.ReportMetric(mean(4)/mean(1), "plus_100/plus_1")
}

// fill writes total events for aggregates aggregates (event k belongs to
// aggregate k mod aggregates), 1000 per transaction.
func fill(b *testing.B, ctx context.Context, db *testenv.Database, total, aggregates int) {
	b.Helper()
	var w outbox.Writer
	for start := 0; start < total; start += 1000 {
		batch := make([]contracts.Envelope, 0, 1000)
		for k := start; k < min(start+1000, total); k++ {
			batch = append(batch, event(b, fmt.Sprintf("agg-%d", k%aggregates), k))
		}
		if err := w.Add(ctx, db.Pool, batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// Relay throughput against kfake and the local PostgreSQL: the time to
// publish and mark a backlog of pending events, as records/s. "many" spreads
// 100k events over 1000 aggregates (one Kafka round per batch); "hot" puts
// 20k events on 10 aggregates, the worst case of the one-record-per-key-in-
// flight rule (100 rounds per batch of 1000).
func BenchmarkRelayThroughput(b *testing.B) {
	for _, tc := range []struct {
		name              string
		total, aggregates int
	}{{"many_aggregates_100k", 100_000, 1000}, {"hot_aggregates_20k", 20_000, 10}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			var elapsed time.Duration
			var published int
			for range b.N {
				b.StopTimer()
				db := testenv.MigratedPostgres(b)
				brokers := testenv.Kafka(b, "events")
				fill(b, ctx, db, tc.total, tc.aggregates)
				if _, err := db.Pool.Exec(ctx, "VACUUM ANALYZE outbox_events"); err != nil {
					b.Fatal(err)
				}
				reg := prometheus.NewRegistry()
				pub := newPublisher(b, brokers, nil)
				b.StartTimer()
				start := time.Now()
				_, stop := startRelay(b, db.Pool, pub, outbox.RelayConfig{Registerer: reg})
				eventually(b, 5*time.Minute, func() error {
					if n := int(metricValue(b, reg, "messagekit_outbox_relay_published_total")); n < tc.total {
						return fmt.Errorf("%d of %d published", n, tc.total)
					}
					return nil
				})
				elapsed += time.Since(start)
				published += tc.total
				b.StopTimer()
				stop()
			}
			b.ReportMetric(float64(published)/elapsed.Seconds(), "records/s")
		})
	}
}

// Commit-to-Kafka latency at an offered 1000 events/s for 3 s: 8 writers
// commit one event per transaction on a fixed schedule (100 aggregates);
// commit→ack is when Kafka acknowledged the record to the Relay,
// commit→consumed when a franz-go consumer received it. offered_events/s is
// the rate the writers achieved.
//
// "notify" is the default set-up. "poll" disables the notify trigger and
// polls every 10 ms instead: PostgreSQL serialises the commits of notifying
// transactions (cluster-wide, through their WAL flush), which caps
// concurrent outbox writers near 1/fsync-latency commits per second.
func BenchmarkRelayLatency(b *testing.B) {
	for _, notify := range []bool{true, false} {
		name, poll := "notify", time.Second
		if !notify {
			name, poll = "poll_10ms", 10*time.Millisecond
		}
		b.Run(name, func(b *testing.B) { relayLatency(b, notify, poll) })
	}
}

func relayLatency(b *testing.B, notify bool, poll time.Duration) {
	const rate, duration = 1000, 3 * time.Second
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		db := testenv.MigratedPostgres(b)
		if !notify {
			if _, err := db.Pool.Exec(ctx, "ALTER TABLE outbox_events DISABLE TRIGGER outbox_events_notify"); err != nil {
				b.Fatal(err)
			}
		}
		brokers := testenv.Kafka(b, "events")
		var mu sync.Mutex
		committed := map[string]time.Time{}
		acked := map[string]time.Time{}
		pub := &hookPublisher{inner: newPublisher(b, brokers, nil)}
		pub.after = func(records []outbox.Record, errs []error) []error {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for i, r := range records {
				if errs == nil || errs[i] == nil {
					id := headerValue(r, contracts.KafkaHeaderID)
					if _, ok := acked[id]; !ok {
						acked[id] = now
					}
				}
			}
			return errs
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("events"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		consumed := map[string]time.Time{}
		consumeCtx, stopConsuming := context.WithCancel(ctx)
		consumerDone := make(chan struct{})
		go func() {
			defer close(consumerDone)
			for consumeCtx.Err() == nil {
				fs := cl.PollFetches(consumeCtx)
				now := time.Now()
				fs.EachRecord(func(r *kgo.Record) {
					for _, h := range r.Headers {
						if h.Key == contracts.KafkaHeaderID {
							mu.Lock()
							if _, ok := consumed[string(h.Value)]; !ok {
								consumed[string(h.Value)] = now
							}
							mu.Unlock()
						}
					}
				})
			}
		}()
		startRelay(b, db.Pool, pub, outbox.RelayConfig{PollInterval: poll})
		leaderPID(b, ctx, db)

		// Enough connections for the writers to keep the pace even when a
		// commit's fsync is slow (the test pool has only a few).
		wcfg, err := pgxpool.ParseConfig(db.URL)
		if err != nil {
			b.Fatal(err)
		}
		wcfg.MaxConns = 16
		writers, err := pgxpool.NewWithConfig(ctx, wcfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(writers.Close)

		b.StartTimer()
		total := int(rate * duration / time.Second)
		jobs := make(chan int)
		var wg sync.WaitGroup
		var w outbox.Writer
		for range 8 {
			wg.Go(func() {
				for k := range jobs {
					e := event(b, fmt.Sprintf("agg-%d", k%100), k)
					tx, err := writers.Begin(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					if err := w.Add(ctx, tx, e); err != nil {
						b.Error(err)
						return
					}
					if err := tx.Commit(ctx); err != nil {
						b.Error(err)
						return
					}
					now := time.Now()
					mu.Lock()
					committed[e.EventID.String()] = now
					mu.Unlock()
				}
			})
		}
		t0 := time.Now()
		for k := range total {
			time.Sleep(time.Until(t0.Add(time.Duration(k) * time.Second / rate)))
			jobs <- k
		}
		close(jobs)
		wg.Wait()
		offered := float64(total) / time.Since(t0).Seconds()
		eventually(b, time.Minute, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(consumed) < total {
				return fmt.Errorf("%d of %d consumed", len(consumed), total)
			}
			return nil
		})
		b.StopTimer()
		stopConsuming()
		<-consumerDone
		cl.Close()

		mu.Lock()
		ack, con := latencies(committed, acked), latencies(committed, consumed)
		mu.Unlock()
		b.ReportMetric(offered, "offered_events/s")
		b.ReportMetric(ms(percentile(ack, 50)), "p50_commit_to_ack_ms")
		b.ReportMetric(ms(percentile(ack, 99)), "p99_commit_to_ack_ms")
		b.ReportMetric(ms(percentile(con, 50)), "p50_commit_to_consumed_ms")
		b.ReportMetric(ms(percentile(con, 99)), "p99_commit_to_consumed_ms")
	}
}

// latencies returns to[id] − from[id] for every id in both maps (a record
// acknowledged before its writer noted the commit counts as 0).
func latencies(from, to map[string]time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(from))
	for id, t0 := range from {
		if t1, ok := to[id]; ok {
			out = append(out, max(t1.Sub(t0), 0))
		}
	}
	slices.Sort(out)
	return out
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
