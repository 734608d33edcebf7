package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/bookkeepertest"
	"github.com/firstunicorn/messagekit-go/internal/stack"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// TestOrder writes 20k events through the example producer from eight
// goroutines, which add the lines of each order concurrently: every event
// is consumed exactly once, and each order's events in the order they
// were written.
func TestOrder(t *testing.T) {
	const orders, lines = 2000, 9 // 20k events
	r := newRig(t, rigOptions{})
	load := &stack.Load{Addr: r.p.Producer.Addr, Workers: 8}
	if err := load.Run(context.Background(), orders, lines); err != nil {
		t.Fatal(err)
	}
	sum := r.waitSummary(3*time.Minute, "every event consumed", func(s stack.Summary) bool {
		return s.Written == orders*(1+lines) && s.Missing == 0
	})
	if sum.ConsumedOnce != orders*(1+lines) || sum.ConsumedTwice != 0 {
		t.Errorf("summary:\n%s", sum)
	}
	if inversions, checked := orderInversions(t, r); inversions != 0 || checked != orders*(1+lines) {
		t.Errorf("%d of %d events consumed before an earlier event of their order", inversions, checked)
	}
}

// TestFaults writes 10k events through the example producer from several
// goroutines while the bridge and then the bookkeeper are killed with
// SIGKILL at random moments and restarted, and RabbitMQ closes every
// connection of the pipeline. It checks what DESIGN.md §2 promises: no
// event lost, none handled twice by the dedup consumer; the rejected
// events are dead letters exactly once, and a replay through the admin API
// gets them consumed and clears their outbox flags.
func TestFaults(t *testing.T) {
	const orders, lines = 1000, 9 // 10k events
	r := newRig(t, rigOptions{rejectFraction: 0.01, env: traceEnv})
	ctx := context.Background()

	// Three records that are not envelopes: the bridge dead-letters them
	// to its Kafka DLQ topic, and the bookkeeper stores them from there.
	for i, v := range []string{"not json", `{"eventId":"nope"}`, `[]`} {
		res := r.kcl.ProduceSync(ctx, &kgo.Record{Topic: r.names.Topic, Key: []byte{byte(i)}, Value: []byte(v)})
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	load := &stack.Load{Addr: r.p.Producer.Addr, Workers: 8}
	loadErr := make(chan error, 1)
	go func() { loadErr <- load.Run(ctx, orders, lines) }()

	// The faults, each once the load has written a share of the events,
	// at a random moment within that share.
	total := int64(orders * (1 + lines))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	at := func(lo, hi float64) {
		mark := int64((lo + rng.Float64()*(hi-lo)) * float64(total))
		testenv.WaitFor(t, 3*time.Minute, "the load to pass its mark", func() bool { return load.Written.Load() >= mark })
	}
	crash := func(proc *stack.Proc) {
		if err := proc.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		r.restart(proc)
		t.Logf("%s killed and restarted at %d events written", proc.Name, load.Written.Load())
	}
	at(0.15, 0.3)
	crash(r.p.Bridge)
	at(0.4, 0.55)
	crash(r.p.Bookkeeper)

	at(0.6, 0.75)
	closed := r.broker.CloseConnections(t, r.names.ConnPrefix)
	t.Logf("RabbitMQ closed %d connections at %d events written", closed, load.Written.Load())
	if closed < 3 { // bridge, bookkeeper, consumer (the admin API connects for replays only)
		t.Errorf("closed %d connections, want at least 3", closed)
	}

	if err := <-loadErr; err != nil {
		t.Fatal(err)
	}
	if got := load.Written.Load(); got != total {
		t.Fatalf("the producer accepted %d events, want %d", got, total)
	}
	sum := r.waitSummary(3*time.Minute, "every event consumed or dead-lettered", func(s stack.Summary) bool {
		return s.Written == total && s.Missing == 0
	})
	t.Logf("before the replay:\n%s", sum)
	if sum.ConsumedTwice != 0 {
		t.Errorf("%d events handled more than once", sum.ConsumedTwice)
	}
	if sum.Rejected == 0 || sum.DeadLettered == 0 {
		t.Fatalf("no event was rejected and dead-lettered: %+v", sum)
	}
	if inversions, checked := orderInversions(t, r); inversions != 0 {
		t.Errorf("%d of %d events handled before an earlier line of their order (the trace above follows them)", inversions, checked)
	}
	checkDeadLetters(t, r)

	// The replay the README documents, for the consumer's dead letters.
	var replay struct {
		Count int    `json:"replayed_count"`
		ID    string `json:"replay_id"`
	}
	body := `{"status":"pending","source":"rabbitmq","limit":10000}`
	if code := r.admin(http.MethodPost, "/api/v1/dead-letters/replay", body, &replay); code != http.StatusOK || replay.Count == 0 {
		t.Fatalf("bulk replay = %d %+v", code, replay)
	}
	sum = r.waitSummary(time.Minute, "the replayed events consumed", func(s stack.Summary) bool {
		return s.ConsumedOnce == total
	})
	t.Logf("after replaying %d dead letters:\n%s", replay.Count, sum)
	if sum.ConsumedTwice != 0 || sum.DeadLettered != 0 || sum.Missing != 0 {
		t.Errorf("after the replay: %+v", sum)
	}
	testenv.WaitFor(t, 30*time.Second, "outbox failed flags cleared", func() bool {
		s, err := r.obs.Summary(ctx)
		return err == nil && s.OutboxFailed == 0
	})
	var stillPending int
	if err := r.db.Pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE source = 'rabbitmq' AND status = 'pending'`).Scan(&stillPending); err != nil {
		t.Fatal(err)
	}
	if stillPending != 0 {
		t.Errorf("%d RabbitMQ dead letters still pending after the replay", stillPending)
	}
}

// orderInversions counts the events the consumer accepted on first
// delivery after a later event of the same order (created, then lines 1,
// 2, …), logging the first few, and how many events it checked.
func orderInversions(t *testing.T, r *rig) (inversions, checked int) {
	t.Helper()
	rows, err := r.db.Pool.Query(context.Background(), `
SELECT f.order_id, f.line_no, f.event_id, f.seq, f.consumed_at FROM fulfilment_log f
WHERE NOT EXISTS (SELECT 1 FROM fulfilment_rejections x WHERE x.event_id = f.event_id)
ORDER BY f.seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type seen struct {
		line  int
		desc  string
		event string
	}
	last := map[string]seen{}
	for rows.Next() {
		var order, event string
		var line int
		var seq int64
		var at time.Time
		if err := rows.Scan(&order, &line, &event, &seq, &at); err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("line %d (event %s, seq %d, at %s)", line, event, seq, at.Format(time.RFC3339Nano))
		if prev, ok := last[order]; ok && line <= prev.line {
			if inversions++; inversions <= 5 {
				t.Logf("order %s: %s consumed after %s", order, desc, prev.desc)
				traceEvents(t, r, prev.event, event)
			}
		}
		last[order] = seen{line, desc, event}
		checked++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return inversions, checked
}

// checkDeadLetters: each rejected event is one pending RabbitMQ dead
// letter, its outbox row is flagged failed, and the three poison records
// are Kafka dead letters.
func checkDeadLetters(t *testing.T, r *rig) {
	t.Helper()
	ctx := context.Background()
	var rejected, withLetter, letters, distinct, failed int
	err := r.db.Pool.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM fulfilment_rejections),
  (SELECT count(*) FROM fulfilment_rejections x WHERE EXISTS
      (SELECT 1 FROM dead_letters d WHERE d.event_id = x.event_id AND d.source = 'rabbitmq')),
  (SELECT count(*) FROM dead_letters WHERE source = 'rabbitmq'),
  (SELECT count(DISTINCT event_id) FROM dead_letters WHERE source = 'rabbitmq'),
  (SELECT count(*) FROM outbox_events o WHERE o.failed AND EXISTS
      (SELECT 1 FROM fulfilment_rejections x WHERE x.event_id = o.event_id))`).
		Scan(&rejected, &withLetter, &letters, &distinct, &failed)
	if err != nil {
		t.Fatal(err)
	}
	if withLetter != rejected {
		t.Errorf("%d of %d rejected events have a dead letter", withLetter, rejected)
	}
	if letters != distinct {
		t.Errorf("%d RabbitMQ dead letters for %d events: one was stored twice", letters, distinct)
	}
	testenv.WaitFor(t, 30*time.Second, "rejected events' outbox rows flagged failed", func() bool {
		_ = r.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_events o WHERE o.failed AND EXISTS
      (SELECT 1 FROM fulfilment_rejections x WHERE x.event_id = o.event_id)`).Scan(&failed)
		return failed == rejected
	})
	testenv.WaitFor(t, 30*time.Second, "the poison records stored as Kafka dead letters", func() bool {
		var n int
		_ = r.db.Pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE source = 'kafka'`).Scan(&n)
		return n == 3
	})
}

// TestReadiness: each process's /readyz turns 503 while its database is
// unreachable and 200 again after, without a restart.
func TestReadiness(t *testing.T) {
	var proxy *bookkeepertest.Proxy
	r := newRig(t, rigOptions{databaseURL: func(db *testenv.Database) string {
		host := strings.SplitN(strings.SplitN(strings.TrimPrefix(db.URL, "postgres://"), "/", 2)[0], "@", 2)
		backend := host[len(host)-1]
		proxy = bookkeepertest.NewProxy(t, backend)
		return strings.Replace(db.URL, backend, proxy.Addr(), 1)
	}})
	ctx := context.Background()
	wait := func(want int) {
		var wg sync.WaitGroup
		for _, proc := range r.p.All() {
			wg.Go(func() {
				deadline := time.Now().Add(45 * time.Second)
				for {
					code, body := proc.Ready(ctx)
					if code == want {
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("%s /readyz = %d %s, want %d", proc.Name, code, body, want)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			})
		}
		wg.Wait()
	}
	proxy.SetDown(true)
	wait(http.StatusServiceUnavailable)
	proxy.SetDown(false)
	wait(http.StatusOK)
	for _, proc := range r.p.All() {
		if !proc.Running() {
			t.Errorf("%s exited while its database was down", proc.Name)
		}
	}
}

// TestGracefulShutdown: after SIGTERM each process exits 0 within its
// shutdown timeout, with its Kafka offsets committed: a restarted bridge
// re-delivers nothing already confirmed.
func TestGracefulShutdown(t *testing.T) {
	r := newRig(t, rigOptions{rejectFraction: 0.05})
	ctx := context.Background()
	// Poison: the bridge's DLQ topic gets them, and the bookkeeper. (Their
	// bodies differ: the bookkeeper stores identical ones as one.)
	for i := range 2 {
		res := r.kcl.ProduceSync(ctx, &kgo.Record{Topic: r.names.Topic, Key: []byte{byte(i)}, Value: []byte("not json " + strconv.Itoa(i))})
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	load := &stack.Load{Addr: r.p.Producer.Addr, Workers: 4}
	if err := load.Run(ctx, 200, 4); err != nil {
		t.Fatal(err)
	}
	r.waitSummary(time.Minute, "every event consumed or dead-lettered", func(s stack.Summary) bool {
		return s.Written == 1000 && s.Missing == 0 && s.DeadLettered > 0
	})
	testenv.WaitFor(t, 30*time.Second, "the bookkeeper stored the poison records", func() bool {
		var n int
		_ = r.db.Pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE source = 'kafka'`).Scan(&n)
		return n == 2
	})

	// What each handled before the stop: after a restart, these stay 0.
	handled := []struct {
		proc *stack.Proc
		name string
	}{
		{r.p.Bridge, "messagekit_bridge_records_consumed_total"},
		{r.p.Bridge, "messagekit_bridge_published_total"},
		{r.p.Bookkeeper, "messagekit_bookkeeper_dead_letters_total"},
	}
	for _, m := range handled {
		if v, err := m.proc.Metric(ctx, m.name); err != nil || v == 0 {
			t.Fatalf("%s: %s = %v (%v), want > 0 before the stop", m.proc.Name, m.name, v, err)
		}
	}

	for _, res := range r.p.Stop(25 * time.Second) { // SHUTDOWN_TIMEOUT is 20s
		if res.Err != nil || res.Took > 20*time.Second {
			t.Errorf("%s: exit %v after %s, want exit 0 within 20s", res.Proc.Name, res.Err, res.Took)
		}
	}
	for _, g := range []struct {
		group, topic string
		min          int64
	}{
		{r.names.BridgeGroup, r.names.Topic, 1002},
		{r.names.BookkeeperGroup, r.names.DLQTopic, 2},
	} {
		committed, end := r.committed(g.group, g.topic)
		if committed != end || end < g.min {
			t.Errorf("group %s committed %d of %d records of %s, want all of at least %d", g.group, committed, end, g.topic, g.min)
		}
	}

	// Restarted, the bridge and the bookkeeper find nothing to handle again.
	r.restart(r.p.Bridge)
	r.restart(r.p.Bookkeeper)
	time.Sleep(3 * time.Second)
	for _, m := range handled {
		v, err := m.proc.Metric(ctx, m.name)
		if err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			t.Errorf("restarted %s: %s = %v, want 0", m.proc.Name, m.name, v)
		}
	}
}

// closeRoundsVariable sets how many times TestClosedConnections makes
// RabbitMQ close the pipeline's connections.
const closeRoundsVariable = "E2E_CLOSE_ROUNDS"

// TestClosedConnections: while the producer writes without pause, RabbitMQ
// closes every connection of the pipeline again and again (three times by
// default, E2E_CLOSE_ROUNDS), at random moments drawn from a printed seed,
// so that closes land during the bridge's publish rounds, its catch-up
// after a reconnection and the consumer's batches. Every order's lines
// are handled in line order, nothing is lost or handled twice.
func TestClosedConnections(t *testing.T) {
	rounds := 3
	if v := os.Getenv(closeRoundsVariable); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", closeRoundsVariable, v)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	r := newRig(t, rigOptions{rejectFraction: 0.01, env: traceEnv})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	load := &stack.Load{Addr: r.p.Producer.Addr, Workers: 8, Rate: 200}
	loadErr := make(chan error, 1)
	go func() { loadErr <- load.Run(ctx, -1, 9) }()
	closed := 0
	for range rounds {
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		closed += r.broker.CloseConnections(t, r.names.ConnPrefix)
	}
	stop()
	if err := <-loadErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds: RabbitMQ closed %d connections while %d events were written", rounds, closed, load.Written.Load())
	sum := r.waitSummary(3*time.Minute, "every event consumed or dead-lettered", func(s stack.Summary) bool {
		return s.Written >= load.Written.Load() && s.Missing == 0
	})
	if sum.ConsumedTwice != 0 {
		t.Errorf("%d events handled more than once", sum.ConsumedTwice)
	}
	if inversions, checked := orderInversions(t, r); inversions != 0 {
		t.Errorf("%d of %d events handled before an earlier line of their order", inversions, checked)
	}
}
