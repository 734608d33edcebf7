package amqpconsumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

// statementCounter counts the statements sent to PostgreSQL; each is one
// network round trip once prepared (pgx caches prepared statements).
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BenchmarkConsume measures the idempotent consumer end to end: b.N
// persistent messages wait in a queue, and the clock runs from the
// consumer's start until the last one's transaction committed. Each
// message's work is one INSERT in the dedup transaction: per message
// (handler=insert), or one multi-row INSERT per batch from a
// dedup.BatchHandler (handler=batch-insert). It reports messages per second
// and PostgreSQL statements (round trips) per message.
//
//	go test -run '^$' -bench Consume -benchtime 5000x ./pkg/dedup/amqpconsumer
func BenchmarkConsume(b *testing.B) {
	db := testenv.MigratedPostgres(b)
	_, err := db.Pool.Exec(context.Background(), "CREATE TABLE effects (event_id uuid PRIMARY KEY, amount int NOT NULL)")
	must(b, err)
	broker := testenv.RabbitMQ(b)
	for _, bc := range []struct {
		batchHandler       bool
		prefetch, maxBatch int
	}{
		{false, 1, 1}, {false, 64, 1}, {false, 256, 16}, {false, 256, 64}, {false, 1024, 256},
		{true, 256, 64},
	} {
		name := "insert"
		if bc.batchHandler {
			name = "batch-insert"
		}
		b.Run(fmt.Sprintf("handler=%s/prefetch=%d/batch=%d", name, bc.prefetch, bc.maxBatch), func(b *testing.B) {
			benchConsume(b, db, broker, bc.batchHandler, bc.prefetch, bc.maxBatch)
		})
	}
}

type amount struct {
	Amount int `json:"amount"`
}

var paymentReceived = contracts.Define[amount]("billing.payment.received")

func benchConsume(b *testing.B, db *testenv.Database, broker *testenv.Broker, batchHandler bool, prefetch, batch int) {
	ctx := context.Background()
	queue := broker.Name("bench")
	ch := broker.Channel(b)
	_, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": amqpconsumer.DefaultDLX})
	must(b, err)
	must(b, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, b.N))
	for i := range b.N {
		env, err := paymentReceived.New(fmt.Sprint("account-", i%100), "billing-service", amount{Amount: i})
		must(b, err)
		body, err := env.MarshalJSON()
		must(b, err)
		must(b, ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
			MessageId: env.EventID.String(), Type: env.EventType, ContentType: contracts.ContentTypeJSON,
			DeliveryMode: amqp.Persistent, Body: body,
			Headers: amqp.Table{contracts.AMQPHeaderAggregateID: env.AggregateID},
		}))
	}
	for range b.N {
		if c := <-confirms; !c.Ack {
			b.Fatal("publish nacked")
		}
	}

	counter := &statementCounter{}
	cfg, err := pgxpool.ParseConfig(db.URL)
	must(b, err)
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(b, err)
	defer pool.Close()
	must(b, pool.Ping(ctx))

	var handled atomic.Int64
	done := make(chan struct{})
	count := func(n int) {
		if handled.Add(int64(n)) == int64(b.N) {
			close(done)
		}
	}
	var router dedup.Router
	dedup.On(&router, paymentReceived, func(ctx context.Context, tx pgx.Tx, a amount) error {
		env, _ := dedup.EnvelopeFrom(ctx)
		_, err := tx.Exec(ctx, "INSERT INTO effects (event_id, amount) VALUES ($1, $2)", env.EventID, a.Amount)
		if err == nil {
			count(1)
		}
		return err
	})
	var handler dedup.Handler = &router
	if batchHandler {
		handler = batchInsert{Router: &router, count: count}
	}
	consumer := queue // a fresh dedup consumer name per run
	c, err := amqpconsumer.New(amqpconsumer.Config{
		URL: broker.URL, Queue: queue, Consumer: consumer,
		Store: dedup.NewPostgres(pool), Handler: handler,
		Prefetch: prefetch, MaxBatch: batch,
	})
	must(b, err)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stmts := counter.n.Load()
	b.ResetTimer()
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx) }()
	select {
	case <-done:
	case err := <-runErr:
		b.Fatalf("Run returned early: %v", err)
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d handled", handled.Load(), b.N)
	}
	// The last handler ran; wait for its commit.
	for {
		var n int
		must(b, db.Pool.QueryRow(ctx, "SELECT count(*) FROM processed_messages WHERE consumer_name = $1", consumer).Scan(&n))
		if n == b.N {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sent := counter.n.Load() - stmts
	cancel()
	must(b, <-runErr)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(sent)/float64(b.N), "pg-roundtrips/msg")
	b.ReportMetric(0, "ns/op") // msgs/s says it better
}

// batchInsert writes a batch's events with one INSERT … SELECT FROM unnest.
type batchInsert struct {
	*dedup.Router
	count func(int)
}

func (h batchInsert) HandleEvents(ctx context.Context, tx pgx.Tx, envs []contracts.Envelope) error {
	ids, amounts := make([]uuid.UUID, len(envs)), make([]int32, len(envs))
	for i, env := range envs {
		a, err := paymentReceived.Decode(env)
		if err != nil {
			return err
		}
		ids[i], amounts[i] = env.EventID, int32(a.Amount)
	}
	_, err := tx.Exec(ctx, "INSERT INTO effects (event_id, amount) SELECT * FROM unnest($1::uuid[], $2::int[])", ids, amounts)
	if err == nil {
		h.count(len(envs))
	}
	return err
}
