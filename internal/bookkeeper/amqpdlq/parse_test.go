package amqpdlq_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/amqpdlq"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

const dlq = "events.dlq"

var (
	eventID  = uuid.MustParse("9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59")
	deathAt  = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	envelope = []byte(`{"eventId":"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59","eventType":"orders.order.created",` +
		`"aggregateId":"order-7","occurredAt":"2026-11-26T10:00:00Z","source":"orders","data":{}}`)
)

// death is an x-death entry as RabbitMQ 3.10 writes it.
func death(queue, reason string, count any) amqp.Table {
	return amqp.Table{"count": count, "reason": reason, "queue": queue, "time": deathAt,
		"exchange": "events", "routing-keys": []any{"orders.order.created"}}
}

func delivery(headers amqp.Table, body []byte) *amqp.Delivery {
	return &amqp.Delivery{Headers: headers, Body: body, RoutingKey: "orders.order.created", DeliveryTag: 7,
		MessageId: eventID.String(), Type: "orders.order.created"}
}

// TestParseReasons pins what each kind of RabbitMQ dead letter records:
// origin from x-death[0].queue, reason, error_message, the x-death fields
// in origin_detail, and the event from message_id.
func TestParseReasons(t *testing.T) {
	tests := []struct {
		reason, message string
	}{
		{"rejected", "rejected by queue orders.q"},
		{"expired", "expired in queue orders.q"},
		{"maxlen", "maxlen in queue orders.q"},
		{"delivery_limit", "delivery_limit in queue orders.q"},
		{"some_future_reason", "some_future_reason in queue orders.q"},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			d := delivery(amqp.Table{
				"x-death":              []any{death("orders.q", tc.reason, int64(3))},
				"x-first-death-queue":  "orders.q",
				"x-first-death-reason": tc.reason,
			}, []byte("not json"))
			l := amqpdlq.Parse(d, dlq)
			if l.Problem != nil || l.Origin != "orders.q" || l.Reason != tc.reason || l.ErrorMessage != tc.message ||
				l.EventID != eventID || l.EventType != "orders.order.created" || l.Source != deadletter.SourceRabbitMQ {
				t.Fatalf("Parse = %+v", l)
			}
			det := l.OriginDetail
			if det["count"] != int64(3) || det["exchange"] != "events" || det["time"] != "2026-11-26T10:00:00Z" ||
				det["dlq_queue"] != dlq || det["deaths"] != 1 || len(det["routing_keys"].([]string)) != 1 {
				t.Fatalf("origin_detail = %v", det)
			}
		})
	}
}

// TestParseCountTypes pins that x-death count is read whatever integer
// type it arrives as (RabbitMQ versions and clients differ).
func TestParseCountTypes(t *testing.T) {
	for _, c := range []any{int8(2), uint8(2), int16(2), uint16(2), int32(2), uint32(2), int64(2), 2, uint(2),
		uint64(2), float32(2), 2.0, amqp.Decimal{Scale: 0, Value: 2}, amqp.Decimal{Scale: 1, Value: 20}} {
		l := amqpdlq.Parse(delivery(amqp.Table{"x-death": []any{death("q", "rejected", c)}}, nil), dlq)
		if l.Problem != nil || l.OriginDetail["count"] != int64(2) {
			t.Errorf("count %v (%T): problem %v, detail count %v", c, c, l.Problem, l.OriginDetail["count"])
		}
	}
	for _, c := range []any{int64(-1), 2.5, math.NaN(), math.Inf(1), "2", true, uint64(math.MaxUint64), amqp.Table{}} {
		if _, ok := amqpdlq.Count(c); ok {
			t.Errorf("Count(%v (%T)) accepted", c, c)
		}
	}
}

// TestParseMalformed pins that nothing is dropped: broken or missing
// dead-lettering headers give a Letter with its Problem, the best reason
// available (x-last-death-*, x-first-death-*, else unparseable) and the
// raw body.
func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name          string
		headers       amqp.Table
		body          []byte
		messageID     string
		origin        string
		reason        string
		wantID        bool
		problem       string
		messagePrefix string
	}{
		{name: "no headers", body: envelope, origin: dlq, reason: "unparseable", wantID: true,
			problem: "no x-death header", messagePrefix: "unparseable dead letter in queue events.dlq: no x-death header"},
		{name: "binary body, no headers", body: []byte{0, 0xff, 0xfe}, messageID: "not-a-uuid", origin: dlq,
			reason: "unparseable", problem: "no x-death header"},
		{name: "x-death a string, first-death usable", headers: amqp.Table{"x-death": "garbage",
			"x-first-death-queue": "orders.q", "x-first-death-reason": "rejected"},
			origin: "orders.q", reason: "rejected", wantID: true, problem: "x-death is a string",
			messagePrefix: "rejected by queue orders.q"},
		{name: "last-death preferred to first-death", headers: amqp.Table{"x-death": []any{},
			"x-first-death-queue": "a.q", "x-first-death-reason": "rejected",
			"x-last-death-queue": "b.q", "x-last-death-reason": "expired"},
			origin: "b.q", reason: "expired", wantID: true, problem: "empty array"},
		{name: "entry not a table", headers: amqp.Table{"x-death": []any{"x"}}, origin: dlq, reason: "unparseable",
			wantID: true, problem: "x-death[0]: entry is a string"},
		{name: "count a string", headers: amqp.Table{"x-death": []any{death("q", "rejected", "two")}},
			origin: dlq, reason: "unparseable", wantID: true, problem: `count "two"`},
		{name: "queue not a string", headers: amqp.Table{"x-death": []any{amqp.Table{"queue": int32(5), "reason": "rejected"}}},
			origin: dlq, reason: "unparseable", wantID: true, problem: "queue is a int32"},
		{name: "reason not a reason", headers: amqp.Table{"x-death": []any{death("q", "Rejected!", int64(1))}},
			origin: dlq, reason: "unparseable", wantID: true, problem: "is not a reason"},
		{name: "routing keys of numbers", headers: amqp.Table{"x-death": []any{amqp.Table{"queue": "q", "reason": "rejected",
			"routing-keys": []any{int64(1)}}}}, origin: dlq, reason: "unparseable", wantID: true, problem: "routing-keys[0]"},
		{name: "time a number", headers: amqp.Table{"x-death": []any{amqp.Table{"queue": "q", "reason": "expired",
			"time": int64(5)}}}, origin: dlq, reason: "unparseable", wantID: true, problem: "time is a int64"},
		{name: "older entry broken", headers: amqp.Table{"x-death": []any{death("new.q", "expired", int64(1)), int64(5)}},
			origin: "new.q", reason: "expired", wantID: true, problem: "x-death[1]", messagePrefix: "expired in queue new.q"},
		{name: "id from body when message_id is not a uuid", headers: amqp.Table{"x-death": []any{death("q", "rejected", int64(1))}},
			body: envelope, messageID: "order-7", origin: "q", reason: "rejected", wantID: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &amqp.Delivery{Headers: tc.headers, Body: tc.body, MessageId: eventID.String()}
			if tc.messageID != "" {
				d.MessageId = tc.messageID
			}
			l := amqpdlq.Parse(d, dlq)
			if l.Origin != tc.origin || l.Reason != tc.reason || (l.EventID == eventID) != tc.wantID {
				t.Fatalf("Parse = origin %q reason %q event %v; want %q %q id %v", l.Origin, l.Reason, l.EventID,
					tc.origin, tc.reason, tc.wantID)
			}
			if tc.problem == "" && l.Problem != nil || tc.problem != "" && (l.Problem == nil || !strings.Contains(l.Problem.Error(), tc.problem)) {
				t.Fatalf("Problem = %v, want %q", l.Problem, tc.problem)
			}
			if tc.problem != "" && l.OriginDetail["parse_error"] != l.Problem.Error() {
				t.Errorf("origin_detail parse_error = %v", l.OriginDetail["parse_error"])
			}
			if tc.messagePrefix != "" && !strings.HasPrefix(l.ErrorMessage, tc.messagePrefix) {
				t.Errorf("ErrorMessage = %q, want prefix %q", l.ErrorMessage, tc.messagePrefix)
			}
			if !bytes.Equal(l.Body, tc.body) {
				t.Errorf("body not kept raw")
			}
		})
	}
}

// TestParseNewestFirst pins that the newest x-death entry decides: a
// message rejected in orders.q, then expired in a retry queue, is a dead
// letter of the retry queue.
func TestParseNewestFirst(t *testing.T) {
	l := amqpdlq.Parse(delivery(amqp.Table{"x-death": []any{
		death("orders.retry", "expired", int64(1)), death("orders.q", "rejected", int64(4)),
	}, "x-first-death-queue": "orders.q", "x-first-death-reason": "rejected"}, nil), dlq)
	if l.Origin != "orders.retry" || l.Reason != "expired" || l.OriginDetail["deaths"] != 2 {
		t.Fatalf("Parse = %+v", l)
	}
	first, _ := l.OriginDetail["first_death"].(map[string]string)
	if first["queue"] != "orders.q" || first["reason"] != "rejected" {
		t.Fatalf("first_death = %v", l.OriginDetail["first_death"])
	}
}

// TestParseDeliveryMarker pins what recognises a redelivery: the marker
// depends on headers, properties and body (not the delivery tag or the
// redelivered flag), and only a redelivery may be a repeat.
func TestParseDeliveryMarker(t *testing.T) {
	h := func(count int64) amqp.Table { return amqp.Table{"x-death": []any{death("q", "rejected", count)}} }
	a := amqpdlq.Parse(delivery(h(1), envelope), dlq)
	redelivered := delivery(h(1), envelope)
	redelivered.Redelivered, redelivered.DeliveryTag = true, 99
	b := amqpdlq.Parse(redelivered, dlq)
	again := amqpdlq.Parse(delivery(h(2), envelope), dlq)
	if a.Delivery == "" || a.Delivery != b.Delivery || a.Delivery == again.Delivery {
		t.Fatalf("markers %q %q %q: want equal for a redelivery, different for a new death", a.Delivery, b.Delivery, again.Delivery)
	}
	if a.MaybeRepeated || !b.MaybeRepeated {
		t.Fatalf("MaybeRepeated = %v, %v; want false, true", a.MaybeRepeated, b.MaybeRepeated)
	}
	var doc struct {
		Properties map[string]any `json:"properties"`
		Headers    map[string]any `json:"headers"`
	}
	if err := json.Unmarshal(a.Headers, &doc); err != nil || doc.Properties["message_id"] != eventID.String() ||
		doc.Headers["x-death"] == nil {
		t.Fatalf("headers = %s (%v)", a.Headers, err)
	}
}

// checkLetter asserts what must hold for any Letter Parse returns.
func checkLetter(t *testing.T, l bookkeeper.Letter, d *amqp.Delivery) {
	t.Helper()
	if l.Source != deadletter.SourceRabbitMQ || l.Origin == "" || l.Reason == "" || l.ErrorMessage == "" || l.Delivery == "" {
		t.Fatalf("incomplete letter %+v", l)
	}
	if l.Reason == deadletter.ReasonUnparseable && l.Problem == nil {
		t.Fatalf("unparseable without a problem: %+v", l)
	}
	if l.Problem != nil && strings.Contains(l.Problem.Error(), "panicked") {
		t.Fatalf("Parse panicked: %v", l.Problem)
	}
	if !json.Valid(l.Headers) || bytes.Contains(l.Headers, []byte(`\u0000`)) {
		t.Fatalf("headers %q are not JSON that jsonb takes", l.Headers)
	}
	if _, err := json.Marshal(l.OriginDetail); err != nil {
		t.Fatalf("origin_detail does not marshal: %v", err)
	}
	if !bytes.Equal(l.Body, d.Body) {
		t.Fatal("body not kept")
	}
	if !utf8.ValidString(deadletter.CleanText(l.Origin, deadletter.MaxOriginBytes)) {
		t.Fatal("origin can not be cleaned")
	}
}

// gen builds AMQP field values from fuzz bytes, leaning towards the
// shapes of x-death.
type gen struct{ b []byte }

func (g *gen) next() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *gen) bytes(n int) []byte {
	n = min(n, len(g.b))
	out := g.b[:n]
	g.b = g.b[n:]
	return out
}

func (g *gen) int64() int64 {
	var n int64
	for _, c := range g.bytes(8) {
		n = n<<8 | int64(c)
	}
	return n
}

var words = []string{"queue", "reason", "count", "time", "exchange", "routing-keys", "original-expiration",
	"rejected", "expired", "maxlen", "delivery_limit", "orders.q", "", "\x00", "\xff"}

func (g *gen) value(depth int) any {
	switch g.next() % 19 {
	case 0:
		return nil
	case 1:
		return g.next()%2 == 0
	case 2:
		return int8(g.next())
	case 3:
		return g.next()
	case 4:
		return int16(g.int64())
	case 5:
		return uint16(g.int64())
	case 6:
		return int32(g.int64())
	case 7:
		return uint32(g.int64())
	case 8:
		return g.int64()
	case 9:
		return math.Float32frombits(uint32(g.int64()))
	case 10:
		return math.Float64frombits(uint64(g.int64()))
	case 11:
		return amqp.Decimal{Scale: g.next(), Value: int32(g.int64())}
	case 12:
		return string(g.bytes(int(g.next() % 32)))
	case 13:
		return g.bytes(int(g.next() % 32))
	case 14:
		return time.Unix(g.int64()%(1<<40), 0)
	case 15, 16:
		if depth > 3 {
			return nil
		}
		t := amqp.Table{}
		for range g.next() % 8 {
			t[words[int(g.next())%len(words)]] = g.value(depth + 1)
		}
		return t
	case 17:
		if depth > 3 {
			return nil
		}
		var a []any
		for range g.next() % 4 {
			a = append(a, g.value(depth+1))
		}
		return a
	}
	return words[int(g.next())%len(words)]
}

// FuzzParse feeds Parse arbitrary x-death, x-first/last-death-*,
// message_id and body values: it must never panic, drop the body, or give a
// Letter the store can not hold.
func FuzzParse(f *testing.F) {
	f.Add([]byte{15, 5, 0, 12, 8, 'o', 'r', 'd', 'e', 'r', 's', '.', 'q', 1, 18, 7, 2, 8, 0, 0, 0, 0, 0, 0, 0, 3}, "id", []byte("{}"))
	f.Add([]byte{17, 3, 15, 2, 1, 18, 11, 7, 18, 7}, eventID.String(), envelope)
	f.Add([]byte{12, 3, 'a', 0, 0xff}, "", []byte{0, 1})
	f.Fuzz(func(t *testing.T, spec []byte, messageID string, body []byte) {
		g := &gen{b: spec}
		headers := amqp.Table{}
		for _, k := range []string{"x-death", "x-first-death-queue", "x-first-death-reason", "x-last-death-queue",
			"x-last-death-reason", "other"} {
			if g.next()%4 != 0 {
				headers[k] = g.value(0)
			}
		}
		if g.next()%3 == 0 {
			var entries []any
			for range g.next() % 3 {
				e := amqp.Table{}
				for _, k := range []string{"queue", "reason", "count", "time", "exchange", "routing-keys"} {
					e[k] = g.value(1)
				}
				entries = append(entries, e)
			}
			headers["x-death"] = entries
		}
		d := &amqp.Delivery{Headers: headers, Body: body, MessageId: messageID, Type: string(g.bytes(8))}
		checkLetter(t, amqpdlq.Parse(d, dlq), d)
	})
}
