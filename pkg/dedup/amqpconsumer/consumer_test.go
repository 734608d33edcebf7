package amqpconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

// Poison (no message_id, a malformed body, an unknown type, a message_id
// that disagrees with the eventId, a permanent handler error, a transient
// error that outlasts the retries) is dead-lettered to the DLX with x-death
// reason "rejected", the why in the log and metrics, and the good messages
// around it are handled once each: the queue keeps flowing.
func TestDeadLettersKeepQueueFlowing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := func(invoice, fail string) amqp.Publishing {
		m, _ := message(t, invoicePaid, payment{Invoice: invoice, Fail: fail})
		return m
	}
	noID := good("no-id", "")
	noID.MessageId = ""
	malformed := good("malformed", "")
	malformed.Body = []byte(`{"eventId": "truncated`)
	unknown, _ := message(t, invoiceVoided, payment{Invoice: "voided"})
	mismatch := good("mismatch", "")
	mismatch.MessageId = uuid.NewString()

	poison := map[string]contracts.Stage{ // message_id → why
		"":                    contracts.StageValidate,
		malformed.MessageId:   contracts.StageDecode,
		unknown.MessageId:     contracts.StageTaskPut,
		mismatch.MessageId:    contracts.StageValidate,
		"permanent":           contracts.StageTaskPut,
		"transient-exhausted": contracts.StageTaskPut,
	}
	permanent, transient := good("refused", "permanent"), good("busy", "transient")
	poison[permanent.MessageId], poison[transient.MessageId] = poison["permanent"], poison["transient-exhausted"]
	delete(poison, "permanent")
	delete(poison, "transient-exhausted")

	f.publish(good("a", ""), noID, malformed, unknown, good("b", ""), mismatch,
		permanent, transient, good("flaky", "once"), good("c", ""))

	logs := &syncBuffer{}
	cfg := f.config()
	cfg.Prefetch, cfg.MaxBatch = 10, 5
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	r := f.start(cfg)

	testenv.WaitFor(t, 30*time.Second, "6 dead letters and 4 handled events", func() bool {
		n, _ := f.effects()
		return f.ready(f.dlq) == len(poison) && n == 4
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if _, twice := f.effects(); twice != 0 {
		t.Fatalf("%d events handled twice", twice)
	}
	if f.runCount("flaky") != 2 {
		t.Errorf("the flaky handler ran %d times, want 2 (fail, then succeed)", f.runCount("flaky"))
	}
	if n := f.ready(f.queue); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}

	for range len(poison) {
		d, ok, err := f.ch.Get(f.dlq, true)
		if err != nil || !ok {
			t.Fatalf("get dead letter: %v %v", ok, err)
		}
		stage, known := poison[d.MessageId]
		if !known {
			t.Errorf("unexpected dead letter %q: %s", d.MessageId, d.Body)
			continue
		}
		deaths, _ := d.Headers["x-death"].([]any)
		if len(deaths) != 1 {
			t.Errorf("dead letter %q: x-death %v", d.MessageId, d.Headers["x-death"])
			continue
		}
		death, _ := deaths[0].(amqp.Table)
		if death["reason"] != "rejected" || death["queue"] != f.queue || d.Headers["x-first-death-reason"] != "rejected" {
			t.Errorf("dead letter %q: x-death %v, x-first-death-reason %v; want rejected by %s",
				d.MessageId, death, d.Headers["x-first-death-reason"], f.queue)
		}
		if d.RoutingKey != f.queue {
			t.Errorf("dead letter %q: routing key %q, want the original %q", d.MessageId, d.RoutingKey, f.queue)
		}
		// The why: one log line names the message and its stage.
		var found bool
		for _, l := range logs.lines(`"msg":"dead-lettering message"`) {
			found = found || (strings.Contains(l, `"message_id":"`+d.MessageId+`"`) && strings.Contains(l, `"stage":"`+string(stage)+`"`))
		}
		if !found {
			t.Errorf("no dead-letter log line for %q with stage %s", d.MessageId, stage)
		}
		delete(poison, d.MessageId)
	}
	for _, tc := range []struct {
		reason string
		want   float64
	}{{"DECODE", 1}, {"VALIDATE", 2}, {"TASK_PUT", 3}} {
		if got := f.counter("messagekit_consumer_dead_lettered_total", "reason", tc.reason); got != tc.want {
			t.Errorf("dead_lettered_total{reason=%s} = %v, want %v", tc.reason, got, tc.want)
		}
	}
}

// Crash semantics. A process that committed the handler's transaction and
// died before its ack leaves a redelivery that the next process recognises
// as a duplicate, without running the handler; one whose handler failed
// leaves no claim, so the redelivery runs the handler.
func TestRedeliveryAfterCrash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		failFirst bool
		wantRuns  int
	}{
		{"committed then died before ack", false, 0},
		{"handler failed then died", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			msg, id := message(t, invoicePaid, payment{Invoice: "crash"})
			f.publish(msg)

			// The process that dies: receives, runs the dedup transaction,
			// and loses its connection before acknowledging.
			conn := f.broker.Dial(t)
			ch, err := conn.Channel()
			must(t, err)
			deliveries, err := ch.Consume(f.queue, "", false, false, false, false, nil)
			must(t, err)
			if d := <-deliveries; d.MessageId != id.String() {
				t.Fatalf("first process got %q", d.MessageId)
			}
			_, err = dedup.Handle(context.Background(), dedup.NewPostgres(f.db.Pool), "billing", id,
				func(ctx context.Context, tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO effects (event_id, invoice) VALUES ($1, 'crash')", id); err != nil {
						return err
					}
					if tc.failFirst {
						return context.DeadlineExceeded
					}
					return nil
				})
			if (err != nil) != tc.failFirst {
				t.Fatalf("first process: %v", err)
			}
			must(t, conn.Close()) // dies without acknowledging

			r := f.start(f.config())
			testenv.WaitFor(t, 30*time.Second, "the redelivery to be settled", func() bool {
				return f.counter("messagekit_consumer_handled_total")+f.counter("messagekit_consumer_duplicates_total") == 1
			})
			must(t, r.stop())
			if got := f.runCount("crash"); got != tc.wantRuns {
				t.Errorf("handler ran %d times on redelivery, want %d", got, tc.wantRuns)
			}
			if n, twice := f.effects(); n != 1 || twice != 0 {
				t.Errorf("effects: %d events, %d twice; want exactly one write", n, twice)
			}
			if n := f.ready(f.queue); n != 0 {
				t.Errorf("the redelivery was not acknowledged: %d messages in the queue", n)
			}
		})
	}
}

// The server closes the consumer's connection mid-stream, while a batch is
// inside its transaction: the consumer reconnects, the batch's commit
// stands, its redelivery is recognised as duplicates, and every message is
// handled exactly once.
func TestReconnectAfterConnectionClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 400
	var msgs []amqp.Publishing
	for i := range n {
		m, _ := message(t, invoicePaid, payment{Invoice: fmt.Sprint("inv-", i)})
		msgs = append(msgs, m)
	}
	f.publish(msgs...)

	gate := make(chan struct{})
	var handled int
	inner := f.router()
	cfg := f.config()
	cfg.Prefetch, cfg.MaxBatch = 50, 20
	cfg.Handler = dedup.HandlerFunc(func(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
		f.mu.Lock()
		handled++
		block := handled == n/4
		f.mu.Unlock()
		if block { // hold a transaction open while the connection goes
			<-gate
		}
		return inner.HandleEvent(ctx, tx, env)
	})
	r := f.start(cfg)
	testenv.WaitFor(t, 30*time.Second, "a handler to hold its batch open", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return handled >= n/4
	})
	if closed := f.broker.CloseConnections(t, f.connectionPrefix); closed != 1 {
		t.Fatalf("closed %d connections, want the consumer's 1", closed)
	}
	close(gate)
	testenv.WaitFor(t, 60*time.Second, "every message to be handled", func() bool {
		distinct, _ := f.effects()
		return distinct == n
	})
	testenv.WaitFor(t, 30*time.Second, "the queue to drain", func() bool { return f.ready(f.queue) == 0 })
	must(t, r.stop())
	if distinct, twice := f.effects(); distinct != n || twice != 0 {
		t.Fatalf("effects: %d of %d events, %d handled twice", distinct, n, twice)
	}
	if r := f.counter("messagekit_consumer_reconnects_total"); r < 1 {
		t.Errorf("reconnects_total = %v, want ≥ 1", r)
	}
	if d := f.counter("messagekit_consumer_duplicates_total"); d < 1 {
		t.Errorf("duplicates_total = %v: the batch committed during the close was not redelivered", d)
	}
	if h := f.counter("messagekit_consumer_handled_total"); h != n {
		t.Errorf("handled_total = %v, want %d", h, n)
	}
}

// Cancelling Run while a handler runs lets it finish, commits, acks, and
// returns the prefetched rest to the queue.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 10
	var msgs []amqp.Publishing
	for range n {
		m, _ := message(t, invoicePaid, payment{Invoice: "stop"})
		msgs = append(msgs, m)
	}
	f.publish(msgs...)
	entered, release := make(chan struct{}), make(chan struct{})
	inner := f.router()
	cfg := f.config()
	cfg.Prefetch, cfg.MaxBatch = n, 1
	first := true
	cfg.Handler = dedup.HandlerFunc(func(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
		if first {
			first = false
			close(entered)
			<-release
		}
		return inner.HandleEvent(ctx, tx, env)
	})
	r := f.start(cfg)
	<-entered
	r.cancel() // while the handler runs
	close(release)
	must(t, r.wait())
	if distinct, _ := f.effects(); distinct != 1 {
		t.Fatalf("%d events handled, want the 1 in flight", distinct)
	}
	testenv.WaitFor(t, 10*time.Second, "the prefetched rest to return to the queue", func() bool { return f.ready(f.queue) == n-1 })
}

// A queue that exists with other arguments makes Run fail instead of
// reconnecting forever.
func TestDeclareConflictIsFatal(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	queue := b.Name("conflict")
	ch := b.Channel(t)
	_, err := ch.QueueDeclare(queue, true, false, false, false, nil) // no DLX
	must(t, err)
	c, err := amqpconsumer.New(amqpconsumer.Config{URL: b.URL, Queue: queue, Consumer: "billing",
		Store: dedup.NewMemory(), Handler: dedup.Ignore, Declare: true, DLX: b.Name("dlx")})
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Run(ctx)
	var ae *amqp.Error
	if err == nil || ctx.Err() != nil || !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("Run = %v, want a PRECONDITION_FAILED error before the deadline", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := amqpconsumer.Config{Queue: "q", Consumer: "c", Store: dedup.NewMemory(), Handler: dedup.Ignore}
	for _, tc := range []struct {
		name string
		edit func(*amqpconsumer.Config)
	}{
		{"no queue", func(c *amqpconsumer.Config) { c.Queue = "" }},
		{"no consumer", func(c *amqpconsumer.Config) { c.Consumer = "" }},
		{"no store", func(c *amqpconsumer.Config) { c.Store = nil }},
		{"no handler", func(c *amqpconsumer.Config) { c.Handler = nil }},
		{"negative prefetch", func(c *amqpconsumer.Config) { c.Prefetch = -1 }},
		{"batch over prefetch", func(c *amqpconsumer.Config) { c.Prefetch, c.MaxBatch = 10, 11 }},
		{"unknown queue type", func(c *amqpconsumer.Config) { c.QueueType = "stream" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			if _, err := amqpconsumer.New(cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
	for _, cfg := range []amqpconsumer.Config{ok, {Queue: "q", Consumer: "c", Store: dedup.NewMemory(), Handler: dedup.Ignore, Prefetch: 1}} {
		if _, err := amqpconsumer.New(cfg); err != nil {
			t.Errorf("valid config %+v: %v", cfg, err)
		}
	}
}

// TestDeliveryInHandlerContext: a handler reads its own delivery's headers
// with DeliveryFrom, whether its message came alone or in a batch.
func TestDeliveryInHandlerContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 30
	want := map[uuid.UUID]int32{}
	var msgs []amqp.Publishing
	for i := range n {
		m, id := message(t, invoicePaid, payment{Invoice: fmt.Sprint("inv-", i)})
		m.Headers = amqp.Table{"x-replay-count": int32(i)}
		want[id] = int32(i)
		msgs = append(msgs, m)
	}
	f.publish(msgs...)

	got := map[uuid.UUID]int32{}
	cfg := f.config()
	cfg.MaxBatch = 10
	cfg.Handler = dedup.HandlerFunc(func(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
		d, ok := amqpconsumer.DeliveryFrom(ctx)
		if !ok {
			return dedup.Permanent(fmt.Errorf("no delivery in the handler's context"))
		}
		f.mu.Lock()
		got[env.EventID], _ = d.Headers["x-replay-count"].(int32)
		f.mu.Unlock()
		if d.MessageId != env.EventID.String() {
			return dedup.Permanent(fmt.Errorf("delivery %s for event %s", d.MessageId, env.EventID))
		}
		return nil
	})
	r := f.start(cfg)
	testenv.WaitFor(t, 30*time.Second, "every message handled", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(got) == n
	})
	must(t, r.stop())
	if dl := f.ready(f.dlq); dl != 0 {
		t.Errorf("%d dead letters: a handler found no delivery, or another's", dl)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("event %s: handler saw x-replay-count %d, want %d", id, got[id], w)
		}
	}
	if _, ok := amqpconsumer.DeliveryFrom(context.Background()); ok {
		t.Error("DeliveryFrom found a delivery in a bare context")
	}
}

// TestQuorumQueue: with QueueType quorum the consumer declares a quorum
// queue with at-least-once dead-lettering; events are handled once and a
// permanent failure reaches the dead-letter queue, with its x-death.
func TestQuorumQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	queue := f.broker.Name("quorum")
	cfg := f.config()
	cfg.Queue, cfg.QueueType = queue, amqpconsumer.QueueQuorum
	r := f.start(cfg)
	testenv.WaitFor(t, 30*time.Second, "the quorum queue declared", func() bool {
		ch, err := f.broker.Dial(t).Channel()
		if err != nil {
			return false
		}
		defer func() { _ = ch.Close() }()
		_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil
	})
	// Declared as the consumer declares it, the queue takes the same
	// arguments; a classic declaration of it is refused.
	args, err := amqpconsumer.QueueArgs(amqpconsumer.QueueQuorum)
	must(t, err)
	args["x-dead-letter-exchange"] = f.dlx
	ch, err := f.broker.Dial(t).Channel()
	must(t, err)
	_, err = ch.QueueDeclare(queue, true, false, false, false, args)
	must(t, err)
	_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": f.dlx})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("classic declaration of the quorum queue: %v, want PRECONDITION_FAILED", err)
	}

	for _, inv := range []struct{ invoice, fail string }{{"q-1", ""}, {"q-2", "permanent"}, {"q-3", ""}} {
		m, _ := message(t, invoicePaid, payment{Invoice: inv.invoice, Fail: inv.fail})
		// A quorum queue just declared may nack while its leader is
		// elected; a nacked message was not enqueued, so it is sent again.
		testenv.WaitFor(t, 30*time.Second, "publish "+inv.invoice+" confirmed", func() bool {
			d, err := f.ch.PublishWithDeferredConfirm("", queue, true, false, m)
			if err != nil {
				t.Fatalf("publish %s: %v", inv.invoice, err)
			}
			return d.Wait()
		})
	}
	testenv.WaitFor(t, 30*time.Second, "2 handled events and 1 dead letter", func() bool {
		n, _ := f.effects()
		return n == 2 && f.ready(f.dlq) == 1
	})
	must(t, r.stop())
	if _, twice := f.effects(); twice != 0 {
		t.Fatalf("%d events handled twice", twice)
	}
	d, ok, err := f.ch.Get(f.dlq, true)
	if err != nil || !ok {
		t.Fatalf("get dead letter: %v %v", ok, err)
	}
	if d.Headers["x-first-death-reason"] != "rejected" || d.Headers["x-first-death-queue"] != queue {
		t.Errorf("dead letter headers %v, want rejected by %s", d.Headers, queue)
	}
}
