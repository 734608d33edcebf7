package adminapi_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// withQueues gives the API a RabbitMQ publisher on b.
func withQueues(t testing.TB, b *testenv.Broker) func(*adminapi.Config) {
	t.Helper()
	pub := adminapi.NewAMQPPublisher(b.URL, "adminapi test "+t.Name())
	t.Cleanup(func() { _ = pub.Close() })
	return func(c *adminapi.Config) { c.Queues = pub }
}

// withKafka gives the API a sarama publisher on brokers writing outbox
// replays to topic.
func withKafka(t testing.TB, brokers []string, topic string) func(*adminapi.Config) {
	t.Helper()
	pub, err := outboxsarama.New(brokers, outboxsarama.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return func(c *adminapi.Config) { c.Kafka, c.OutboxTopic = pub, topic }
}

// declareQueue declares a durable queue (with args) and returns its name.
func declareQueue(t testing.TB, ch *amqp.Channel, name string, args amqp.Table) string {
	t.Helper()
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	return name
}

// getOne polls queue until a message arrives, failing after 15 s.
func getOne(t testing.TB, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message on %s after 15 s", queue)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queueDepth returns how many ready messages queue holds.
func queueDepth(t testing.TB, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// rabbitTo is a RabbitMQ dead letter of queue whose stored message looks
// like the bridge's output after a rejection.
func rabbitTo(queue string) deadletter.DeadLetter { return rabbitFor(queue, uuid.New()) }

// rabbitFor is rabbitTo for event id.
func rabbitFor(queue string, id uuid.UUID) deadletter.DeadLetter {
	headers := fmt.Sprintf(`{"properties":{"message_id":%q,"type":"sales.order.placed","content_type":"application/json","delivery_mode":2,"app_id":"sales-service","timestamp":"2026-11-26T10:00:00Z"},
		"headers":{"x-aggregate-id":"order-1","x-kafka-partition":3,"tenant":"acme","x-death":[{"queue":%q,"reason":"rejected","count":1}],"x-first-death-queue":%q,"x-first-death-reason":"rejected"},
		"header_types":{"x-kafka-partition":"int32"}}`, id, queue, queue)
	return deadletter.DeadLetter{
		EventID: id, Source: deadletter.SourceRabbitMQ, Origin: queue, Reason: "rejected",
		ErrorMessage: "rejected by queue " + queue, EventType: "sales.order.placed",
		Headers: json.RawMessage(headers), Body: []byte(`{"eventId":"` + id.String() + `"}`),
	}
}

// consume reads n records of topic from the start.
func consume(t testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	return testenv.ReadRecords(t, brokers, topic, n, 20*time.Second)
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
