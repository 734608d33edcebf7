package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/bookkeepertest"
	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// countByID counts the deliveries of each message id.
func countByID(got []amqp.Delivery) map[string]int {
	c := make(map[string]int, len(got))
	for _, d := range got {
		c[d.MessageId]++
	}
	return c
}

// recordedKeys counts the ids of the group's processed_messages rows among ids.
func (r *rig) recordedKeys(ids []uuid.UUID) int {
	r.t.Helper()
	var n int
	must(r.t, r.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM processed_messages WHERE consumer_name = $1 AND event_id = ANY($2::uuid[])`,
		r.group, ids).Scan(&n))
	return n
}

// committed returns the group's committed offsets of partitions 0..n-1
// (-1 when none).
func (r *rig) committed() []int64 {
	r.t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(r.brokers, sc)
	must(r.t, err)
	defer func() { _ = admin.Close() }()
	parts := make([]int32, r.partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	resp, err := admin.ListConsumerGroupOffsets(r.group, map[string][]int32{r.topic: parts})
	must(r.t, err)
	out := make([]int64, r.partitions)
	for i, p := range parts {
		out[i] = -1
		if b := resp.GetBlock(r.topic, p); b != nil {
			out[i] = b.Offset
		}
	}
	return out
}

// Pins issue 5's reconnection: when RabbitMQ closes the bridge's connection
// mid-stream (twice), the partitions reconnect, publish their unconfirmed
// records again and go on; every event arrives, duplicates are at most the
// in-flight batches, and every id is recorded.
func TestBridgeReconnectsAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	const n, partitions, batch = 3000, 4, 100
	r := newRig(t, partitions, "#")
	evs := make([]event, n)
	ids := make([]uuid.UUID, n)
	for i := range evs {
		evs[i] = newEvent(t, typeCreated, fmt.Sprintf("order-%d", i%200), i, int32(i%partitions))
		ids[i] = evs[i].env.EventID
	}
	r.produce(evs...)
	name := testenv.ConnectionName(t)
	cfg := r.config(nil)
	cfg.ConnectionName, cfg.BatchSize = name, batch
	// About 12 s of stream, so both closes land mid-stream even when
	// rabbitmqctl takes seconds to answer on a loaded machine.
	cfg.MaxRate = 250
	r.start(cfg)

	closes := 0
	for _, at := range []int{300, 1200} {
		r.waitFor(60*time.Second, fmt.Sprintf("%d deliveries", at), func(d []amqp.Delivery) bool { return len(d) >= at })
		if len(r.got()) >= n {
			t.Fatalf("the stream ended before the close at %d: the test did not close mid-stream", at)
		}
		closes += r.rmq.CloseConnections(t, name)
	}
	if closes < 2 {
		t.Fatalf("closed %d bridge connections named %s, want 2", closes, name)
	}
	got := r.waitFor(60*time.Second, "every event", hasIDs(ids...))
	dups := 0
	for _, c := range countByID(got) {
		dups += c - 1
	}
	if limit := closes * partitions * batch; dups > limit {
		t.Errorf("%d duplicate deliveries, want at most %d (the in-flight batches)", dups, limit)
	}
	if k := r.recordedKeys(ids); k != n {
		t.Errorf("processed_messages has %d of %d ids", k, n)
	}
}

// Pins issue 5's circuit breaker: while the dedup store is unreachable the
// breaker opens, readiness fails, nothing is published and no offset moves
// past what was marked before; once the store is back, every event arrives
// exactly once and the breaker closes.
func TestBridgeBreakerStopsWhileStoreDown(t *testing.T) {
	t.Parallel()
	const partitions = 2
	r := newRig(t, partitions, "#")
	u, err := url.Parse(r.db.URL)
	must(t, err)
	proxy := bookkeepertest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	pool, err := pgxpool.New(context.Background(), u.String())
	must(t, err)
	t.Cleanup(pool.Close)

	reg := prometheus.NewRegistry()
	cfg := r.config(reg)
	cfg.Store = bridge.NewPostgresStore(pool)
	cfg.BreakerTimeout = 300 * time.Millisecond
	cfg.OperationTimeout = 2 * time.Second
	b, err := bridge.New(cfg)
	must(t, err)
	r.run(b)

	var ids []uuid.UUID
	batch := func(from, count int) {
		evs := make([]event, count)
		for i := range evs {
			evs[i] = newEvent(t, typeCreated, fmt.Sprintf("order-%d", from+i), from+i, int32((from+i)%partitions))
			ids = append(ids, evs[i].env.EventID)
		}
		r.produce(evs...)
	}
	batch(0, 10)
	r.waitFor(30*time.Second, "the first 10", hasIDs(ids...))
	bookkeepertest.WaitFor(t, 30*time.Second, "offsets 5/5 committed", func() bool {
		c := r.committed()
		return c[0] == 5 && c[1] == 5
	})

	proxy.SetDown(true)
	batch(10, 20)
	bookkeepertest.WaitFor(t, 30*time.Second, "the breaker to open", func() bool {
		return metric(t, reg, "messagekit_bridge_breaker_state") == 2
	})
	if err := b.Check(context.Background()); !errors.Is(err, bridge.ErrBreakerOpen) {
		t.Errorf("Check while open = %v, want ErrBreakerOpen", err)
	}
	// Half-open probes fail too: let a few breaker timeouts pass.
	bookkeepertest.WaitFor(t, 30*time.Second, "three refused connections", func() bool { return proxy.Refused() >= 3 })
	if got := len(r.got()); got != 10 {
		t.Errorf("%d deliveries while the store was down, want 10", got)
	}
	if c := r.committed(); c[0] != 5 || c[1] != 5 {
		t.Errorf("committed offsets %v while the store was down, want [5 5]", c)
	}

	proxy.SetDown(false)
	r.waitFor(30*time.Second, "all 30", hasIDs(ids...))
	bookkeepertest.WaitFor(t, 10*time.Second, "the breaker to close", func() bool {
		return b.Check(context.Background()) == nil && metric(t, reg, "messagekit_bridge_breaker_state") == 0
	})
	got := r.got()
	for id, c := range countByID(got) {
		if c != 1 {
			t.Errorf("event %s delivered %d times, want once", id, c)
		}
	}
	if len(got) != 30 {
		t.Errorf("%d deliveries, want 30", len(got))
	}
}

// Pins BRIDGE_MAX_RATE: one limiter is shared by all partitions, so 400
// records over 2 partitions at 200/s (burst 20) take at least 1.9 s; with a
// limiter per partition they would take about 1 s.
func TestBridgeMaxRateIsShared(t *testing.T) {
	t.Parallel()
	const n = 400
	r := newRig(t, 2, "#")
	evs := make([]event, n)
	ids := make([]uuid.UUID, n)
	for i := range evs {
		evs[i] = newEvent(t, typeCreated, fmt.Sprintf("order-%d", i), i, int32(i%2))
		ids[i] = evs[i].env.EventID
	}
	r.produce(evs...)
	cfg := r.config(nil)
	cfg.MaxRate = 200
	start := time.Now()
	r.start(cfg)
	r.waitFor(30*time.Second, "every event", hasIDs(ids...))
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("%d records at 200/s took %v, want at least 1.5 s", n, d)
	}
}
