package amqpdlq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/amqpdlq"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/bookkeepertest"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// rig is one test's broker names, database and consumer settings.
type rig struct {
	*bookkeepertest.Env
	broker   *testenv.Broker
	ch       *amqp.Channel
	dlx, dlq string
	connName string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	b := testenv.RabbitMQ(t)
	r := &rig{Env: bookkeepertest.NewEnv(t), broker: b, ch: b.Channel(t), dlx: b.Name("dlx"), dlq: b.Name("dlq"),
		connName: testenv.ConnectionName(t)}
	return r
}

func (r *rig) config(rec amqpdlq.Recorder) amqpdlq.Config {
	if rec == nil {
		rec = r.Recorder
	}
	return amqpdlq.Config{URL: r.broker.URL, DLX: r.dlx, Queues: []string{r.dlq}, ConnectionName: r.connName,
		Recorder: rec, Logger: r.Logs.Logger(), Metrics: r.Recorder.Metrics(),
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
}

// start runs a consumer with cfg and waits until it consumes.
func (r *rig) start(t *testing.T, cfg amqpdlq.Config) (*amqpdlq.Consumer, func()) {
	t.Helper()
	c, err := amqpdlq.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := bookkeepertest.Run(t, c)
	bookkeepertest.WaitFor(t, 20*time.Second, "consumer ready", func() bool { return c.Check(context.Background()) == nil })
	return c, stop
}

func (r *rig) publish(t *testing.T, exchange, key string, p amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.ch.PublishWithContext(ctx, exchange, key, false, false, p); err != nil {
		t.Fatal(err)
	}
}

// ready returns how many messages wait in queue (not counting unacked ones).
func (r *rig) ready(t *testing.T, queue string) int {
	t.Helper()
	q, err := r.broker.Channel(t).QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// envelopeFor is a valid envelope of event id.
func envelopeFor(id uuid.UUID, typ string) []byte {
	return []byte(fmt.Sprintf(`{"eventId":%q,"eventType":%q,"aggregateId":"order-7","occurredAt":"2026-11-26T10:00:00Z",`+
		`"source":"orders","data":{}}`, id, typ))
}

func addOutbox(t *testing.T, e *bookkeepertest.Env, id uuid.UUID) {
	t.Helper()
	if _, err := e.DB.Pool.Exec(context.Background(), `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
		VALUES ($1, 'orders.order.created', 'order-7', '{}', now())`, id); err != nil {
		t.Fatal(err)
	}
}

type row struct {
	ID           int64
	Origin       string
	Reason       string
	ErrorMessage string
	DeathCount   int
	OutboxFound  bool
	Detail       map[string]any
	BodyLen      int
}

func rowOf(t *testing.T, e *bookkeepertest.Env, where string, args ...any) row {
	t.Helper()
	var r row
	var detail []byte
	err := e.DB.Pool.QueryRow(context.Background(), `SELECT id, origin, reason, coalesce(error_message, ''), death_count,
		outbox_found, origin_detail, length(body) FROM dead_letters WHERE `+where, args...).
		Scan(&r.ID, &r.Origin, &r.Reason, &r.ErrorMessage, &r.DeathCount, &r.OutboxFound, &detail, &r.BodyLen)
	if err != nil {
		t.Fatalf("dead letter where %s %v: %v", where, args, err)
	}
	if err := json.Unmarshal(detail, &r.Detail); err != nil {
		t.Fatal(err)
	}
	return r
}

type outboxState struct {
	Failed   bool
	Message  string
	Attempts int
}

func outboxOf(t *testing.T, e *bookkeepertest.Env, id uuid.UUID) outboxState {
	t.Helper()
	var o outboxState
	if err := e.DB.Pool.QueryRow(context.Background(), `SELECT failed, coalesce(error_message, ''), attempt_count
		FROM outbox_events WHERE event_id = $1`, id).Scan(&o.Failed, &o.Message, &o.Attempts); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestBrokerDeadLettering pins the RabbitMQ side end to end with real
// dead-lettering by the broker: consumer queues with the DLX reject (nack
// requeue=false), expire (per-message TTL), overflow (x-max-length) and,
// for a quorum queue, exceed the delivery limit, and each lands in dead_letters with its reason, queue, routing
// keys and x-death count, flagging its outbox row; the same message
// dead-lettered twice is one row with death_count 2; every DLQ message is
// acknowledged.
func TestBrokerDeadLettering(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, stop := r.start(t, r.config(nil))

	events := r.broker.Name("events")
	if err := r.ch.ExchangeDeclare(events, amqp.ExchangeTopic, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	type kase struct {
		queue, key, reason, message string
		args                        amqp.Table
		id                          uuid.UUID
	}
	cases := []*kase{
		{queue: r.broker.Name("orders-reject"), key: "orders.order.rejected", reason: "rejected"},
		{queue: r.broker.Name("orders-ttl"), key: "orders.order.expired", reason: "expired"},
		{queue: r.broker.Name("orders-maxlen"), key: "orders.order.overflowed", reason: "maxlen",
			args: amqp.Table{"x-max-length": int32(1)}},
		{queue: r.broker.Name("orders-limit"), key: "orders.order.retried", reason: "delivery_limit",
			args: amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int32(0)}},
	}
	for _, c := range cases {
		args := amqp.Table{"x-dead-letter-exchange": r.dlx}
		for k, v := range c.args {
			args[k] = v
		}
		durable := c.args["x-queue-type"] == "quorum" // quorum queues must be durable
		if _, err := r.ch.QueueDeclare(c.queue, durable, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		if err := r.ch.QueueBind(c.queue, c.key, events, false, nil); err != nil {
			t.Fatal(err)
		}
		c.id = uuid.New()
		c.message = amqpdlq.ErrorMessage(c.reason, c.queue)
		addOutbox(t, r.Env, c.id)
	}
	msg := func(id uuid.UUID, key string) amqp.Publishing {
		return amqp.Publishing{MessageId: id.String(), Type: key, ContentType: "application/json",
			DeliveryMode: amqp.Persistent, Body: envelopeFor(id, key)}
	}
	get := func(c *kase) amqp.Delivery {
		var d amqp.Delivery
		bookkeepertest.WaitFor(t, 10*time.Second, "message to reject", func() bool {
			var ok bool
			var err error
			d, ok, err = r.ch.Get(c.queue, false)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		return d
	}
	reject := func(c *kase) {
		r.publish(t, events, c.key, msg(c.id, c.key))
		if err := get(c).Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	reject(cases[0])
	// Requeued once past a delivery limit of 0: the quorum queue dead-letters it.
	r.publish(t, events, cases[3].key, msg(cases[3].id, cases[3].key))
	if err := get(cases[3]).Nack(false, true); err != nil {
		t.Fatal(err)
	}
	expiring := msg(cases[1].id, cases[1].key)
	expiring.Expiration = "1"
	r.publish(t, events, cases[1].key, expiring)
	r.publish(t, events, cases[2].key, msg(cases[2].id, cases[2].key))
	r.publish(t, events, cases[2].key, msg(uuid.New(), cases[2].key)) // pushes the first out

	r.WaitRows(t, len(cases), 20*time.Second)
	for _, c := range cases {
		got := rowOf(t, r.Env, "event_id = $1", c.id)
		keys, _ := got.Detail["routing_keys"].([]any)
		if got.Origin != c.queue || got.Reason != c.reason || got.ErrorMessage != c.message || got.DeathCount != 1 ||
			!got.OutboxFound || got.Detail["count"] != 1.0 || got.Detail["exchange"] != events ||
			len(keys) != 1 || keys[0] != c.key || got.Detail["time"] == nil {
			t.Errorf("%s: row = %+v", c.reason, got)
		}
		if o := outboxOf(t, r.Env, c.id); !o.Failed || o.Message != c.message || o.Attempts != 1 {
			t.Errorf("%s: outbox row = %+v", c.reason, o)
		}
	}

	// The same message rejected again: one row, counted twice.
	reject(cases[0])
	bookkeepertest.WaitFor(t, 20*time.Second, "second death", func() bool {
		return rowOf(t, r.Env, "event_id = $1", cases[0].id).DeathCount == 2
	})
	if n := r.Count(t); n != len(cases) {
		t.Fatalf("%d rows after the second death, want %d", n, len(cases))
	}
	if o := outboxOf(t, r.Env, cases[0].id); o.Attempts != 2 {
		t.Errorf("outbox attempts after the second death = %d, want 2", o.Attempts)
	}
	stop()
	if n := r.ready(t, r.dlq); n != 0 {
		t.Fatalf("%d DLQ messages left unacknowledged", n)
	}
}

// xdeath is an x-death header as RabbitMQ writes it, for messages a test
// publishes straight into the DLQ.
func xdeath(queue, reason string) amqp.Table {
	return amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": reason, "queue": queue,
		"time": time.Now().Truncate(time.Second), "exchange": "events", "routing-keys": []any{"orders.order.created"}}},
		"x-first-death-queue": queue, "x-first-death-reason": reason, "x-first-death-exchange": "events"}
}

// TestMalformedStoredRaw pins that nothing is dropped or redelivered
// forever: messages without headers, with a binary body, with x-death of
// the wrong types and with a 10 MB body are stored (raw, with the best
// reason) and acknowledged, and consumption goes on.
func TestMalformedStoredRaw(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, stop := r.start(t, r.config(nil))
	withBodyID := uuid.New()
	huge := make([]byte, 10<<20)
	for i := range huge {
		huge[i] = byte(i)
	}
	msgs := []amqp.Publishing{
		{Body: envelopeFor(withBodyID, "orders.order.created")},
		{Body: []byte{0, 0xff, 0xfe, 0x80}},
		{Headers: amqp.Table{"x-death": "garbage"}, Body: []byte("x")},
		{Headers: amqp.Table{"x-death": []any{amqp.Table{"queue": "orders.q", "reason": "rejected", "count": "two"}}}, Body: []byte("y")},
		{Headers: xdeath("orders.q", "rejected"), MessageId: uuid.NewString(), Body: huge},
		{Headers: xdeath("orders.q", "expired"), MessageId: uuid.NewString(), Body: []byte("after")},
	}
	for _, m := range msgs {
		r.publish(t, "", r.dlq, m)
	}
	r.WaitRows(t, len(msgs), 30*time.Second)
	if got := rowOf(t, r.Env, "event_id = $1", withBodyID); got.Reason != "unparseable" || got.Origin != r.dlq ||
		!strings.Contains(got.ErrorMessage, "no x-death header") {
		t.Errorf("no headers: %+v", got)
	}
	var unparseable, large int
	if err := r.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE reason = 'unparseable'),
		count(*) FILTER (WHERE length(body) = $1) FROM dead_letters`, len(huge)).Scan(&unparseable, &large); err != nil {
		t.Fatal(err)
	}
	if unparseable != 4 || large != 1 {
		t.Errorf("%d unparseable rows and %d of 10 MB, want 4 and 1", unparseable, large)
	}
	if got := rowOf(t, r.Env, "body = 'after'"); got.Reason != "expired" {
		t.Errorf("message after the malformed ones: %+v", got)
	}
	if v := r.Metric(t, "messagekit_bookkeeper_processing_errors_total", map[string]string{"source": "rabbitmq", "kind": "unparseable"}); v != 4 {
		t.Errorf("unparseable errors counted = %v, want 4", v)
	}
	stop()
	if n := r.ready(t, r.dlq); n != 0 {
		t.Fatalf("%d DLQ messages left unacknowledged", n)
	}
}

// TestPostgresDownPausesAndResumes pins §2/§9 for the bookkeeper: while
// PostgreSQL is unreachable nothing is stored and nothing acknowledged, the
// breaker opens (readiness says so) and the database is not hammered; when
// it comes back every message is stored once and acknowledged.
func TestPostgresDownPausesAndResumes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, stop := r.start(t, r.config(nil))
	r.Proxy.SetDown(true)
	const n = 5
	for range n {
		r.publish(t, "", r.dlq, amqp.Publishing{Headers: xdeath("orders.q", "rejected"), MessageId: uuid.NewString(), Body: []byte("{}")})
	}
	bookkeepertest.WaitFor(t, 20*time.Second, "open breaker", func() bool {
		return r.Recorder.Check(context.Background()) != nil
	})
	refused := r.Proxy.Refused()
	time.Sleep(time.Second) // observing the pause: nothing to poll for
	if tries := r.Proxy.Refused() - refused; tries > 20 {
		t.Errorf("%d connection attempts in 1s with the breaker open (300ms timeout): a busy loop", tries)
	}
	if got := r.Count(t); got != 0 {
		t.Fatalf("%d rows while the database was down", got)
	}
	r.Proxy.SetDown(false)
	r.WaitRows(t, n, 20*time.Second)
	bookkeepertest.WaitFor(t, 5*time.Second, "closed breaker", func() bool {
		return r.Recorder.Check(context.Background()) == nil
	})
	stop()
	if left := r.ready(t, r.dlq); left != 0 {
		t.Fatalf("%d DLQ messages left unacknowledged", left)
	}
	if got := r.Count(t); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
}

// hookRecorder runs before and after the real Recorder.
type hookRecorder struct {
	inner  amqpdlq.Recorder
	before func(ctx context.Context) error
	after  func()
}

func (h *hookRecorder) Record(ctx context.Context, s deadletter.Source, ls []bookkeeper.Letter) ([]deadletter.Recorded, error) {
	if h.before != nil {
		if err := h.before(ctx); err != nil {
			return nil, err
		}
	}
	res, err := h.inner.Record(ctx, s, ls)
	if h.after != nil {
		h.after()
	}
	return res, err
}

// TestCrashRedelivery pins the crash cases: a consumer whose connection
// dies between receipt and commit leaves the message to be redelivered and
// stored once; one whose connection dies after the commit but before the
// ack has its redelivery recognised, so the dead letter is not counted
// twice and the outbox row not flagged twice.
func TestCrashRedelivery(t *testing.T) {
	t.Parallel()
	t.Run("before commit", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		received := make(chan struct{})
		var once sync.Once
		first := r.config(&hookRecorder{inner: r.Recorder, before: func(ctx context.Context) error {
			once.Do(func() { close(received) })
			<-ctx.Done() // never commits
			return ctx.Err()
		}})
		first.ConnectionName = r.connName + "-first"
		_, stopFirst := r.start(t, first)
		id := uuid.New()
		addOutbox(t, r.Env, id)
		r.publish(t, "", r.dlq, amqp.Publishing{Headers: xdeath("orders.q", "rejected"), MessageId: id.String(), Body: []byte("{}")})
		<-received
		if n := r.broker.CloseConnections(t, first.ConnectionName); n != 1 {
			t.Fatalf("closed %d connections, want 1", n)
		}
		stopFirst()

		r.start(t, r.config(nil))
		r.WaitRows(t, 1, 20*time.Second)
		got := rowOf(t, r.Env, "event_id = $1", id)
		if got.DeathCount != 1 || got.Detail["redelivered"] != true {
			t.Fatalf("row = %+v, want one death of a redelivered message", got)
		}
		if o := outboxOf(t, r.Env, id); o.Attempts != 1 {
			t.Fatalf("outbox attempts = %d, want 1", o.Attempts)
		}
	})
	t.Run("after commit", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		committed, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		first := r.config(&hookRecorder{inner: r.Recorder, after: func() {
			once.Do(func() { close(committed) })
			<-release // the "crash" happens here, before the ack
		}})
		first.ConnectionName = r.connName + "-first"
		_, stopFirst := r.start(t, first)
		id := uuid.New()
		addOutbox(t, r.Env, id)
		r.publish(t, "", r.dlq, amqp.Publishing{Headers: xdeath("orders.q", "rejected"), MessageId: id.String(), Body: []byte("{}")})
		<-committed
		if n := r.broker.CloseConnections(t, first.ConnectionName); n != 1 {
			t.Fatalf("closed %d connections, want 1", n)
		}
		close(release)
		stopFirst()

		r.start(t, r.config(nil))
		bookkeepertest.WaitFor(t, 20*time.Second, "redelivery recognised", func() bool {
			return r.Metric(t, "messagekit_bookkeeper_duplicate_deliveries_total", nil) == 1
		})
		if got := rowOf(t, r.Env, "event_id = $1", id); got.DeathCount != 1 {
			t.Fatalf("death_count = %d after a redelivery of a committed message, want 1", got.DeathCount)
		}
		if o := outboxOf(t, r.Env, id); o.Attempts != 1 {
			t.Fatalf("outbox attempts = %d, want 1", o.Attempts)
		}
		if n := r.Count(t); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
	})
}

// TestReconnect pins that the consumer survives the loss of its
// connection: it reports not ready, reconnects with backoff, and consumes
// again.
func TestReconnect(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c, _ := r.start(t, r.config(nil))
	r.publish(t, "", r.dlq, amqp.Publishing{Headers: xdeath("orders.q", "rejected"), Body: []byte("one")})
	r.WaitRows(t, 1, 20*time.Second)
	if n := r.broker.CloseConnections(t, r.connName); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	r.publish(t, "", r.dlq, amqp.Publishing{Headers: xdeath("orders.q", "rejected"), Body: []byte("two")})
	r.WaitRows(t, 2, 20*time.Second)
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("Check after reconnecting = %v", err)
	}
	if !strings.Contains(r.Logs.String(), "rabbitmq dead-letter consumer disconnected, reconnecting") {
		t.Error("the disconnection was not logged")
	}
}

// TestDeclare pins the topology: by default the DLX (durable topic) and
// the DLQ (durable) are declared and bound with every binding key; with
// SkipDeclare nothing is declared, readiness says why consuming fails, and
// consuming starts once the queue exists.
func TestDeclare(t *testing.T) {
	t.Parallel()
	t.Run("declared", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		cfg := r.config(nil)
		cfg.Bindings = []string{"orders.#", "billing.#"}
		r.start(t, cfg)
		if err := r.broker.Channel(t).ExchangeDeclarePassive(r.dlx, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			t.Fatalf("DLX: %v", err)
		}
		for _, key := range []string{"orders.order.created", "billing.invoice.paid", "shipping.parcel.sent"} {
			r.publish(t, r.dlx, key, amqp.Publishing{Headers: xdeath("q", "rejected"), Body: []byte(key)})
		}
		r.WaitRows(t, 2, 20*time.Second)
		var n int
		if err := r.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM dead_letters WHERE body = 'shipping.parcel.sent'`).
			Scan(&n); err != nil || n != 0 {
			t.Fatalf("a message with no matching binding was stored (%d, %v)", n, err)
		}
	})
	t.Run("skipped", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		cfg := r.config(nil)
		cfg.SkipDeclare = true
		c, err := amqpdlq.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		bookkeepertest.Run(t, c)
		bookkeepertest.WaitFor(t, 20*time.Second, "NOT_FOUND in readiness", func() bool {
			err := c.Check(context.Background())
			return err != nil && strings.Contains(err.Error(), "NOT_FOUND")
		})
		if err := r.ch.ExchangeDeclarePassive(r.dlx, amqp.ExchangeTopic, true, false, false, false, nil); err == nil {
			t.Fatal("the DLX was declared although SkipDeclare is set")
		}
		r.ch = r.broker.Channel(t) // the passive declare closed the channel
		if _, err := r.ch.QueueDeclare(r.dlq, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		bookkeepertest.WaitFor(t, 20*time.Second, "consumer ready", func() bool { return c.Check(context.Background()) == nil })
		r.publish(t, "", r.dlq, amqp.Publishing{Headers: xdeath("q", "rejected"), Body: []byte("x")})
		r.WaitRows(t, 1, 20*time.Second)
	})
}

func TestNewValidates(t *testing.T) {
	rec := &hookRecorder{}
	for _, cfg := range []amqpdlq.Config{
		{Recorder: rec},
		{URL: "amqp://x"},
		{URL: "amqp://x", Recorder: rec, Queues: []string{"a", ""}},
	} {
		if _, err := amqpdlq.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	c, err := amqpdlq.New(amqpdlq.Config{URL: "amqp://x", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Check before Run = %v, want not connected", err)
	}
}
