package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// orderPlaced is the demo producer's event.
type orderPlaced struct {
	OrderID string  `json:"orderId"`
	Total   float64 `json:"total"`
}

var orderPlacedEvent = contracts.Define[orderPlaced]("sales.order.placed")

// demoQueue is a consumer queue whose dead letters go to the bookkeeper.
const demoQueue = "demo.sales.orders"

// writeAndRelay writes n orders with outbox.Writer, each in its own
// transaction, runs outbox.Relay (standing in for Debezium) until all of them
// are in Kafka, and returns their events.
func writeAndRelay(ctx context.Context, pool *pgxpool.Pool, brokers []string, n int) ([]contracts.Envelope, error) {
	pub, err := outboxsarama.New(brokers, outboxsarama.Config{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = pub.Close() }()
	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{Topic: "events"})
	if err != nil {
		return nil, err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() { stopRelay(); <-relayDone }()

	var writer outbox.Writer
	events := make([]contracts.Envelope, 0, n)
	start := time.Now()
	for i := range n {
		ev, err := orderPlacedEvent.New(fmt.Sprintf("order-%d", i%10), "sales-service",
			orderPlaced{OrderID: fmt.Sprintf("o-%d", i), Total: float64(10 + i)})
		if err != nil {
			return nil, err
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return writer.Add(ctx, tx, ev) }); err != nil {
			return nil, fmt.Errorf("write event %d: %w", i, err)
		}
		events = append(events, ev)
	}
	fmt.Printf("  wrote %d events with outbox.Writer in %s\n", n, time.Since(start).Round(time.Millisecond))

	seen, err := countInKafka(ctx, brokers, events)
	if err != nil {
		return nil, err
	}
	fmt.Printf("  outbox.Relay published them: %d of %d found in Kafka topic events, %s after the first write\n",
		seen, n, time.Since(start).Round(time.Millisecond))
	return events, nil
}

// countInKafka reads topic events from the start with an independent client
// until every event is found or 30 s pass.
func countInKafka(ctx context.Context, brokers []string, events []contracts.Envelope) (int, error) {
	want := map[string]bool{}
	for _, e := range events {
		want[e.EventID.String()] = true
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seen, total := 0, len(want)
	for seen < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return seen, fmt.Errorf("only %d of %d events reached Kafka", seen, total)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == contracts.KafkaHeaderID && want[string(h.Value)] {
					delete(want, string(h.Value))
					seen++
				}
			}
		})
	}
	return seen, nil
}

// deadLetter publishes events to a consumer queue whose dead-letter exchange
// is events.dlx, rejects them there as a failing consumer would, and waits
// until the bookkeeper has stored each and flagged its outbox row.
func deadLetter(ctx context.Context, pool *pgxpool.Pool, amqpURL string, events []contracts.Envelope) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(demoQueue, true, false, false, false,
		amqp.Table{"x-dead-letter-exchange": "events.dlx"}); err != nil {
		return err
	}
	ids := make([]string, 0, len(events))
	for _, ev := range events {
		body, err := ev.MarshalJSON()
		if err != nil {
			return err
		}
		if err := ch.PublishWithContext(ctx, "", demoQueue, false, false, amqp.Publishing{
			MessageId: ev.EventID.String(), Type: ev.EventType, ContentType: contracts.ContentTypeJSON,
			DeliveryMode: amqp.Persistent, Body: body,
		}); err != nil {
			return err
		}
		ids = append(ids, ev.EventID.String())
	}
	for range events {
		d, err := getOne(ctx, ch)
		if err != nil {
			return err
		}
		if err := d.Nack(false, false); err != nil { // the broker dead-letters it to events.dlx
			return err
		}
	}
	fmt.Printf("  a consumer of queue %s rejected %d events (requeue=false)\n", demoQueue, len(events))

	deadline := time.Now().Add(30 * time.Second)
	for {
		var stored, flagged int
		err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM dead_letters WHERE event_id = ANY($1::uuid[]) AND origin = $2),
			(SELECT count(*) FROM outbox_events WHERE event_id = ANY($1::uuid[]) AND failed)`, ids, demoQueue).Scan(&stored, &flagged)
		if err != nil {
			return err
		}
		if stored == len(ids) && flagged == len(ids) {
			fmt.Printf("  dlq-bookkeeper stored %d dead letters (reason rejected, origin %s) and flagged their outbox rows failed\n", stored, demoQueue)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 30s the bookkeeper had stored %d and flagged %d of %d dead letters", stored, flagged, len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getOne(ctx context.Context, ch *amqp.Channel) (amqp.Delivery, error) {
	for {
		d, ok, err := ch.Get(demoQueue, false)
		if err != nil || ok {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, errors.New("no message in " + demoQueue)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
