package amqpconsumer_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

type payment struct {
	Invoice string `json:"invoice"`
	// Fail makes the test handler fail: "permanent", "transient" (always)
	// or "once".
	Fail string `json:"fail,omitempty"`
}

var (
	invoicePaid   = contracts.Define[payment]("billing.invoice.paid")
	invoiceVoided = contracts.Define[payment]("billing.invoice.voided")
)

// fixture is one test's queue, dead-letter exchange and queue, database and
// a publishing channel with confirms.
type fixture struct {
	t                *testing.T
	broker           *testenv.Broker
	db               *testenv.Database
	ch               *amqp.Channel
	queue, dlx, dlq  string
	reg              *prometheus.Registry
	mu               sync.Mutex
	onceFailed       map[string]bool
	runs             map[string]int
	connectionPrefix string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b := testenv.RabbitMQ(t)
	f := &fixture{
		t: t, broker: b, db: testenv.MigratedPostgres(t),
		queue: b.Name("billing"), dlx: b.Name("dlx"), dlq: b.Name("dlq"),
		reg: prometheus.NewRegistry(), onceFailed: map[string]bool{}, runs: map[string]int{},
		connectionPrefix: testenv.ConnectionName(t),
	}
	f.ch = b.Channel(t)
	must(t, f.ch.ExchangeDeclare(f.dlx, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err := f.ch.QueueDeclare(f.dlq, true, false, false, false, nil)
	must(t, err)
	must(t, f.ch.QueueBind(f.dlq, "#", f.dlx, false, nil))
	// As the consumer declares it, so messages can wait before it starts.
	_, err = f.ch.QueueDeclare(f.queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": f.dlx})
	must(t, err)
	must(t, f.ch.Confirm(false))
	_, err = f.db.Pool.Exec(context.Background(), "CREATE TABLE effects (event_id uuid NOT NULL, invoice text NOT NULL)")
	must(t, err)
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// router inserts one effects row per handled event (with no unique key, so
// handling twice would show) and fails as payment.Fail says.
func (f *fixture) router() *dedup.Router {
	var r dedup.Router
	dedup.On(&r, invoicePaid, func(ctx context.Context, tx pgx.Tx, p payment) error {
		env, _ := dedup.EnvelopeFrom(ctx)
		f.mu.Lock()
		f.runs[p.Invoice]++
		failOnce := p.Fail == "once" && !f.onceFailed[p.Invoice]
		f.onceFailed[p.Invoice] = true
		f.mu.Unlock()
		switch {
		case p.Fail == "permanent":
			return dedup.Permanent(fmt.Errorf("invoice %s refused", p.Invoice))
		case p.Fail == "transient" || failOnce:
			return fmt.Errorf("invoice %s: ledger busy", p.Invoice)
		}
		_, err := tx.Exec(ctx, "INSERT INTO effects (event_id, invoice) VALUES ($1, $2)", env.EventID, p.Invoice)
		return err
	})
	return &r
}

func (f *fixture) runCount(invoice string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[invoice]
}

// message returns a persistent message as the bridge publishes it.
func message[E any](t testing.TB, ev contracts.Event[E], data E) (amqp.Publishing, uuid.UUID) {
	t.Helper()
	env, err := ev.New("invoice-1", "billing-service", data)
	must(t, err)
	body, err := env.MarshalJSON()
	must(t, err)
	return amqp.Publishing{
		MessageId: env.EventID.String(), Type: env.EventType, ContentType: contracts.ContentTypeJSON,
		DeliveryMode: amqp.Persistent, Timestamp: env.OccurredAt, Body: body,
	}, env.EventID
}

// publish sends msgs to the queue and waits for the broker's confirms.
func (f *fixture) publish(msgs ...amqp.Publishing) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var confirms []*amqp.DeferredConfirmation
	for _, m := range msgs {
		dc, err := f.ch.PublishWithDeferredConfirmWithContext(ctx, "", f.queue, true, false, m)
		must(f.t, err)
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			f.t.Fatalf("publish not confirmed: %v %v", ok, err)
		}
	}
}

// config returns a consumer configuration for the fixture's queue.
func (f *fixture) config() amqpconsumer.Config {
	return amqpconsumer.Config{
		URL: f.broker.URL, Queue: f.queue, Consumer: "billing",
		Store: dedup.NewPostgres(f.db.Pool), Handler: f.router(),
		Declare: true, DLX: f.dlx, ConnectionName: f.connectionPrefix,
		Retry:            dedup.Retry{MaxAttempts: 2, Backoff: time.Millisecond},
		ReconnectBackoff: 50 * time.Millisecond,
		Metrics:          f.reg,
	}
}

// running is a consumer started by start.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// wait returns Run's error once Run has returned.
func (r *running) wait() error {
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = fmt.Errorf("Run did not return within 30s of cancellation")
		}
	})
	return r.err
}

// stop cancels Run and returns its error.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// start runs a consumer until stopped or the test ends.
func (f *fixture) start(cfg amqpconsumer.Config) *running {
	f.t.Helper()
	c, err := amqpconsumer.New(cfg)
	must(f.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	f.t.Cleanup(func() { _ = r.stop() })
	return r
}

// effects returns the number of distinct handled events and of events
// whose effects were written more than once.
func (f *fixture) effects() (distinct, twice int) {
	f.t.Helper()
	err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE n > 1)
		FROM (SELECT event_id, count(*) AS n FROM effects GROUP BY event_id) e`).Scan(&distinct, &twice)
	must(f.t, err)
	return distinct, twice
}

// ready returns the number of ready messages in queue.
func (f *fixture) ready(queue string) int {
	f.t.Helper()
	ch, err := f.broker.Dial(f.t).Channel()
	must(f.t, err)
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	must(f.t, err)
	return q.Messages
}

// counter returns a counter of the fixture's registry, 0 when absent.
func (f *fixture) counter(name string, labels ...string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	must(f.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// syncBuffer is a log sink safe for the consumer's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}
