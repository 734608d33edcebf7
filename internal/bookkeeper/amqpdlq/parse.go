package amqpdlq

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/deadletter/amqpheaders"
)

// Headers RabbitMQ writes on dead-lettered messages.
const (
	HeaderXDeath           = "x-death"
	HeaderFirstDeathPrefix = "x-first-death-"
	HeaderLastDeathPrefix  = "x-last-death-"
)

// Death is one entry of the x-death header: the message's dead-letterings
// from one queue for one reason.
type Death struct {
	// Queue is the queue the message was dead-lettered from.
	Queue string
	// Reason is rejected, expired, maxlen or delivery_limit (or a reason a
	// later RabbitMQ adds).
	Reason string
	// Count is how many times the message was dead-lettered from Queue for
	// Reason; zero when the entry has none.
	Count int64
	// Time is when it was first dead-lettered from Queue for Reason; zero
	// when the entry has none.
	Time time.Time
	// Exchange is the exchange the message had been published to.
	Exchange string
	// RoutingKeys are the routing keys it had been published with (CC
	// included).
	RoutingKeys []string
	// OriginalExpiration is the per-message TTL it had, for reason expired.
	OriginalExpiration string
}

// SummaryDeath is what the x-first-death-* or x-last-death-* headers say.
type SummaryDeath struct {
	Queue, Reason, Exchange string
}

func (s SummaryDeath) valid() bool { return s.Queue != "" && validReason(s.Reason) }

var reasonRE = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

func validReason(r string) bool { return reasonRE.MatchString(r) }

// ParseXDeath reads an x-death header value as RabbitMQ 3.10 through 4.x
// write it: an array of tables, newest first, each with queue, reason,
// count (any integer type), time, exchange, routing-keys and, for expired
// messages, original-expiration. It returns the entries that parse, in
// order, up to the first that does not, and an error naming what is wrong
// with that one (or with v itself). An entry needs a non-empty queue and a
// reason of lower-case letters and underscores; the other fields may be
// missing but not of the wrong type.
func ParseXDeath(v any) ([]Death, error) {
	if v == nil {
		return nil, errors.New("no x-death header")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("x-death is %s, want an array of tables", typeName(v))
	}
	if len(arr) == 0 {
		return nil, errors.New("x-death is an empty array")
	}
	deaths := make([]Death, 0, len(arr))
	for i, e := range arr {
		d, err := parseDeath(e)
		if err != nil {
			return deaths, fmt.Errorf("x-death[%d]: %w", i, err)
		}
		deaths = append(deaths, d)
	}
	return deaths, nil
}

func parseDeath(e any) (Death, error) {
	var t amqp.Table
	switch e := e.(type) {
	case amqp.Table:
		t = e
	case map[string]any:
		t = e
	default:
		return Death{}, fmt.Errorf("entry is %s, want a table", typeName(e))
	}
	var d Death
	var err error
	if d.Queue, err = str(t, "queue", true); err != nil {
		return Death{}, err
	}
	if d.Reason, err = str(t, "reason", true); err != nil {
		return Death{}, err
	}
	if !validReason(d.Reason) {
		return Death{}, fmt.Errorf("reason %q is not a reason", deadletter.CleanText(d.Reason, 64))
	}
	if d.Exchange, err = str(t, "exchange", false); err != nil {
		return Death{}, err
	}
	if d.OriginalExpiration, err = str(t, "original-expiration", false); err != nil {
		return Death{}, err
	}
	if c, ok := t["count"]; ok && c != nil {
		n, ok := Count(c)
		if !ok {
			return Death{}, fmt.Errorf("count %s is not a non-negative integer", describe(c))
		}
		d.Count = n
	}
	if tv, ok := t["time"]; ok && tv != nil {
		ts, ok := tv.(time.Time)
		if !ok {
			return Death{}, fmt.Errorf("time is %s, want a timestamp", typeName(tv))
		}
		d.Time = ts.UTC()
	}
	if rk, ok := t["routing-keys"]; ok && rk != nil {
		keys, ok := rk.([]any)
		if !ok {
			return Death{}, fmt.Errorf("routing-keys is %s, want an array of strings", typeName(rk))
		}
		d.RoutingKeys = make([]string, len(keys))
		for i, k := range keys {
			s, ok := k.(string)
			if !ok {
				return Death{}, fmt.Errorf("routing-keys[%d] is %s, want a string", i, typeName(k))
			}
			d.RoutingKeys[i] = s
		}
	}
	return d, nil
}

// str reads t[key] as a string; required means it must be present and
// non-empty.
func str(t amqp.Table, key string, required bool) (string, error) {
	v, ok := t[key]
	if !ok || v == nil {
		if required {
			return "", fmt.Errorf("no %s", key)
		}
		return "", nil
	}
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return "", fmt.Errorf("%s is %s, want a string", key, typeName(v))
	}
	if required && s == "" {
		return "", fmt.Errorf("%s is empty", key)
	}
	return s, nil
}

// Count returns v as a non-negative integer count, accepting every numeric
// type amqp091 decodes (int8, uint8, int16, uint16, int32, uint32, int64,
// float32, float64, Decimal) and Go's other integer types, as long as the
// value is integral, finite and not negative.
func Count(v any) (int64, bool) {
	var n int64
	switch v := v.(type) {
	case int:
		n = int64(v)
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case uint:
		if uint64(v) > math.MaxInt64 {
			return 0, false
		}
		n = int64(v)
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
		n = int64(v)
	case float32:
		return floatCount(float64(v))
	case float64:
		return floatCount(v)
	case amqp.Decimal:
		f := float64(v.Value)
		for range v.Scale {
			f /= 10
		}
		return floatCount(f)
	default:
		return 0, false
	}
	return n, n >= 0
}

func floatCount(f float64) (int64, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f >= math.MaxInt64 || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}

// ParseSummary reads the x-first-death-* (prefix HeaderFirstDeathPrefix)
// or x-last-death-* headers. Fields of the wrong type are left empty.
func ParseSummary(h amqp.Table, prefix string) SummaryDeath {
	get := func(k string) string {
		s, _ := h[prefix+k].(string)
		return s
	}
	return SummaryDeath{Queue: get("queue"), Reason: get("reason"), Exchange: get("exchange")}
}

// ErrorMessage returns the human-readable cause of a dead letter with
// reason from queue, as error_message and the outbox row's error_message
// hold it: "rejected by queue orders.q", "expired in queue orders.q",
// "maxlen in queue orders.q", "delivery_limit in queue orders.q", and
// "<reason> in queue <queue>" for a reason RabbitMQ may add later.
func ErrorMessage(reason, queue string) string {
	if reason == "rejected" {
		return "rejected by queue " + queue
	}
	return reason + " in queue " + queue
}

// Parse turns a delivery from the dead-letter queue dlq into a Letter. It
// never fails and never panics: a message without a usable x-death header
// (published to the DLQ directly, headers of the wrong types) is kept raw
// with its Problem set, its origin and reason taken from x-last-death-* or
// x-first-death-* when those are usable, else dlq and
// deadletter.ReasonUnparseable.
//
// The origin is x-death[0].queue, the reason x-death[0].reason; the event
// id is message_id when it is a UUID, else the body's; the event type is
// the type property, else the body's. origin_detail holds dlq_queue,
// routing_key, redelivered and, from x-death[0], queue, reason, exchange,
// routing_keys, count, time, original_expiration, plus deaths (the number
// of x-death entries), first_death and last_death (the x-first/last-death-*
// headers) and parse_error.
func Parse(d *amqp.Delivery, dlq string) (l bookkeeper.Letter) {
	defer func() {
		if p := recover(); p != nil {
			l = raw(d, dlq, fmt.Errorf("parsing the delivery panicked: %v", p))
		}
	}()
	detail := map[string]any{"dlq_queue": dlq, "routing_key": d.RoutingKey, "redelivered": d.Redelivered}
	var origin, reason string
	deaths, problem := ParseXDeath(d.Headers[HeaderXDeath])
	if len(deaths) > 0 {
		x := deaths[0]
		origin, reason = x.Queue, x.Reason
		detail["queue"], detail["reason"], detail["exchange"] = x.Queue, x.Reason, x.Exchange
		detail["routing_keys"] = nonNil(x.RoutingKeys)
		detail["count"] = x.Count
		if !x.Time.IsZero() {
			detail["time"] = x.Time.Format(time.RFC3339)
		}
		if x.OriginalExpiration != "" {
			detail["original_expiration"] = x.OriginalExpiration
		}
	}
	if problem == nil && len(deaths) > 0 {
		detail["deaths"] = len(deaths)
	}
	first, last := ParseSummary(d.Headers, HeaderFirstDeathPrefix), ParseSummary(d.Headers, HeaderLastDeathPrefix)
	for key, s := range map[string]SummaryDeath{"first_death": first, "last_death": last} {
		if s != (SummaryDeath{}) {
			detail[key] = map[string]string{"queue": s.Queue, "reason": s.Reason, "exchange": s.Exchange}
		}
	}
	if origin == "" {
		switch {
		case last.valid():
			origin, reason = last.Queue, last.Reason
		case first.valid():
			origin, reason = first.Queue, first.Reason
		default:
			origin, reason = dlq, deadletter.ReasonUnparseable
		}
	}
	l = letter(d, dlq, detail)
	l.Origin, l.Reason = origin, reason
	if reason == deadletter.ReasonUnparseable {
		l.ErrorMessage = fmt.Sprintf("unparseable dead letter in queue %s: %v", dlq, problem)
	} else {
		l.ErrorMessage = ErrorMessage(reason, origin)
	}
	if problem != nil {
		detail["parse_error"] = problem.Error()
		l.Problem = problem
	}
	return l
}

// letter fills what every Letter from d has: event, headers, body, the
// delivery marker and log attributes.
func letter(d *amqp.Delivery, dlq string, detail map[string]any) bookkeeper.Letter {
	headers := amqpheaders.Encode(d)
	l := bookkeeper.Letter{
		DeadLetter: deadletter.DeadLetter{
			Source:        deadletter.SourceRabbitMQ,
			OriginDetail:  detail,
			Headers:       headers,
			Body:          d.Body,
			MaybeRepeated: d.Redelivered,
		},
		Attrs: []slog.Attr{slog.String("queue", dlq), slog.Uint64("delivery_tag", d.DeliveryTag),
			slog.Bool("redelivered", d.Redelivered)},
	}
	id, idOK := bookkeeper.EventID(d.MessageId)
	l.EventID, l.EventType = id, d.Type
	if !idOK || l.EventType == "" { // only then is the body read
		bodyID, bodyType := bookkeeper.EventFromBody(d.Body)
		if !idOK {
			l.EventID = bodyID
		}
		if l.EventType == "" {
			l.EventType = bodyType
		}
	}
	// A redelivery carries the same properties, headers and body; a new
	// dead-lettering of the same event changes x-death (count or time).
	h := sha256.New()
	h.Write(headers)
	h.Write([]byte{0})
	h.Write(d.Body)
	l.Delivery = "amqp:" + dlq + ":" + hex.EncodeToString(h.Sum(nil)[:16])
	return l
}

// raw is the Letter of a delivery Parse could not handle at all.
func raw(d *amqp.Delivery, dlq string, problem error) bookkeeper.Letter {
	detail := map[string]any{"dlq_queue": dlq, "routing_key": d.RoutingKey, "redelivered": d.Redelivered,
		"parse_error": problem.Error()}
	var l bookkeeper.Letter
	func() {
		defer func() {
			if p := recover(); p != nil {
				l = bookkeeper.Letter{DeadLetter: deadletter.DeadLetter{Source: deadletter.SourceRabbitMQ,
					OriginDetail: detail, Body: d.Body, MaybeRepeated: d.Redelivered}}
			}
		}()
		l = letter(d, dlq, detail)
	}()
	l.Origin, l.Reason, l.Problem = dlq, deadletter.ReasonUnparseable, problem
	l.ErrorMessage = fmt.Sprintf("unparseable dead letter in queue %s: %v", dlq, problem)
	return l
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "void"
	case string:
		return "a string"
	case []byte:
		return "a byte array"
	case bool:
		return "a boolean"
	case amqp.Table, map[string]any:
		return "a table"
	case []any:
		return "an array"
	case time.Time:
		return "a timestamp"
	}
	return fmt.Sprintf("a %T", v)
}

// describe names v's type and, for short scalars, its value.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", deadletter.CleanText(v, 32))
	case amqp.Table, map[string]any, []any, []byte:
		return typeName(v)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}
