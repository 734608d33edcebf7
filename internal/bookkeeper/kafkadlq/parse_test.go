package kafkadlq_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/kafkadlq"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

var eventID = uuid.MustParse("9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59")

const validateMessage = `eventType: does not match ^[a-z]+\.[a-z-]+\.[a-z-]+$: "Orders"`

func envelope(id uuid.UUID, typ string) []byte {
	return []byte(`{"eventId":"` + id.String() + `","eventType":"` + typ + `","aggregateId":"order-7",` +
		`"occurredAt":"2026-11-26T10:00:00Z","source":"orders","data":{}}`)
}

type kv = [2]string

func headers(pairs ...kv) []*sarama.RecordHeader {
	hs := make([]*sarama.RecordHeader, len(pairs))
	for i, p := range pairs {
		hs[i] = &sarama.RecordHeader{Key: []byte(p[0]), Value: []byte(p[1])}
	}
	return hs
}

// bridgeHeaders are a bridge DLQ record's headers (DESIGN.md §3): the
// original ones, then the nine Connect-style ones.
func bridgeHeaders(id uuid.UUID, stage, message string) []kv {
	return []kv{
		{contracts.KafkaHeaderID, id.String()},
		{contracts.KafkaHeaderEventType, "Orders"},
		{contracts.KafkaHeaderTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{contracts.DLQHeaderTopic, "events"},
		{contracts.DLQHeaderPartition, "2"},
		{contracts.DLQHeaderOffset, "1234"},
		{contracts.DLQHeaderConnectorName, contracts.DLQConnectorName},
		{contracts.DLQHeaderTaskID, "0"},
		{contracts.DLQHeaderStage, stage},
		{contracts.DLQHeaderClassName, "github.com/firstunicorn/messagekit-go/internal/bridge.Bridge"},
		{contracts.DLQHeaderExceptionClassName, "*github.com/firstunicorn/messagekit-go/pkg/contracts.ValidationError"},
		{contracts.DLQHeaderExceptionMessage, message},
	}
}

// connectHeaders are the headers a Kafka Connect sink writes with
// errors.deadletterqueue.context.headers.enable=true: every value a UTF-8
// string, the stack trace included.
func connectHeaders() []kv {
	return []kv{
		{contracts.DLQHeaderTopic, "orders"},
		{contracts.DLQHeaderPartition, "0"},
		{contracts.DLQHeaderOffset, "42"},
		{contracts.DLQHeaderConnectorName, "jdbc-sink"},
		{contracts.DLQHeaderTaskID, "1"},
		{contracts.DLQHeaderStage, "VALUE_CONVERTER"},
		{contracts.DLQHeaderClassName, "org.apache.kafka.connect.json.JsonConverter"},
		{contracts.DLQHeaderExceptionClassName, "org.apache.kafka.connect.errors.DataException"},
		{contracts.DLQHeaderExceptionMessage, "Converting byte[] to Kafka Connect data failed due to serialization error: "},
		{kafkadlq.HeaderExceptionStacktrace, "org.apache.kafka.connect.errors.DataException: Converting byte[]…\n\tat org.apache…"},
	}
}

func record(hs []*sarama.RecordHeader, key, value []byte) *sarama.ConsumerMessage {
	return &sarama.ConsumerMessage{Topic: "events.dlq", Partition: 1, Offset: 77, Headers: hs, Key: key, Value: value,
		Timestamp: time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC)}
}

// TestParseBridgeRecord pins a bridge DLQ record: origin is the original
// topic, reason the stage, error_message the exception message, event id
// from header id; origin_detail locates both the original record and the
// DLQ record.
func TestParseBridgeRecord(t *testing.T) {
	m := record(headers(bridgeHeaders(eventID, "VALIDATE", validateMessage)...), []byte("order-7"),
		envelope(uuid.New(), "Orders"))
	l := kafkadlq.Parse(m)
	if l.Problem != nil || l.Source != deadletter.SourceKafka || l.Origin != "events" || l.Reason != "VALIDATE" ||
		l.ErrorMessage != validateMessage || l.EventID != eventID || l.EventType != "Orders" || string(l.Key) != "order-7" {
		t.Fatalf("Parse = %+v", l)
	}
	want := map[string]any{
		"partition":       int32(2),
		"offset":          int64(1234),
		"connector":       "messagekit-bridge",
		"task":            "0",
		"stage":           "VALIDATE",
		"class":           "github.com/firstunicorn/messagekit-go/internal/bridge.Bridge",
		"exception_class": "*github.com/firstunicorn/messagekit-go/pkg/contracts.ValidationError",
		"dlq_topic":       "events.dlq",
		"dlq_partition":   int32(1),
		"dlq_offset":      int64(77),
		"timestamp":       "2026-11-26T10:00:01Z",
	}
	for k, v := range want {
		if l.OriginDetail[k] != v {
			t.Errorf("origin_detail[%s] = %#v, want %#v", k, l.OriginDetail[k], v)
		}
	}
	if l.Delivery != "kafka:events.dlq/1/77" || !l.MaybeRepeated {
		t.Errorf("delivery %q, maybe repeated %v", l.Delivery, l.MaybeRepeated)
	}
	hs, err := deadletter.DecodeKafkaHeaders(l.Headers)
	if err != nil || len(hs) != len(m.Headers) {
		t.Fatalf("headers column %s: %v", l.Headers, err)
	}
	for i := range hs {
		if !bytes.Equal(hs[i].Key, m.Headers[i].Key) || !bytes.Equal(hs[i].Value, m.Headers[i].Value) {
			t.Errorf("header %d = %q, want %q", i, hs[i].Key, m.Headers[i].Key)
		}
	}
}

// TestParseConnectRecords pins the shapes Kafka Connect sinks write, and
// what is made of records that lack or break them.
func TestParseConnectRecords(t *testing.T) {
	nullMessage := headers(connectHeaders()...)
	nullMessage[8].Value = nil // Connect writes a null message for an exception without one
	tests := []struct {
		name    string
		headers []*sarama.RecordHeader
		value   []byte
		origin  string
		reason  string
		message string
		id      uuid.UUID
		problem string
	}{
		{name: "sink converter failure", headers: headers(connectHeaders()...), value: []byte{0, 0, 0, 1, 0xff},
			origin: "orders", reason: "VALUE_CONVERTER",
			message: "Converting byte[] to Kafka Connect data failed due to serialization error: "},
		{name: "null exception message", headers: nullMessage, value: []byte("x"), origin: "orders", reason: "VALUE_CONVERTER",
			message: "dead-lettered at stage VALUE_CONVERTER by jdbc-sink (org.apache.kafka.connect.errors.DataException)"},
		{name: "event id from the body", headers: headers(connectHeaders()...), value: envelope(eventID, "orders.order.created"),
			origin: "orders", reason: "VALUE_CONVERTER", id: eventID},
		{name: "header id not a uuid: body", headers: headers(append(connectHeaders(), kv{"id", "42"})...),
			value: envelope(eventID, "orders.order.created"), origin: "orders", reason: "VALUE_CONVERTER", id: eventID},
		{name: "no headers", value: envelope(eventID, "orders.order.created"), origin: "events.dlq", reason: "unparseable",
			id: eventID, problem: "no __connect.errors.stage header",
			message: "unparseable dead letter in Kafka topic events.dlq: no __connect.errors.stage header"},
		{name: "binary value, no headers", value: []byte{0xff, 0, 0xfe}, origin: "events.dlq", reason: "unparseable",
			problem: "no __connect.errors.stage header"},
		{name: "stage not a stage", headers: headers(kv{contracts.DLQHeaderStage, "oops\x00"}, kv{contracts.DLQHeaderTopic, "orders"}),
			origin: "orders", reason: "unparseable", problem: "is not a stage"},
		{name: "topic not a topic", headers: headers(kv{contracts.DLQHeaderStage, "DECODE"}, kv{contracts.DLQHeaderTopic, "no such topic!"}),
			origin: "events.dlq", reason: "DECODE", problem: "is not a topic name"},
		{name: "offset not a number", headers: headers(kv{contracts.DLQHeaderStage, "DECODE"}, kv{contracts.DLQHeaderOffset, "-"}),
			origin: "events.dlq", reason: "DECODE", problem: "is not an offset"},
		{name: "newest stage header counts", headers: headers(kv{contracts.DLQHeaderStage, "DECODE"},
			kv{contracts.DLQHeaderTopic, "events"}, kv{contracts.DLQHeaderStage, "AMQP_NACK"}),
			origin: "events", reason: "AMQP_NACK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := kafkadlq.Parse(record(tc.headers, nil, tc.value))
			if l.Origin != tc.origin || l.Reason != tc.reason || l.EventID != tc.id {
				t.Fatalf("Parse = origin %q reason %q id %v; want %q %q %v", l.Origin, l.Reason, l.EventID, tc.origin, tc.reason, tc.id)
			}
			if tc.message != "" && l.ErrorMessage != tc.message {
				t.Errorf("ErrorMessage = %q, want %q", l.ErrorMessage, tc.message)
			}
			if (tc.problem == "") != (l.Problem == nil) || (l.Problem != nil && !strings.Contains(l.Problem.Error(), tc.problem)) {
				t.Fatalf("Problem = %v, want %q", l.Problem, tc.problem)
			}
			if !bytes.Equal(l.Body, tc.value) {
				t.Error("value not kept")
			}
		})
	}
}

// TestParseTombstone pins that a null value is stored (as an empty body)
// and marked as such.
func TestParseTombstone(t *testing.T) {
	l := kafkadlq.Parse(record(headers(connectHeaders()...), []byte("k"), nil))
	if l.OriginDetail["value_null"] != true || l.Body != nil || l.Reason != "VALUE_CONVERTER" {
		t.Fatalf("Parse = %+v", l)
	}
}

func checkLetter(t *testing.T, l bookkeeper.Letter, m *sarama.ConsumerMessage) {
	t.Helper()
	if l.Source != deadletter.SourceKafka || l.Origin == "" || l.Reason == "" || l.ErrorMessage == "" || l.Delivery == "" {
		t.Fatalf("incomplete letter %+v", l)
	}
	if l.Reason == deadletter.ReasonUnparseable && l.Problem == nil {
		t.Fatalf("unparseable without a problem: %+v", l)
	}
	if l.Problem != nil && strings.Contains(l.Problem.Error(), "panicked") {
		t.Fatalf("Parse panicked: %v", l.Problem)
	}
	if l.Reason != deadletter.ReasonUnparseable && (len(l.Reason) > 64 || strings.ToUpper(l.Reason) != l.Reason) {
		t.Fatalf("reason %q is not a stage", l.Reason)
	}
	if !json.Valid(l.Headers) || bytes.Contains(l.Headers, []byte(`\u0000`)) {
		t.Fatalf("headers %q are not JSON that jsonb takes", l.Headers)
	}
	hs, err := deadletter.DecodeKafkaHeaders(l.Headers)
	if err != nil || len(hs) != len(m.Headers) {
		t.Fatalf("headers do not round-trip: %v", err)
	}
	for i := range hs {
		if !bytes.Equal(hs[i].Key, m.Headers[i].Key) || !bytes.Equal(hs[i].Value, m.Headers[i].Value) ||
			(hs[i].Value == nil) != (m.Headers[i].Value == nil) {
			t.Fatalf("header %d does not round-trip", i)
		}
	}
	if _, err := json.Marshal(l.OriginDetail); err != nil {
		t.Fatalf("origin_detail does not marshal: %v", err)
	}
	if !bytes.Equal(l.Body, m.Value) || !bytes.Equal(l.Key, m.Key) {
		t.Fatal("key or value not kept")
	}
}

// FuzzParse feeds Parse records with any subset of the Connect headers
// holding any bytes, repeated or null, and any value: it must never panic,
// lose a header, the key or the value, or give a Letter the store can not
// hold.
func FuzzParse(f *testing.F) {
	f.Add(uint16(0xffff), []byte("events\x002\x001234\x00messagekit-bridge\x000\x00VALIDATE\x00c\x00e\x00boom"), []byte("{}"), []byte("k"))
	f.Add(uint16(0x0020), []byte("\x00\x00\x00\x00\x00lower"), []byte{0xff}, []byte(nil))
	f.Add(uint16(0x0003), []byte("bad topic\x00-1"), []byte(nil), []byte{})
	keys := []string{contracts.DLQHeaderTopic, contracts.DLQHeaderPartition, contracts.DLQHeaderOffset,
		contracts.DLQHeaderConnectorName, contracts.DLQHeaderTaskID, contracts.DLQHeaderStage, contracts.DLQHeaderClassName,
		contracts.DLQHeaderExceptionClassName, contracts.DLQHeaderExceptionMessage, contracts.KafkaHeaderID,
		contracts.KafkaHeaderEventType, contracts.DLQHeaderStage, contracts.DLQHeaderTopic, "\xff\x00", "x", "y"}
	f.Fuzz(func(t *testing.T, present uint16, values, value, key []byte) {
		parts := bytes.Split(values, []byte{0})
		var hs []*sarama.RecordHeader
		for i, k := range keys {
			if present&(1<<i) == 0 {
				continue
			}
			h := &sarama.RecordHeader{Key: []byte(k)}
			if i < len(parts) && !(len(parts[i]) == 1 && parts[i][0] == 0xfe) { // 0xfe alone: a null value
				h.Value = parts[i]
			}
			hs = append(hs, h)
		}
		m := record(hs, key, value)
		checkLetter(t, kafkadlq.Parse(m), m)
	})
}
