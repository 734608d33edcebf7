package adminapi_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// auditSums reads the admin_actions totals per action.
type auditSums struct {
	rows, matched, done, failed int
}

func (e *env) audit(t *testing.T, action string) auditSums {
	t.Helper()
	var s auditSums
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*), coalesce(sum(matched_count), 0),
		coalesce(sum(done_count), 0), coalesce(sum(failed_count), 0) FROM admin_actions WHERE action = $1`,
		action).Scan(&s.rows, &s.matched, &s.done, &s.failed); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConcurrentReplaysPublishOnce pins DESIGN.md §6's claim: 20 clients
// replaying single dead letters and 5 bulk replays, all at once over the
// same 1,000 dead letters, publish each exactly once (counted on the real
// queue, by message id); the losers answer 409 (single) or skip (bulk),
// and the audit rows add up to what the queue holds.
func TestConcurrentReplaysPublishOnce(t *testing.T) {
	t.Parallel()
	const n, singles, bulks, perSingle, bulkLimit = 1000, 20, 5, 250, 25
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b), func(c *adminapi.Config) { c.MaxBulkOperations = bulks })
	e.exec(t, `UPDATE dead_letters SET last_seen_at = now()`) // one instant: claims contend on the same rows
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("once"), nil)
	recordMany(t, e, q, n)
	var ids []int64
	rows, err := e.db.Pool.Query(testCtx(t), `SELECT id FROM dead_letters ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != n {
		t.Fatalf("%d dead letters recorded", len(ids))
	}

	var mu sync.Mutex
	status := map[int]int{}
	var bulkReplayed, bulkFailed int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range singles {
		wg.Go(func() {
			<-start
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for _, i := range r.Perm(n)[:perSingle] {
				res := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[i]), "")
				mu.Lock()
				status[res.status]++
				mu.Unlock()
			}
		})
	}
	// Small bulk replays, again and again, so that they interleave with
	// the single ones; they stop when one finds nothing left.
	bulkCalls := 0
	for range bulks {
		wg.Go(func() {
			<-start
			for {
				res := e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":%d}`, q, bulkLimit))
				var out struct {
					Replayed int `json:"replayed_count"`
					Failed   int `json:"failed_count"`
				}
				if res.status != http.StatusOK {
					t.Errorf("bulk replay: %d %s", res.status, res.body)
					return
				}
				res.decode(t, &out)
				mu.Lock()
				bulkCalls++
				bulkReplayed += out.Replayed
				bulkFailed += out.Failed
				mu.Unlock()
				if out.Replayed == 0 && out.Failed == 0 {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	// Every message once: the queue's depth, then each message id.
	testenv.WaitFor(t, 15*time.Second, "the queue to hold every replay", func() bool { return queueDepth(t, ch, q) >= n })
	time.Sleep(200 * time.Millisecond) // a duplicate would still be arriving
	depthSeen := queueDepth(t, ch, q)
	if depthSeen != n {
		t.Fatalf("queue holds %d messages, want %d", depthSeen, n)
	}
	seen := map[string]int{}
	for range n {
		d := getOne(t, ch, q)
		seen[d.MessageId]++
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("message %s arrived %d times", id, c)
		}
	}
	var pending int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FROM dead_letters
		WHERE status <> 'replayed' OR replay_count <> 1 OR claim_id IS NOT NULL`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || pending != 0 {
		t.Errorf("%d distinct messages, %d rows not replayed exactly once", len(seen), pending)
	}

	one, bulk := e.audit(t, adminapi.ActionReplayDeadLetter), e.audit(t, adminapi.ActionReplayDeadLetters)
	singleOK := status[http.StatusOK]
	t.Logf("single replays: %d requests: %d × 200, %d × 409; bulk replays: %d requests, %d replayed, %d failed; queue: %d messages, %d distinct; audit: single %+v, bulk %+v",
		singles*perSingle, singleOK, status[http.StatusConflict], bulkCalls, bulkReplayed, bulkFailed, depthSeen, len(seen), one, bulk)
	if singleOK+status[http.StatusConflict] != singles*perSingle {
		t.Errorf("single replay answers %v, want only 200 and 409", status)
	}
	if singleOK+bulkReplayed != n || bulkFailed != 0 {
		t.Errorf("answers add up to %d single + %d bulk replayed (%d failed), want %d", singleOK, bulkReplayed, bulkFailed, n)
	}
	if one.rows != singles*perSingle || one.done != singleOK || bulk.rows != bulkCalls || bulk.done != bulkReplayed ||
		one.done+bulk.done != n || bulk.matched != bulkReplayed {
		t.Errorf("audit: single %+v, bulk %+v; want %d and %d rows whose done add up to %d", one, bulk, singles*perSingle, bulks, n)
	}
}

// TestBulkReplayBrokerGoneMidway pins a bulk replay whose RabbitMQ
// connection the broker closes midway (rabbitmqctl close_connection, in
// the middle of the second page): what was confirmed is marked replayed
// and audited, the rest stays pending and unclaimed, and the answer gives
// both counts.
func TestBulkReplayBrokerGoneMidway(t *testing.T) {
	t.Parallel()
	const n = 3000
	b := testenv.RabbitMQ(t)
	pub := &midwayPublisher{t: t, b: b, name: "adminapi midway " + b.Name("conn")}
	e := newEnv(t, func(c *adminapi.Config) { c.Queues = pub })
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("midway"), nil)
	recordMany(t, e, q, n)

	r := e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":10000}`, q))
	var out struct {
		Replayed   int     `json:"replayed_count"`
		Failed     int     `json:"failed_count"`
		FirstError *string `json:"first_error"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("bulk replay: %d %s", r.status, r.body)
	}
	r.decode(t, &out)
	var replayed, pending, claimed int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FILTER (WHERE status = 'replayed'),
		count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE claim_id IS NOT NULL) FROM dead_letters`).
		Scan(&replayed, &pending, &claimed); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the confirmed replays in the queue", func() bool { return queueDepth(t, ch, q) >= replayed })
	depth := queueDepth(t, ch, q)
	a := e.audit(t, adminapi.ActionReplayDeadLetters)
	t.Logf("answer %s; rows: %d replayed, %d pending, %d claimed; queue %d; audit %+v", r.body, replayed, pending, claimed, depth, a)
	switch {
	case out.Replayed != 1500 || out.Failed != 500 || out.FirstError == nil:
		t.Errorf("answer %s: want 1500 replayed (page 1 and half of page 2), 500 failed, and the error", r.body)
	case replayed != out.Replayed || pending != n-out.Replayed || claimed != 0:
		t.Errorf("rows: %d replayed, %d pending, %d claimed; want %d, %d, 0", replayed, pending, claimed, out.Replayed, n-out.Replayed)
	case depth != out.Replayed:
		t.Errorf("queue holds %d, the answer says %d replayed", depth, out.Replayed)
	case a.rows != 1 || a.done != out.Replayed || a.failed != out.Failed || a.matched != 2000:
		t.Errorf("audit %+v does not match the answer %s (2000 claimed)", a, r.body)
	}
	var errText *string
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT error FROM admin_actions`).Scan(&errText); err != nil || errText == nil {
		t.Errorf("audit error %v, %v; want the first failure", errText, err)
	}
}

// midwayPublisher publishes on one connection that it never redials; in
// its second call, after half the messages were confirmed, it has the
// broker close that connection, so the other half fails.
type midwayPublisher struct {
	t     *testing.T
	b     *testenv.Broker
	name  string
	mu    sync.Mutex
	conn  *amqp.Connection
	calls int
}

func (p *midwayPublisher) PublishToQueues(ctx context.Context, msgs []adminapi.QueueMessage) []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	errs := make([]error, len(msgs))
	if p.conn == nil {
		props := amqp.NewConnectionProperties()
		props.SetClientConnectionName(p.name)
		conn, err := amqp.DialConfig(p.b.URL, amqp.Config{Properties: props})
		if err != nil {
			p.t.Fatal(err)
		}
		p.t.Cleanup(func() { _ = conn.Close() })
		p.conn = conn
	}
	ch, err := p.conn.Channel()
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if err := ch.Confirm(false); err != nil {
		p.t.Fatal(err)
	}
	publish := func(from, to int) {
		confirms := make([]*amqp.DeferredConfirmation, len(msgs))
		for i := from; i < to; i++ {
			confirms[i], errs[i] = ch.PublishWithDeferredConfirmWithContext(ctx, "", msgs[i].Queue, true, false, msgs[i].Msg)
		}
		for i := from; i < to; i++ {
			if confirms[i] == nil {
				continue
			}
			if ok, err := confirms[i].WaitContext(ctx); err != nil || !ok {
				errs[i] = fmt.Errorf("not confirmed: %v", err)
			}
		}
	}
	half := len(msgs)
	if p.calls == 2 {
		half = len(msgs) / 2
	}
	publish(0, half)
	if half < len(msgs) {
		if n := p.b.CloseConnections(p.t, p.name); n != 1 {
			p.t.Errorf("closed %d connections, want 1", n)
		}
		testenv.WaitFor(p.t, 10*time.Second, "the connection closed", p.conn.IsClosed)
		publish(half, len(msgs))
	}
	return errs
}
