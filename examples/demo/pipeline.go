package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// demoQueue is the demo consumer's queue: bound to the bridge's exchange, its
// dead letters go to the bookkeeper.
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

// prepareQueue declares the demo consumer's queue, bound to the bridge's
// exchange for the sales events, with events.dlx as its dead-letter exchange,
// and empties it.
func prepareQueue(amqpURL string) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.ExchangeDeclare("events", "topic", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(demoQueue, true, false, false, false,
		amqp.Table{"x-dead-letter-exchange": "events.dlx"}); err != nil {
		return err
	}
	if err := ch.QueueBind(demoQueue, "sales.#", "events", false, nil); err != nil {
		return err
	}
	_, err = ch.QueuePurge(demoQueue, false)
	return err
}

// consumeAndReject reads the events the bridge delivered to the demo queue,
// checks that each arrived exactly once, rejects every one in rejectEvery
// (requeue=false: the broker dead-letters it to events.dlx), acknowledges the
// rest, and waits until the bookkeeper has stored each rejected one and
// flagged its outbox row.
func consumeAndReject(ctx context.Context, pool *pgxpool.Pool, amqpURL string, events []contracts.Envelope, rejectEvery int) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, e := range events {
		want[e.EventID.String()] = true
	}
	start := time.Now()
	var rejected []string
	seen, earlier := 0, 0
	got := map[string]bool{}
	for seen < len(events) {
		d, err := getOne(ctx, ch)
		if err != nil {
			return fmt.Errorf("%d of %d events reached RabbitMQ: %w", seen, len(events), err)
		}
		if !want[d.MessageId] {
			if got[d.MessageId] {
				_ = d.Ack(false)
				return fmt.Errorf("event %s delivered twice", d.MessageId)
			}
			// An event of an earlier, interrupted demo run that the Relay
			// published only now (the database persists across runs).
			earlier++
			if err := d.Ack(false); err != nil {
				return err
			}
			continue
		}
		delete(want, d.MessageId)
		got[d.MessageId] = true
		seen++
		if seen%rejectEvery == 0 {
			rejected = append(rejected, d.MessageId)
			err = d.Nack(false, false)
		} else {
			err = d.Ack(false)
		}
		if err != nil {
			return err
		}
	}
	fmt.Printf("  the bridge delivered all %d events to queue %s exactly once (%s)\n", seen, demoQueue, time.Since(start).Round(time.Millisecond))
	if earlier > 0 {
		fmt.Printf("  (and %d events left unpublished by an earlier, interrupted run)\n", earlier)
	}
	fmt.Printf("  the demo consumer rejected %d of them (requeue=false) and acknowledged the rest\n", len(rejected))

	deadline := time.Now().Add(30 * time.Second)
	for {
		var stored, flagged int
		err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM dead_letters WHERE event_id = ANY($1::uuid[]) AND origin = $2),
			(SELECT count(*) FROM outbox_events WHERE event_id = ANY($1::uuid[]) AND failed)`, rejected, demoQueue).Scan(&stored, &flagged)
		if err != nil {
			return err
		}
		if stored == len(rejected) && flagged == len(rejected) {
			fmt.Printf("  dlq-bookkeeper stored %d dead letters (reason rejected, origin %s) and flagged their outbox rows failed\n", stored, demoQueue)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 30s the bookkeeper had stored %d and flagged %d of %d dead letters", stored, flagged, len(rejected))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getOne(ctx context.Context, ch *amqp.Channel) (amqp.Delivery, error) {
	deadline := time.After(30 * time.Second)
	for {
		d, ok, err := ch.Get(demoQueue, false)
		if err != nil || ok {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, errors.New("no message in " + demoQueue)
		case <-deadline:
			return d, errors.New("no message in " + demoQueue + " for 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// replayDeadLetters asks the admin API to replay the demo queue's dead
// letters seen since this run started, and consumes them from that queue
// again.
func replayDeadLetters(ctx context.Context, adminAddr, token, amqpURL string, since time.Time, want int) error {
	body := strings.NewReader(`{"queue":"` + demoQueue + `","since":"` + since.UTC().Format(time.RFC3339Nano) + `","limit":100}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+adminAddr+"/api/v1/dead-letters/replay", body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Replayed int    `json:"replayed_count"`
		ReplayID string `json:"replay_id"`
		Error    string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /api/v1/dead-letters/replay: %d %s %v", resp.StatusCode, out.Error, err)
	}
	fmt.Printf("  POST /api/v1/dead-letters/replay: replayed_count %d, replay_id %s\n", out.Replayed, out.ReplayID)
	if out.Replayed != want {
		return fmt.Errorf("replayed %d dead letters, want this run's %d", out.Replayed, want)
	}

	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for i := range want {
		d, err := getOne(ctx, ch)
		if err != nil {
			return fmt.Errorf("%d of %d replayed messages came back: %w", i, want, err)
		}
		if d.Headers["x-replay-id"] != out.ReplayID {
			return fmt.Errorf("message %s came back without x-replay-id %s", d.MessageId, out.ReplayID)
		}
		if err := d.Ack(false); err != nil {
			return err
		}
	}
	fmt.Printf("  all %d came back to %s with x-replay-id and were consumed\n", want, demoQueue)
	return nil
}
