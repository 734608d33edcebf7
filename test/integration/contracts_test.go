package integration_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

type orderPlaced struct {
	OrderID  string            `json:"orderId"`
	Total    float64           `json:"total"`
	Lines    []orderLine       `json:"lines"`
	Customer map[string]string `json:"customer"`
	Note     string            `json:"note"`
}

type orderLine struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

var orderPlacedEvent = contracts.Define[orderPlaced]("sales.order.placed")

func sampleEnvelope(t *testing.T) (contracts.Envelope, orderPlaced) {
	t.Helper()
	data := orderPlaced{
		OrderID: "o-1", Total: 12.5,
		Lines:    []orderLine{{SKU: "a", Qty: 2}, {SKU: "b", Qty: 1}},
		Customer: map[string]string{"name": "Zoë <script>", "tier": "gold"},
		Note:     "line one\nline two — ünïcödé, \"quoted\" & 💡",
	}
	env, err := orderPlacedEvent.New("order-o-1", "sales-service", data,
		contracts.WithOccurredAt(time.Date(2026, 11, 26, 12, 30, 0, 123456789, time.FixedZone("CET", 3600))),
		contracts.WithCorrelationID("req-7"), contracts.WithMetadata(map[string]any{"tenant": "t1"}))
	if err != nil {
		t.Fatal(err)
	}
	return env, data
}

// assertSameEvent checks that got carries the same event as want: every
// field equal, and data and metadata equal as JSON (jsonb may re-format them)
// and decodable into the typed event.
func assertSameEvent(t *testing.T, got, want contracts.Envelope, data orderPlaced) {
	t.Helper()
	if got.EventID != want.EventID || got.EventType != want.EventType || got.AggregateID != want.AggregateID ||
		!got.OccurredAt.Equal(want.OccurredAt) || got.Source != want.Source || got.CorrelationID != want.CorrelationID ||
		got.DataVersion != want.DataVersion {
		t.Fatalf("envelope changed in transit:\ngot  %+v\nwant %+v", got, want)
	}
	if got.OccurredAt.Location() != time.UTC || got.OccurredAt.Nanosecond()%1000 != 0 {
		t.Fatalf("occurredAt %v is not UTC at µs precision", got.OccurredAt)
	}
	for name, pair := range map[string][2]json.RawMessage{"data": {got.Data, want.Data}, "metadata": {got.Metadata, want.Metadata}} {
		var a, b any
		if err := json.Unmarshal(pair[0], &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(pair[1], &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s changed in transit: %s vs %s", name, pair[0], pair[1])
		}
	}
	typed, err := orderPlacedEvent.Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(typed, data) {
		t.Fatalf("typed data %+v, want %+v", typed, data)
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The envelope survives the outbox's jsonb payload column, and occurredAt
// survives the timestamptz column exactly, in both camelCase and the Python
// messagekit's snake_case.
func TestEnvelopeRoundTripPostgres(t *testing.T) {
	t.Parallel()
	db := testenv.MigratedPostgres(t)
	env, data := sampleEnvelope(t)
	camel, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	snake := []byte(`{"event_id":"` + uuid.NewString() + `","event_type":"sales.order.placed","aggregate_id":"order-o-1",
		"occurred_at":"2026-11-26T11:30:00.123456Z","source":"sales-service","data_version":"1.0",
		"correlation_id":"req-7","metadata":{"tenant":"t1"},"data":` + string(env.Data) + `}`)
	snakeEnv, err := contracts.Decode(snake)
	if err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		payload []byte
		want    contracts.Envelope
	}{"camelCase": {camel, env}, "snake_case": {snake, snakeEnv}} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			var stored []byte
			var occurred time.Time
			err := db.Pool.QueryRow(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
				VALUES ($1, $2, $3, $4, $5) RETURNING payload::text, occurred_at`,
				tc.want.EventID, tc.want.EventType, tc.want.AggregateID, tc.payload, tc.want.OccurredAt).Scan(&stored, &occurred)
			if err != nil {
				t.Fatal(err)
			}
			got, err := contracts.Decode(stored)
			if err != nil {
				t.Fatalf("decode what PostgreSQL returned: %v\n%s", err, stored)
			}
			assertSameEvent(t, got, tc.want, data)
			if !occurred.Equal(tc.want.OccurredAt) {
				t.Fatalf("occurred_at %v, want %v", occurred, tc.want.OccurredAt)
			}
		})
	}
}

// A Kafka record carries the envelope bytes unchanged, with the id and
// eventType headers, from a franz-go producer to a sarama consumer.
func TestEnvelopeRoundTripKafka(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	brokers := testenv.Kafka(t, "events")
	env, data := sampleEnvelope(t)
	value, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: "events", Key: []byte(env.AggregateID), Value: value, Headers: []kgo.RecordHeader{
		{Key: contracts.KafkaHeaderID, Value: []byte(env.EventID.String())},
		{Key: contracts.KafkaHeaderEventType, Value: []byte(env.EventType)},
	}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer, err := sarama.NewConsumer(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition("events", rec.Partition, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case msg := <-pc.Messages():
		if string(msg.Key) != env.AggregateID || string(msg.Value) != string(value) {
			t.Fatalf("record changed: key %q value %s", msg.Key, msg.Value)
		}
		headers := map[string]string{}
		for _, h := range msg.Headers {
			headers[string(h.Key)] = string(h.Value)
		}
		if headers[contracts.KafkaHeaderID] != env.EventID.String() || headers[contracts.KafkaHeaderEventType] != env.EventType {
			t.Fatalf("headers %v", headers)
		}
		got, err := contracts.Decode(msg.Value)
		if err != nil {
			t.Fatal(err)
		}
		assertSameEvent(t, got, env, data)
	case <-ctx.Done():
		t.Fatal("record never consumed")
	}
}

// An AMQP message carries the envelope as its body with the contract's
// properties, through a real RabbitMQ exchange and queue.
func TestEnvelopeRoundTripRabbitMQ(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b := testenv.RabbitMQ(t)
	exchange, queue := b.Name("events"), b.Name("sales")
	ch := b.Channel(t)
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "sales.#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	env, data := sampleEnvelope(t)
	body, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, exchange, env.EventType, true, false, amqp.Publishing{
		MessageId: env.EventID.String(), Type: env.EventType, ContentType: contracts.ContentTypeJSON,
		Timestamp: env.OccurredAt, CorrelationId: env.CorrelationID, AppId: env.Source,
		DeliveryMode: amqp.Persistent, Body: body,
		Headers: amqp.Table{contracts.AMQPHeaderAggregateID: env.AggregateID},
	}); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if d.MessageId != env.EventID.String() || d.Type != env.EventType || d.Headers[contracts.AMQPHeaderAggregateID] != env.AggregateID {
			t.Fatalf("properties changed: id %q type %q headers %v", d.MessageId, d.Type, d.Headers)
		}
		got, err := contracts.Decode(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		assertSameEvent(t, got, env, data)
	case <-ctx.Done():
		t.Fatal("message never delivered")
	}
}
