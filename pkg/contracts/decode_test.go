package contracts

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

const testID = "0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e"

// baseFields is a valid camelCase envelope as ordered key / raw JSON value pairs.
var baseFields = [][2]string{
	{"eventId", `"` + testID + `"`},
	{"eventType", `"identity.user.created"`},
	{"aggregateId", `"user-42"`},
	{"occurredAt", `"2026-11-26T10:00:00.123456Z"`},
	{"source", `"identity-service"`},
	{"dataVersion", `"1.0"`},
	{"correlationId", `"corr-1"`},
	{"causationId", `"cause-1"`},
	{"metadata", `{"tenant":"t1"}`},
	{"data", `{"name":"Ada","age":36}`},
}

const del = "\x00delete"

// doc returns the base envelope with mods applied: a mod replaces the raw
// value of its key, deletes the key when the value is del, and otherwise
// appends the key (in sorted order, so output is deterministic).
func doc(mods map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	add := func(k, v string) {
		if v == del {
			return
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(`"` + k + `":` + v)
	}
	seen := map[string]bool{}
	for _, kv := range baseFields {
		seen[kv[0]] = true
		if v, ok := mods[kv[0]]; ok {
			add(kv[0], v)
			continue
		}
		add(kv[0], kv[1])
	}
	var extra []string
	for k := range mods {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		add(k, mods[k])
	}
	b.WriteByte('}')
	return b.String()
}

// snake returns the base envelope with every field in its snake_case spelling.
func snake() string {
	return doc(map[string]string{
		"eventId": del, "eventType": del, "aggregateId": del, "occurredAt": del,
		"dataVersion": del, "correlationId": del, "causationId": del,
		"event_id": `"` + testID + `"`, "event_type": `"identity.user.created"`,
		"aggregate_id": `"user-42"`, "occurred_at": `"2026-11-26T10:00:00.123456Z"`,
		"data_version": `"1.0"`, "correlation_id": `"corr-1"`, "causation_id": `"cause-1"`,
	})
}

func nested(n int, open, close string) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

type kind int

const (
	ok kind = iota
	decodeErr
	validationErr
)

type decodeCase struct {
	name  string
	in    string
	kind  kind
	field string // for validationErr: ValidationError.Field
	msg   string // a substring of the error message
	check func(t *testing.T, e Envelope)
}

// wantBase checks the fields of the base envelope, however spelled.
func wantBase(t *testing.T, e Envelope) {
	t.Helper()
	want := Envelope{
		EventID:       uuid.MustParse(testID),
		EventType:     "identity.user.created",
		AggregateID:   "user-42",
		OccurredAt:    time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC),
		Source:        "identity-service",
		DataVersion:   "1.0",
		CorrelationID: "corr-1",
		CausationID:   "cause-1",
		Metadata:      json.RawMessage(`{"tenant":"t1"}`),
		Data:          json.RawMessage(`{"name":"Ada","age":36}`),
	}
	if !e.Equal(want) {
		t.Errorf("got %+v\nwant %+v", e, want)
	}
	if e.OccurredAt.Location() != time.UTC {
		t.Errorf("occurredAt location %v, want UTC", e.OccurredAt.Location())
	}
}

func wantTime(want string) func(*testing.T, Envelope) {
	return func(t *testing.T, e Envelope) {
		t.Helper()
		if got := e.OccurredAt.Format(TimeLayout); got != want {
			t.Errorf("occurredAt = %s, want %s", got, want)
		}
	}
}

func wantData(field func(Envelope) json.RawMessage, want string) func(*testing.T, Envelope) {
	return func(t *testing.T, e Envelope) {
		t.Helper()
		if got := string(field(e)); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func data(e Envelope) json.RawMessage { return e.Data }
func meta(e Envelope) json.RawMessage { return e.Metadata }

var decodeCases = []decodeCase{
	// Accepted input.
	{name: "camelCase", in: doc(nil), check: wantBase},
	{name: "snake_case", in: snake(), check: wantBase},
	{name: "mixed spellings", in: doc(map[string]string{
		"eventId": del, "occurredAt": del, "causationId": del,
		"event_id": `"` + testID + `"`, "occurred_at": `"2026-11-26T10:00:00.123456Z"`, "causation_id": `"cause-1"`,
	}), check: wantBase},
	{name: "both spellings agree", in: doc(map[string]string{
		"event_id": `"` + strings.ToUpper(testID) + `"`, "occurred_at": `"2026-11-26T11:00:00.123456+01:00"`,
		"aggregate_id": `"user-42"`,
	}), check: wantBase},
	{name: "escaped key", in: doc(map[string]string{"eventId": del, `event\u005fid`: `"` + testID + `"`}), check: wantBase},
	{name: "whitespace", in: " \n\t" + strings.NewReplacer(`{"eventId":`, "{\n\t\"eventId\" :\r\n", `,"source":`, " ,\n \"source\"\t: ").Replace(doc(nil)) + "\r\n ", check: wantBase},
	{name: "unknown keys ignored", in: doc(map[string]string{"extra": `{"a":[1,{"b":null}]}`, "EventId": `5`, "schema": `"x"`}), check: wantBase},
	{name: "only required fields", in: doc(map[string]string{
		"dataVersion": del, "correlationId": del, "causationId": del, "metadata": del, "data": del,
	}), check: func(t *testing.T, e Envelope) {
		if e.DataVersion != "1.0" || e.CorrelationID != "" || e.CausationID != "" ||
			string(e.Metadata) != "{}" || string(e.Data) != "{}" {
			t.Errorf("defaults not filled: %+v", e)
		}
	}},
	{name: "null optionals", in: doc(map[string]string{
		"dataVersion": `null`, "correlationId": `null`, "causationId": `null`, "metadata": `null`, "data": `null`,
	}), check: func(t *testing.T, e Envelope) {
		if e.DataVersion != "1.0" || e.CorrelationID != "" || string(e.Metadata) != "{}" || string(e.Data) != "{}" {
			t.Errorf("defaults not filled: %+v", e)
		}
	}},
	{name: "null data", in: doc(map[string]string{"data": "null"}), check: wantData(data, "{}")},
	{name: "empty data", in: doc(map[string]string{"data": "{ }"}), check: wantData(data, "{ }")},
	{name: "data kept verbatim", in: doc(map[string]string{"data": `{"z":1, "a":"<&>\u00e9é","n":1.50E+3}`}),
		check: wantData(data, `{"z":1, "a":"<&>\u00e9é","n":1.50E+3}`)},
	{name: "metadata kept verbatim", in: doc(map[string]string{"metadata": `{"b":2,"a":1}`}), check: wantData(meta, `{"b":2,"a":1}`)},
	{name: "zone converted to UTC", in: doc(map[string]string{"occurredAt": `"2026-11-26T12:00:00.5+02:00"`}),
		check: wantTime("2026-11-26T10:00:00.500000Z")},
	{name: "nanoseconds truncated", in: doc(map[string]string{"occurredAt": `"2026-11-26T10:00:00.123456789Z"`}),
		check: wantTime("2026-11-26T10:00:00.123456Z")},
	{name: "no fraction", in: doc(map[string]string{"occurredAt": `"2026-11-26T10:00:00Z"`}),
		check: wantTime("2026-11-26T10:00:00.000000Z")},
	{name: "negative zone", in: doc(map[string]string{"occurredAt": `"2026-11-26T00:30:00-10:00"`}),
		check: wantTime("2026-11-26T10:30:00.000000Z")},
	{name: "upper-case UUID", in: doc(map[string]string{"eventId": `"` + strings.ToUpper(testID) + `"`}), check: wantBase},
	{name: "brackets inside strings do not nest", in: doc(map[string]string{"data": `{"s":"` + nested(10000, "[", "]") + `"}`})},
	{name: "escaped strings", in: doc(map[string]string{"aggregateId": `"user\u002d42"`}), check: wantBase},
	{name: "data at depth limit", in: doc(map[string]string{"data": `{"a":` + nested(DefaultMaxDepth-2, "[", "]") + `}`})},

	// Not a JSON object: DecodeError.
	{name: "empty input", in: "", kind: decodeErr, msg: "not valid JSON"},
	{name: "whitespace only", in: " \n ", kind: decodeErr, msg: "not valid JSON"},
	{name: "garbage bytes", in: "\x00\xff\xfe garbage", kind: decodeErr, msg: "not valid JSON"},
	{name: "truncated", in: `{"eventId":`, kind: decodeErr, msg: "not valid JSON"},
	{name: "two objects", in: doc(nil) + doc(nil), kind: decodeErr, msg: "not valid JSON"},
	{name: "trailing comma", in: `{"a":1,}`, kind: decodeErr, msg: "not valid JSON"},
	{name: "array", in: `[]`, kind: decodeErr, msg: "not a JSON object (got array)"},
	{name: "string", in: `"x"`, kind: decodeErr, msg: "not a JSON object (got string)"},
	{name: "number", in: `42`, kind: decodeErr, msg: "not a JSON object (got number)"},
	{name: "null", in: `null`, kind: decodeErr, msg: "not a JSON object (got null)"},
	{name: "boolean", in: ` true `, kind: decodeErr, msg: "not a JSON object (got boolean)"},
	{name: "nested arrays in data", in: doc(map[string]string{"data": `{"a":` + nested(10000, "[", "]") + `}`}),
		kind: decodeErr, msg: "nested deeper than 64 levels"},
	{name: "nested objects in unknown key", in: doc(map[string]string{"x": strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)}),
		kind: decodeErr, msg: "nested deeper than 64 levels"},
	{name: "unbalanced deep garbage", in: nested(1000000, "[", ""), kind: decodeErr, msg: "nested deeper"},
	{name: "data just over depth limit", in: doc(map[string]string{"data": `{"a":` + nested(DefaultMaxDepth-1, "[", "]") + `}`}),
		kind: decodeErr, msg: "nested deeper than 64 levels"},

	// A JSON object that breaks the envelope rules: ValidationError.
	{name: "empty object", in: `{}`, kind: validationErr, field: "eventId", msg: "eventId: required"},
	{name: "eventId and event_id differ", in: doc(map[string]string{"event_id": `"0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9f"`}),
		kind: validationErr, field: "eventId", msg: `"eventId" and "event_id" differ`},
	{name: "occurredAt and occurred_at differ", in: doc(map[string]string{"occurred_at": `"2026-11-26T10:00:00.123457Z"`}),
		kind: validationErr, field: "occurredAt", msg: "differ"},
	{name: "aggregateId and aggregate_id differ", in: doc(map[string]string{"aggregate_id": `"user-43"`}),
		kind: validationErr, field: "aggregateId", msg: "differ"},
	{name: "dataVersion and data_version differ", in: doc(map[string]string{"data_version": `"2.0"`}),
		kind: validationErr, field: "dataVersion", msg: "differ"},
	{name: "duplicate key", in: doc(map[string]string{"eventId": `"` + testID + `","eventId":"` + testID + `"`}),
		kind: validationErr, field: "eventId", msg: `duplicate key "eventId"`},
	{name: "duplicate snake key", in: doc(map[string]string{"data": `{},"data":{}`}),
		kind: validationErr, field: "data", msg: "duplicate key"},
	{name: "missing eventId", in: doc(map[string]string{"eventId": del}), kind: validationErr, field: "eventId", msg: "eventId: required"},
	{name: "missing eventType", in: doc(map[string]string{"eventType": del}), kind: validationErr, field: "eventType", msg: "eventType: required"},
	{name: "missing aggregateId", in: doc(map[string]string{"aggregateId": del}), kind: validationErr, field: "aggregateId", msg: "aggregateId: required"},
	{name: "missing occurredAt", in: doc(map[string]string{"occurredAt": del}), kind: validationErr, field: "occurredAt", msg: "occurredAt: required"},
	{name: "missing source", in: doc(map[string]string{"source": del}), kind: validationErr, field: "source", msg: "source: required"},
	{name: "null eventId", in: doc(map[string]string{"eventId": `null`}), kind: validationErr, field: "eventId", msg: "required"},
	{name: "null source", in: doc(map[string]string{"source": `null`}), kind: validationErr, field: "source", msg: "required"},
	{name: "eventId number", in: doc(map[string]string{"eventId": `5`}), kind: validationErr, field: "eventId", msg: "eventId: must be a string, got number"},
	{name: "eventType boolean", in: doc(map[string]string{"eventType": `true`}), kind: validationErr, field: "eventType", msg: "must be a string, got boolean"},
	{name: "aggregateId number", in: doc(map[string]string{"aggregateId": `42`}), kind: validationErr, field: "aggregateId", msg: "must be a string, got number"},
	{name: "occurredAt number", in: doc(map[string]string{"occurredAt": `1700000000`}), kind: validationErr, field: "occurredAt", msg: "must be a string, got number"},
	{name: "source array", in: doc(map[string]string{"source": `["a"]`}), kind: validationErr, field: "source", msg: "must be a string, got array"},
	{name: "dataVersion number", in: doc(map[string]string{"dataVersion": `1.0`}), kind: validationErr, field: "dataVersion", msg: "must be a string, got number"},
	{name: "correlationId object", in: doc(map[string]string{"correlationId": `{}`}), kind: validationErr, field: "correlationId", msg: "must be a string, got object"},
	{name: "causation_id number", in: doc(map[string]string{"causationId": del, "causation_id": `7`}), kind: validationErr, field: "causationId", msg: "must be a string"},
	{name: "metadata array", in: doc(map[string]string{"metadata": `[]`}), kind: validationErr, field: "metadata", msg: "metadata: must be a JSON object, got array"},
	{name: "data array", in: doc(map[string]string{"data": `[1,2]`}), kind: validationErr, field: "data", msg: "data: must be a JSON object, got array"},
	{name: "data string", in: doc(map[string]string{"data": `"{}"`}), kind: validationErr, field: "data", msg: "data: must be a JSON object, got string"},
	{name: "data number", in: doc(map[string]string{"data": `0`}), kind: validationErr, field: "data", msg: "data: must be a JSON object"},
	{name: "data boolean", in: doc(map[string]string{"data": `false`}), kind: validationErr, field: "data", msg: "data: must be a JSON object"},
	{name: "bad UUID", in: doc(map[string]string{"eventId": `"abc"`}), kind: validationErr, field: "eventId", msg: `eventId: not a UUID: "abc"`},
	{name: "UUID urn form", in: doc(map[string]string{"eventId": `"urn:uuid:` + testID + `"`}), kind: validationErr, field: "eventId", msg: "not a UUID"},
	{name: "UUID braces", in: doc(map[string]string{"eventId": `"{` + testID + `}"`}), kind: validationErr, field: "eventId", msg: "not a UUID"},
	{name: "UUID bare hex", in: doc(map[string]string{"eventId": `"` + strings.ReplaceAll(testID, "-", "") + `"`}), kind: validationErr, field: "eventId", msg: "not a UUID"},
	{name: "UUID bad hex", in: doc(map[string]string{"eventId": `"0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9g"`}), kind: validationErr, field: "eventId", msg: "not a UUID"},
	{name: "nil UUID", in: doc(map[string]string{"eventId": `"00000000-0000-0000-0000-000000000000"`}), kind: validationErr, field: "eventId", msg: "nil UUID"},
	{name: "eventType upper case", in: doc(map[string]string{"eventType": `"Identity.user.created"`}), kind: validationErr, field: "eventType", msg: `eventType: "Identity.user.created" does not match`},
	{name: "eventType two parts", in: doc(map[string]string{"eventType": `"identity.user"`}), kind: validationErr, field: "eventType", msg: "does not match"},
	{name: "eventType four parts", in: doc(map[string]string{"eventType": `"identity.user.created.extra"`}), kind: validationErr, field: "eventType", msg: "does not match"},
	{name: "eventType underscore", in: doc(map[string]string{"eventType": `"identity.user_x.created"`}), kind: validationErr, field: "eventType", msg: "does not match"},
	{name: "eventType trailing newline", in: doc(map[string]string{"eventType": `"identity.user.created\n"`}), kind: validationErr, field: "eventType", msg: "does not match"},
	{name: "eventType empty", in: doc(map[string]string{"eventType": `""`}), kind: validationErr, field: "eventType", msg: "must not be empty"},
	{name: "source leading digit", in: doc(map[string]string{"source": `"9svc"`}), kind: validationErr, field: "source", msg: `source: "9svc" does not match`},
	{name: "source upper case", in: doc(map[string]string{"source": `"Svc"`}), kind: validationErr, field: "source", msg: "does not match"},
	{name: "source underscore", in: doc(map[string]string{"source": `"svc_1"`}), kind: validationErr, field: "source", msg: "does not match"},
	{name: "source empty", in: doc(map[string]string{"source": `""`}), kind: validationErr, field: "source", msg: "must not be empty"},
	{name: "aggregateId empty", in: doc(map[string]string{"aggregateId": `""`}), kind: validationErr, field: "aggregateId", msg: "must not be empty"},
	{name: "occurredAt without zone", in: doc(map[string]string{"occurredAt": `"2026-11-26T10:00:00.123456"`}), kind: validationErr, field: "occurredAt", msg: "occurredAt: missing time zone"},
	{name: "occurredAt without zone or fraction", in: doc(map[string]string{"occurredAt": `"2026-11-26T10:00:00"`}), kind: validationErr, field: "occurredAt", msg: "missing time zone"},
	{name: "occurredAt date only", in: doc(map[string]string{"occurredAt": `"2026-11-26"`}), kind: validationErr, field: "occurredAt", msg: "not an RFC 3339 timestamp"},
	{name: "occurredAt garbage", in: doc(map[string]string{"occurredAt": `"yesterday"`}), kind: validationErr, field: "occurredAt", msg: `not an RFC 3339 timestamp: "yesterday"`},
	{name: "occurredAt empty", in: doc(map[string]string{"occurredAt": `""`}), kind: validationErr, field: "occurredAt", msg: "not an RFC 3339 timestamp"},
	{name: "occurredAt year zero", in: doc(map[string]string{"occurredAt": `"0000-01-01T00:00:00Z"`}), kind: validationErr, field: "occurredAt", msg: "outside years"},
	{name: "occurredAt past year 9999 in UTC", in: doc(map[string]string{"occurredAt": `"9999-12-31T23:30:00-01:00"`}), kind: validationErr, field: "occurredAt", msg: "outside years"},
	{name: "huge bad value is cut in message", in: doc(map[string]string{"eventId": `"` + strings.Repeat("a", 100000) + `"`}), kind: validationErr, field: "eventId", msg: `aaaa"…`},
}

// TestDecode pins the envelope contract of DESIGN.md §3: which inputs are
// accepted and how they are normalised, and that each rejected input yields
// the right error kind naming the offending field.
func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode([]byte(tc.in))
			checkDecodeResult(t, tc, e, err)
		})
	}
}

func checkDecodeResult(t *testing.T, tc decodeCase, e Envelope, err error) {
	t.Helper()
	if tc.kind == ok {
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded envelope does not validate: %v", err)
		}
		if tc.check != nil {
			tc.check(t, e)
		}
		return
	}
	if err == nil {
		t.Fatalf("Decode succeeded, want error; got %+v", e)
	}
	var de *DecodeError
	var ve *ValidationError
	var perm interface{ Permanent() bool }
	if !errors.As(err, &perm) || !perm.Permanent() {
		t.Errorf("error %v is not Permanent", err)
	}
	switch tc.kind {
	case decodeErr:
		if !errors.As(err, &de) {
			t.Fatalf("error %T %v, want *DecodeError", err, err)
		}
		if errors.As(err, &ve) {
			t.Errorf("error is also a *ValidationError")
		}
	case validationErr:
		if !errors.As(err, &ve) {
			t.Fatalf("error %T %v, want *ValidationError", err, err)
		}
		if ve.Field != tc.field {
			t.Errorf("Field = %q, want %q (error %v)", ve.Field, tc.field, err)
		}
		if !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Errorf("message %q does not start with the field %q", err, tc.field)
		}
	}
	if !strings.Contains(err.Error(), tc.msg) {
		t.Errorf("message %q does not contain %q", err, tc.msg)
	}
	if len(err.Error()) > 500 {
		t.Errorf("message is %d bytes long", len(err.Error()))
	}
}

// TestDecodeDoesNotAliasInput pins that data and metadata are copied, so a
// consumer may reuse its read buffer (Kafka and AMQP clients may).
func TestDecodeDoesNotAliasInput(t *testing.T) {
	in := []byte(doc(nil))
	e, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = ' '
	}
	wantBase(t, e)
}

// TestDecoderMaxBytes pins the size limit: over MaxBytes is a DecodeError
// wrapping ErrTooLarge, checked before any parsing.
func TestDecoderMaxBytes(t *testing.T) {
	in := []byte(doc(nil))
	if _, err := (Decoder{MaxBytes: len(in)}).Decode(in); err != nil {
		t.Fatalf("input of exactly MaxBytes: %v", err)
	}
	_, err := (Decoder{MaxBytes: len(in) - 1}).Decode(in)
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want DecodeError wrapping ErrTooLarge", err)
	}
	if st, _ := StageOf(err); st != StageRecordTooLarge {
		t.Errorf("StageOf = %q, want %q", st, StageRecordTooLarge)
	}

	// The default: DefaultMaxBytes+1 bytes of otherwise valid envelope.
	pad := DefaultMaxBytes + 1 - len(doc(map[string]string{"pad": `""`}))
	big := []byte(doc(map[string]string{"pad": `"` + strings.Repeat("x", pad) + `"`}))
	if len(big) != DefaultMaxBytes+1 {
		t.Fatalf("built %d bytes", len(big))
	}
	if _, err := Decode(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("default limit: got %v, want ErrTooLarge", err)
	}
	if _, err := Decode(big[:0:0]); errors.Is(err, ErrTooLarge) {
		t.Fatalf("empty input reported too large")
	}
	big = []byte(doc(map[string]string{"pad": `"` + strings.Repeat("x", pad-1) + `"`}))
	if _, err := Decode(big); err != nil {
		t.Fatalf("input of exactly DefaultMaxBytes: %v", err)
	}
}

// TestDecoderMaxDepth pins the nesting limit and that hostile nesting fails
// fast: the limit is checked in one pass before the JSON is parsed.
func TestDecoderMaxDepth(t *testing.T) {
	d := Decoder{MaxDepth: 3}
	if _, err := d.Decode([]byte(doc(map[string]string{"data": `{"a":{}}`}))); err != nil {
		t.Fatalf("depth 3 with MaxDepth 3: %v", err)
	}
	_, err := d.Decode([]byte(doc(map[string]string{"data": `{"a":{"b":[]}}`})))
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "nested deeper than 3 levels") {
		t.Fatalf("depth 4 with MaxDepth 3: got %v", err)
	}

	hostile := []byte(doc(map[string]string{"data": `{"a":` + nested(5_000_000, "[", "]") + `}`}))
	start := time.Now()
	_, err = Decode(hostile)
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want DecodeError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("rejecting %d bytes of nesting took %v", len(hostile), d)
	}

	// A limit above encoding/json's own (10000) still yields a DecodeError.
	deep := []byte(doc(map[string]string{"data": `{"a":` + nested(20000, "[", "]") + `}`}))
	if _, err := (Decoder{MaxDepth: 1 << 20}).Decode(deep); !errors.As(err, &de) {
		t.Fatalf("got %v, want DecodeError", err)
	}
}

// TestUnmarshalJSON pins that an Envelope embedded in another JSON document
// decodes with the same rules.
func TestUnmarshalJSON(t *testing.T) {
	var wrapper struct {
		Env  Envelope  `json:"env"`
		Opt  *Envelope `json:"opt"`
		Null Envelope  `json:"null"`
	}
	in := `{"env":` + snake() + `,"opt":` + doc(nil) + `,"null":null}`
	if err := json.Unmarshal([]byte(in), &wrapper); err != nil {
		t.Fatal(err)
	}
	wantBase(t, wrapper.Env)
	wantBase(t, *wrapper.Opt)
	if !wrapper.Null.Equal(Envelope{}) {
		t.Errorf("null changed the envelope: %+v", wrapper.Null)
	}
	err := json.Unmarshal([]byte(`{"env":{"eventId":5}}`), &wrapper)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "eventId" {
		t.Errorf("got %v, want ValidationError for eventId", err)
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	_, err := Decode([]byte("nope"))
	if got := err.Error(); !strings.HasPrefix(got, "decode envelope: not valid JSON: invalid character") {
		t.Errorf("message %q", got)
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("%v does not unwrap to *json.SyntaxError", err)
	}
	_, err = Decode([]byte(`[1]`))
	if got, want := err.Error(), "decode envelope: not a JSON object (got array)"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = Decoder{MaxBytes: 2}.Decode([]byte(`{ }`))
	if got, want := err.Error(), "decode envelope: input of 3 bytes is over the 2-byte limit"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// TestSplitObjectMalformed pins that the top-level splitter fails safely
// (an error, not a panic) even on input it is never given: invalid JSON.
func TestSplitObjectMalformed(t *testing.T) {
	for _, in := range []string{`{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{"a" 1}`, `{1:2}`, `{"a":[}`, `{"a":"}`, `{"a":1 "b":2}`} {
		b := []byte(in)
		if _, err := splitObject(b, 0); err == nil {
			t.Errorf("splitObject(%q) succeeded", in)
		}
	}
}
