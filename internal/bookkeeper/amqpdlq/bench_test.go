package amqpdlq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/amqpdlq"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// BenchmarkRecordFromRabbitMQ measures dead letters recorded per second
// from a RabbitMQ DLQ: b.N messages with a broker-shaped x-death header
// (and an event id each, half of them in the outbox) wait in the DLQ; the
// clock runs from starting the consumer until all b.N rows are committed
// and reads as dead_letters/s. Run it with a fixed count, e.g.
// -benchtime 20000x, on a quiet machine: the figure includes RabbitMQ and
// PostgreSQL on the same host.
func BenchmarkRecordFromRabbitMQ(b *testing.B) {
	for _, size := range []int{amqpdlq.DefaultBatchSize, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchRabbitMQ(b, size) })
	}
}

func benchRabbitMQ(b *testing.B, batch int) {
	broker := testenv.RabbitMQ(b)
	db := testenv.MigratedPostgres(b)
	store, err := deadletter.New(db.Pool)
	if err != nil {
		b.Fatal(err)
	}
	rec, err := bookkeeper.NewRecorder(bookkeeper.Config{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	dlq := broker.Name("dlq")
	ch := broker.Channel(b)
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	headers := amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": "rejected", "queue": "orders.q",
		"time": time.Now().Truncate(time.Second), "exchange": "events", "routing-keys": []any{"orders.order.created"}}},
		"x-first-death-queue": "orders.q", "x-first-death-reason": "rejected", "x-first-death-exchange": "events"}
	for i := range b.N {
		id := uuid.New()
		if i%2 == 0 {
			if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
				VALUES ($1, 'orders.order.created', 'order-7', '{}', now())`, id); err != nil {
				b.Fatal(err)
			}
		}
		err := ch.PublishWithContext(ctx, "", dlq, false, false, amqp.Publishing{
			Headers: headers, MessageId: id.String(), Type: "orders.order.created", ContentType: "application/json",
			DeliveryMode: amqp.Persistent, Body: envelopeFor(id, "orders.order.created"),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	waitUntil(b, time.Minute, func() bool {
		q, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
		return err == nil && q.Messages == b.N
	})
	c, err := amqpdlq.New(amqpdlq.Config{URL: broker.URL, Queues: []string{dlq}, SkipDeclare: true,
		BatchSize: batch, Recorder: rec, ConnectionName: testenv.ConnectionName(b)})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	go func() { done <- c.Run(runCtx) }()
	waitUntil(b, 5*time.Minute, func() bool {
		var n int
		return db.Pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters`).Scan(&n) == nil && n == b.N
	})
	elapsed := time.Since(start)
	b.StopTimer()

	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "dead_letters/s")
}

func waitUntil(b *testing.B, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
