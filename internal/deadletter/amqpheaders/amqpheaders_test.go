package amqpheaders_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/deadletter/amqpheaders"
)

// TestRoundTrip pins that top-level headers and properties, the parts a
// replay keeps (DESIGN.md §6), come back with their AMQP types, and that
// the JSON is readable and storable in jsonb.
func TestRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	d := &amqp.Delivery{
		ContentType: "application/json", DeliveryMode: 2, Priority: 3, CorrelationId: "corr",
		MessageId: "9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59", Timestamp: ts, Type: "orders.order.created",
		AppId: "orders", Expiration: "60000", ReplyTo: "r", UserId: "guest", ContentEncoding: "gzip",
		Headers: amqp.Table{
			"x-aggregate-id":    "order-7",
			"x-kafka-partition": int32(3),
			"x-kafka-offset":    int64(42),
			"i8":                int8(-8),
			"u8":                uint8(8),
			"i16":               int16(-16),
			"u16":               uint16(16),
			"u32":               uint32(32),
			"f32":               float32(1.5),
			"f64":               2.25,
			"nan":               math.NaN(),
			"dec":               amqp.Decimal{Scale: 2, Value: 1234},
			"ts":                ts,
			"bytes":             []byte{0, 1, 2},
			"binstr":            "a\x00b\xff",
			"flag":              true,
			"nothing":           nil,
			"x-death": []any{amqp.Table{"count": int64(2), "reason": "rejected", "queue": "orders.q",
				"time": ts, "exchange": "events", "routing-keys": []any{"orders.order.created"}}},
		},
	}
	raw := amqpheaders.Encode(d)
	if !json.Valid(raw) || bytes.Contains(raw, []byte(`\u0000`)) {
		t.Fatalf("Encode = %s: not JSON that jsonb takes", raw)
	}
	var doc struct {
		Headers map[string]any `json:"headers"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	death := doc.Headers["x-death"].([]any)[0].(map[string]any)
	if death["queue"] != "orders.q" || death["count"] != 2.0 || death["time"] != "2026-11-26T10:00:00Z" {
		t.Errorf("x-death reads %v, want plain JSON", death)
	}

	pub, err := amqpheaders.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if pub.ContentType != d.ContentType || pub.DeliveryMode != 2 || pub.Priority != 3 || pub.MessageId != d.MessageId ||
		!pub.Timestamp.Equal(ts) || pub.Type != d.Type || pub.AppId != d.AppId || pub.Expiration != d.Expiration ||
		pub.ReplyTo != "r" || pub.UserId != "guest" || pub.ContentEncoding != "gzip" || pub.CorrelationId != "corr" {
		t.Errorf("properties came back as %+v", pub)
	}
	for k, want := range d.Headers {
		got := pub.Headers[k]
		switch k {
		case "nan":
			if f, ok := got.(float64); !ok || !math.IsNaN(f) {
				t.Errorf("header nan = %#v", got)
			}
			continue
		case "x-death": // nested: JSON form only
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("header %s = %#v (%T), want %#v (%T)", k, got, got, want, want)
		}
	}
	if err := pub.Headers.Validate(); err != nil {
		t.Errorf("decoded headers are not publishable: %v", err)
	}
	for _, bad := range []string{`[]`, `{"headers":{"a":"x"},"header_types":{"a":"int8"}}`,
		`{"headers":{"a":300},"header_types":{"a":"int8"}}`, `{"headers":{"a":1},"header_types":{"a":"weird"}}`,
		`{"properties":{"timestamp":"yesterday"}}`} {
		if _, err := amqpheaders.Decode(json.RawMessage(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}

// TestRawBytesRoundTrip pins that string properties and top-level header
// names that are not valid UTF-8 or hold a NUL, which jsonb can not store,
// are shown cleaned and come back byte for byte from Decode.
func TestRawBytesRoundTrip(t *testing.T) {
	d := &amqp.Delivery{MessageId: "id\x00\xff", CorrelationId: "c\xfe", Type: "ok.type.name",
		Headers: amqp.Table{"k\xfe": "v", "k\xff": int32(2), "plain": "p"}}
	raw := amqpheaders.Encode(d)
	if !json.Valid(raw) || bytes.Contains(raw, []byte(`\u0000`)) {
		t.Fatalf("Encode = %s: not JSON that jsonb takes", raw)
	}
	pub, err := amqpheaders.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if pub.MessageId != d.MessageId || pub.CorrelationId != d.CorrelationId || pub.Type != d.Type {
		t.Errorf("properties %q %q %q, want %q %q %q", pub.MessageId, pub.CorrelationId, pub.Type, d.MessageId, d.CorrelationId, d.Type)
	}
	if !reflect.DeepEqual(pub.Headers, d.Headers) {
		t.Errorf("headers %#v, want %#v", pub.Headers, d.Headers)
	}
}
