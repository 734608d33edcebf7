package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var fixedTime = time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))

// TestNewDefaults pins what New fills: a UUIDv7, now in UTC at microsecond
// precision, dataVersion 1.0, empty metadata, data encoded as an object.
func TestNewDefaults(t *testing.T) {
	before := time.Now().Add(-time.Millisecond)
	e, err := New("identity.user.created", "user-42", "identity-service", map[string]any{"name": "<Ada>"})
	if err != nil {
		t.Fatal(err)
	}
	if v := e.EventID.Version(); v != 7 {
		t.Errorf("eventId version %d, want 7", v)
	}
	if e.OccurredAt.Location() != time.UTC || e.OccurredAt.Nanosecond()%1000 != 0 {
		t.Errorf("occurredAt %v not UTC at microsecond precision", e.OccurredAt)
	}
	if e.OccurredAt.Before(before) || e.OccurredAt.After(time.Now()) {
		t.Errorf("occurredAt %v is not now", e.OccurredAt)
	}
	if e.DataVersion != "1.0" || string(e.Metadata) != "{}" || string(e.Data) != `{"name":"<Ada>"}` {
		t.Errorf("got %+v", e)
	}
	deepest := json.RawMessage(`{"a":` + nested(DefaultMaxDepth-2, "[", "]") + `}`)
	e1, err := New("identity.user.created", "user-42", "identity-service", deepest)
	if err != nil {
		t.Fatalf("data at the depth limit: %v", err)
	}
	if b, err := e1.MarshalJSON(); err != nil {
		t.Fatal(err)
	} else if _, err := Decode(b); err != nil {
		t.Fatalf("New accepted data that Decode rejects: %v", err)
	}
	e2, err := New("identity.user.created", "user-42", "identity-service", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e2.EventID == e.EventID {
		t.Error("two envelopes share an eventId")
	}
	if string(e2.Data) != "{}" {
		t.Errorf("nil data gave %s", e2.Data)
	}
}

func TestNewOptions(t *testing.T) {
	id := uuid.MustParse(testID)
	parent, err := New("identity.user.created", "user-42", "identity-service", nil, WithEventID(id))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New("billing.account.opened", "acc-1", "billing", json.RawMessage(`{ "b": 1, "a": 2 }`),
		WithOccurredAt(fixedTime),
		WithDataVersion("2.1"),
		WithCause(parent),
		WithMetadata(map[string]string{"tenant": "t1"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.OccurredAt.Format(TimeLayout); got != "2026-11-26T09:00:00.123456Z" {
		t.Errorf("occurredAt %s", got)
	}
	if e.DataVersion != "2.1" || e.CausationID != testID || e.CorrelationID != testID {
		t.Errorf("got %+v", e)
	}
	if string(e.Metadata) != `{"tenant":"t1"}` || string(e.Data) != `{"b":1,"a":2}` {
		t.Errorf("metadata %s data %s", e.Metadata, e.Data)
	}
	child, err := New("billing.account.opened", "acc-1", "billing", nil, WithCorrelationID("flow-1"), WithCausationID("x"), WithCause(Envelope{EventID: id, CorrelationID: "flow-0"}))
	if err != nil {
		t.Fatal(err)
	}
	if child.CorrelationID != "flow-0" || child.CausationID != testID {
		t.Errorf("WithCause did not keep the parent's correlation: %+v", child)
	}
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		name, eventType, aggregateID, source string
		data                                 any
		opts                                 []Option
		field                                string
	}{
		{name: "bad event type", eventType: "Identity.user.created", aggregateID: "a", source: "s", field: "eventType"},
		{name: "empty aggregate", eventType: "a.b.c", source: "s", field: "aggregateId"},
		{name: "bad source", eventType: "a.b.c", aggregateID: "a", source: "9s", field: "source"},
		{name: "data array", eventType: "a.b.c", aggregateID: "a", source: "s", data: []int{1}, field: "data"},
		{name: "data number", eventType: "a.b.c", aggregateID: "a", source: "s", data: 5, field: "data"},
		{name: "data raw string", eventType: "a.b.c", aggregateID: "a", source: "s", data: json.RawMessage(`"x"`), field: "data"},
		{name: "data not encodable", eventType: "a.b.c", aggregateID: "a", source: "s", data: map[string]any{"c": make(chan int)}, field: "data"},
		{name: "metadata array", eventType: "a.b.c", aggregateID: "a", source: "s", opts: []Option{WithMetadata([]string{"x"})}, field: "metadata"},
		{name: "nil event id", eventType: "a.b.c", aggregateID: "a", source: "s", opts: []Option{WithEventID(uuid.Nil)}, field: "eventId"},
		{name: "zero time", eventType: "a.b.c", aggregateID: "a", source: "s", opts: []Option{WithOccurredAt(time.Time{})}, field: "occurredAt"},
		{name: "data too deep", eventType: "a.b.c", aggregateID: "a", source: "s", data: json.RawMessage(`{"a":` + nested(DefaultMaxDepth-1, "[", "]") + `}`), field: "data"},
		{name: "metadata too deep", eventType: "a.b.c", aggregateID: "a", source: "s", opts: []Option{WithMetadata(json.RawMessage(`{"a":` + nested(DefaultMaxDepth-1, "[", "]") + `}`))}, field: "metadata"},
		{name: "year 10000", eventType: "a.b.c", aggregateID: "a", source: "s", opts: []Option{WithOccurredAt(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}, field: "occurredAt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.eventType, tc.aggregateID, tc.source, tc.data, tc.opts...)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("got %v, want ValidationError for %s", err, tc.field)
			}
		})
	}
}

func validEnvelope() Envelope {
	return Envelope{
		EventID:     uuid.MustParse(testID),
		EventType:   "identity.user.created",
		AggregateID: "user-42",
		OccurredAt:  fixedTime,
		Source:      "identity-service",
	}
}

// TestValidate pins the struct-level rules, which MarshalJSON also enforces.
func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*Envelope)
		field string // "" = valid
	}{
		{name: "minimal", mod: func(*Envelope) {}},
		{name: "null data", mod: func(e *Envelope) { e.Data = json.RawMessage("null") }},
		{name: "padded data", mod: func(e *Envelope) { e.Data = json.RawMessage(" {\"a\":1} ") }},
		{name: "zero", mod: func(e *Envelope) { *e = Envelope{} }, field: "eventId"},
		{name: "no type", mod: func(e *Envelope) { e.EventType = "" }, field: "eventType"},
		{name: "bad type", mod: func(e *Envelope) { e.EventType = "a.b" }, field: "eventType"},
		{name: "no aggregate", mod: func(e *Envelope) { e.AggregateID = "" }, field: "aggregateId"},
		{name: "no time", mod: func(e *Envelope) { e.OccurredAt = time.Time{} }, field: "occurredAt"},
		{name: "no source", mod: func(e *Envelope) { e.Source = "" }, field: "source"},
		{name: "bad source", mod: func(e *Envelope) { e.Source = "Svc" }, field: "source"},
		{name: "data array", mod: func(e *Envelope) { e.Data = json.RawMessage("[]") }, field: "data"},
		{name: "data invalid", mod: func(e *Envelope) { e.Data = json.RawMessage(`{"a":`) }, field: "data"},
		{name: "metadata string", mod: func(e *Envelope) { e.Metadata = json.RawMessage(`"m"`) }, field: "metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := validEnvelope()
			tc.mod(&e)
			err := e.Validate()
			_, merr := e.MarshalJSON()
			if tc.field == "" {
				if err != nil || merr != nil {
					t.Fatalf("Validate: %v, MarshalJSON: %v", err, merr)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("Validate: got %v, want ValidationError for %s", err, tc.field)
			}
			if !errors.As(merr, &ve) || ve.Field != tc.field {
				t.Fatalf("MarshalJSON: got %v, want ValidationError for %s", merr, tc.field)
			}
		})
	}
}

// TestMarshalFormat pins the exact wire bytes: camelCase keys in contract
// order, occurredAt with six fractional digits and Z, empty optional ids
// omitted, data and metadata verbatim.
func TestMarshalFormat(t *testing.T) {
	e := validEnvelope()
	e.Data = json.RawMessage(`{"z":"<&>","a":1.50}`)
	got, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"eventId":"` + testID + `","eventType":"identity.user.created","aggregateId":"user-42",` +
		`"occurredAt":"2026-11-26T09:00:00.123456Z","source":"identity-service","dataVersion":"1.0",` +
		`"metadata":{},"data":{"z":"<&>","a":1.50}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	e.CorrelationID, e.CausationID, e.DataVersion = "c\"1", "c2", "2.0"
	e.OccurredAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.Metadata = json.RawMessage(`{"m":true}`)
	got, err = e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want = `{"eventId":"` + testID + `","eventType":"identity.user.created","aggregateId":"user-42",` +
		`"occurredAt":"2026-01-02T03:04:05.000000Z","source":"identity-service","dataVersion":"2.0",` +
		`"correlationId":"c\"1","causationId":"c2","metadata":{"m":true},"data":{"z":"<&>","a":1.50}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// json.Marshal goes through MarshalJSON (and may HTML-escape data).
	viaJSON, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(viaJSON)
	if err != nil || back.EventID != e.EventID {
		t.Fatalf("json.Marshal output does not decode: %v", err)
	}
	if _, err := json.Marshal(Envelope{}); err == nil {
		t.Error("json.Marshal of a zero envelope succeeded")
	}
}

// TestRoundTrip pins New → Marshal → Decode giving an equal envelope, for
// awkward string values too.
func TestRoundTrip(t *testing.T) {
	for _, agg := range []string{"user-42", "ünïcode ✓", "quote\" back\\slash", "ctl\x01\x1f\n\t", "line\u2028sep\u2029", "bad\xffutf8", "<&>"} {
		t.Run(agg, func(t *testing.T) {
			e, err := New("identity.user.created", agg, "identity-service",
				map[string]any{"a": []int{1, 2}, "s": agg}, WithCorrelationID(agg), WithMetadata(map[string]string{"k": agg}))
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatalf("invalid JSON: %q", b)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := e
			want.AggregateID = strings.ToValidUTF8(agg, "\uFFFD")
			want.CorrelationID = want.AggregateID
			if !got.Equal(want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			for _, key := range []string{`"eventId":`, `"eventType":`, `"aggregateId":`, `"occurredAt":`, `"correlationId":`} {
				if !bytes.Contains(b, []byte(key)) {
					t.Errorf("output lacks %s: %s", key, b)
				}
			}
		})
	}
}

// TestAppendString pins that envelope strings are escaped like
// encoding/json (without HTML escaping), so any JSON reader reads them back.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "é✓😀", "\"\\/", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\u2028\u2029", "\xff\xfe", "a\xc3", "<>&"} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		got := string(appendString(nil, s))
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendString(%q) = %s: %v", s, got, err)
			continue
		}
		var wantBack string
		_ = json.Unmarshal([]byte(want), &wantBack)
		if back != wantBack {
			t.Errorf("appendString(%q) reads back as %q, encoding/json's as %q", s, back, wantBack)
		}
	}
}

func TestEqual(t *testing.T) {
	a := validEnvelope()
	b := a
	b.OccurredAt = a.OccurredAt.Add(100 * time.Nanosecond).In(time.UTC) // same microsecond
	b.DataVersion = "1.0"
	b.Data = json.RawMessage("null")
	b.Metadata = json.RawMessage("{}")
	if !a.Equal(b) {
		t.Error("equivalent envelopes differ")
	}
	b.Data = json.RawMessage(`{"a":1}`)
	if a.Equal(b) {
		t.Error("different data compare equal")
	}
}
