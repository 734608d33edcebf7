package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// readTopic returns the first n records of topic, failing the test if they
// do not arrive within 30 s.
func readTopic(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	return testenv.ReadRecords(t, brokers, topic, n, 30*time.Second)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// With RELAY_ENABLED the events reach Kafka in the contract's format (key =
// order id, header id = event id, value = the envelope), in order per
// order, and their rows are marked published.
func TestRelayPublishesToKafka(t *testing.T) {
	t.Parallel()
	topic := testenv.UniqueName(t, "events")
	brokers := testenv.Kafka(t, topic)
	s := startService(t, testenv.MigratedPostgres(t), func(c *Config) {
		c.RelayEnabled, c.KafkaBrokers, c.OutboxTopic = true, brokers, topic
	})
	var created createOrderResponse
	status, body := s.post(t, "/orders", `{"id":"o-9","customer":"ada"}`)
	if status != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", status, body)
	}
	decodeBody(t, body, &created)
	var line addLineResponse
	status, body = s.post(t, "/orders/o-9/lines", `{"sku":"A-1","qty":2}`)
	if status != http.StatusCreated {
		t.Fatalf("POST line: %d %s", status, body)
	}
	decodeBody(t, body, &line)

	records := readTopic(t, brokers, topic, 2)
	for i, want := range []struct{ id, eventType string }{
		{created.EventID, "sales.order.created"},
		{line.EventID, "sales.order.line-added"},
	} {
		r := records[i] // one key, so one partition, in write order
		env, err := contracts.Decode(r.Value)
		switch {
		case err != nil:
			t.Fatalf("record %d value %s: %v", i, r.Value, err)
		case string(r.Key) != "o-9":
			t.Errorf("record %d key %q, want the order id o-9", i, r.Key)
		case header(r, "id") != want.id || env.EventID.String() != want.id:
			t.Errorf("record %d: header id %q, eventId %s; want %s", i, header(r, "id"), env.EventID, want.id)
		case header(r, "eventType") != want.eventType || env.EventType != want.eventType:
			t.Errorf("record %d: type %q/%q, want %s", i, header(r, "eventType"), env.EventType, want.eventType)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "both outbox rows to be marked published", func() bool {
		return count(t, s.db, "SELECT count(*) FROM outbox_events WHERE published") == 2
	})
	testenv.WaitFor(t, 10*time.Second, "the metrics to count the published events", func() bool {
		_, metrics := s.get(t, "/metrics")
		return strings.Contains(string(metrics), "messagekit_outbox_relay_published_total 2")
	})
	_, metrics := s.get(t, "/metrics")
	for _, want := range []string{"sales_orders_created_total 1", "sales_order_lines_added_total 1"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Kafka being down does not stop the service: it starts, takes orders, and
// the Relay publishes them once Kafka is up.
func TestOrdersAcceptedWhileKafkaIsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for Kafka to come up on later
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	brokers := []string{ln.Addr().String()}
	const topic = "events"
	s := startService(t, testenv.MigratedPostgres(t), func(c *Config) {
		c.RelayEnabled, c.KafkaBrokers, c.OutboxTopic = true, brokers, topic
	})

	status, body := s.post(t, "/orders", `{"id":"o-1","customer":"ada"}`)
	if status != http.StatusCreated {
		t.Fatalf("POST /orders with Kafka down: %d %s", status, body)
	}
	testenv.WaitFor(t, 30*time.Second, "the Relay to report a failed publish", func() bool {
		_, metrics := s.get(t, "/metrics")
		return !strings.Contains(string(metrics), `messagekit_outbox_relay_publish_errors_total{kind="retriable"} 0`)
	})
	if n := count(t, s.db, "SELECT count(*) FROM outbox_events WHERE NOT published AND NOT failed"); n != 1 {
		t.Fatalf("%d pending outbox rows while Kafka is down, want 1", n)
	}

	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatalf("start Kafka on port %d: %v", port, err)
	}
	t.Cleanup(kafka.Close)
	if r := readTopic(t, brokers, topic, 1)[0]; string(r.Key) != "o-1" {
		t.Fatalf("record key %q, want o-1", r.Key)
	}
}
