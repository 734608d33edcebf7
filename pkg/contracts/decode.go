package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Default limits of a [Decoder].
const (
	// DefaultMaxBytes is the default [Decoder.MaxBytes]: 16 MiB, RabbitMQ 4's
	// default message size limit.
	DefaultMaxBytes = 16 << 20
	// DefaultMaxDepth is the default [Decoder.MaxDepth]: 64 levels of JSON
	// nesting, counting the envelope object itself as one.
	DefaultMaxDepth = 64
)

// Decoder decodes envelopes under resource limits. The zero value uses the
// defaults. A Decoder is a plain value, safe for concurrent use.
type Decoder struct {
	// MaxBytes is the largest input accepted; zero or negative means
	// [DefaultMaxBytes].
	MaxBytes int
	// MaxDepth is the deepest nesting of objects and arrays accepted, the
	// envelope object counting as level 1; zero or negative means
	// [DefaultMaxDepth].
	MaxDepth int
}

// Decode decodes b with the default limits; see [Decoder.Decode].
func Decode(b []byte) (Envelope, error) { return Decoder{}.Decode(b) }

// Decode parses and validates one envelope. It accepts camelCase and
// snake_case keys (both spellings of one field must then agree), ignores
// unknown top-level keys, fills dataVersion with [DefaultDataVersion] and
// data and metadata with {} when they are absent or null, normalises
// occurredAt to UTC truncated to microseconds, and copies data and metadata
// out of b verbatim, so b may be reused afterwards. The result passes
// [Envelope.Validate].
//
// It returns a [*DecodeError] when b is longer than MaxBytes (wrapping
// [ErrTooLarge]), nested deeper than MaxDepth, not valid JSON, or valid JSON
// other than an object; and a [*ValidationError] naming the field when b is
// an object that breaks the envelope rules: a required field missing or
// null, a field of the wrong JSON type, a duplicated key, the two spellings
// of a field differing, a bad UUID, pattern or timestamp (a timestamp must
// carry a zone), or data or metadata not an object. It never panics, and its
// time is linear in len(b).
func (d Decoder) Decode(b []byte) (Envelope, error) {
	maxBytes, maxDepth := d.MaxBytes, d.MaxDepth
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(b) > maxBytes {
		return Envelope{}, &DecodeError{
			Reason: fmt.Sprintf("input of %d bytes is over the %d-byte limit", len(b), maxBytes),
			Err:    ErrTooLarge,
		}
	}
	// Checked before json.Valid, whose own limit is 10000 levels.
	if tooDeep(b, maxDepth) {
		return Envelope{}, &DecodeError{Reason: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	if !json.Valid(b) {
		var v struct{}
		err := json.Unmarshal(b, &v) // only to describe the syntax error
		if err == nil {
			err = fmt.Errorf("invalid JSON")
		}
		return Envelope{}, &DecodeError{Reason: "not valid JSON", Err: err}
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return Envelope{}, &DecodeError{Reason: "not a JSON object (got " + jsonKind(b[i]) + ")"}
	}
	raws, err := splitObject(b, i)
	if err != nil {
		return Envelope{}, err
	}
	return raws.envelope()
}

// tooDeep reports whether b nests objects and arrays deeper than max. It
// does not validate b: for invalid JSON any answer is fine, since json.Valid
// rejects it next.
func tooDeep(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i) - 1
		case '{', '[':
			depth++
			if depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// Field indexes into rawFields, in contract order.
const (
	fEventID = iota
	fEventType
	fAggregateID
	fOccurredAt
	fSource
	fDataVersion
	fCorrelationID
	fCausationID
	fMetadata
	fData
	numFields
)

// fieldNames holds each field's camelCase and snake_case key; "" when the
// two spellings are the same word.
var fieldNames = [numFields][2]string{
	{"eventId", "event_id"},
	{"eventType", "event_type"},
	{"aggregateId", "aggregate_id"},
	{"occurredAt", "occurred_at"},
	{"source", ""},
	{"dataVersion", "data_version"},
	{"correlationId", "correlation_id"},
	{"causationId", "causation_id"},
	{"metadata", ""},
	{"data", ""},
}

type fieldKey struct{ field, spelling int }

var fieldIndex = func() map[string]fieldKey {
	m := make(map[string]fieldKey, 2*numFields)
	for f, names := range fieldNames {
		for sp, name := range names {
			if name != "" {
				m[name] = fieldKey{f, sp}
			}
		}
	}
	return m
}()

// rawFields holds the raw JSON value of each known key, by field and
// spelling, sliced from the input; nil when absent.
type rawFields [numFields][2][]byte

// splitObject collects the known top-level keys of the object starting at
// b[i]. b must be valid JSON.
func splitObject(b []byte, i int) (*rawFields, error) {
	var raws rawFields
	malformed := &DecodeError{Reason: "malformed object"} // unreachable for valid JSON
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return &raws, nil
	}
	for i < len(b) && b[i] == '"' {
		end := stringEnd(b, i)
		if end > len(b) {
			return nil, malformed
		}
		rawKey := b[i+1 : end-1]
		key, ok := fieldIndex[string(rawKey)]
		if !ok && bytes.IndexByte(rawKey, '\\') >= 0 {
			var s string
			if json.Unmarshal(b[i:end], &s) == nil {
				key, ok = fieldIndex[s]
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, malformed
		}
		i = skipSpace(b, i+1)
		vend := valueEnd(b, i)
		if vend > len(b) || vend <= i {
			return nil, malformed
		}
		if ok {
			if raws[key.field][key.spelling] != nil {
				name := fieldNames[key.field][key.spelling]
				return nil, invalid(fieldNames[key.field][0], "duplicate key %q", name)
			}
			raws[key.field][key.spelling] = b[i:vend]
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return &raws, nil
		}
		break
	}
	return nil, malformed
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string whose
// opening quote is b[i], or len(b)+1 when it is unterminated.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b) + 1
}

// valueEnd returns the index after the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b) + 1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b) + 1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// envelope parses the collected fields in contract order and validates the
// result, returning the first error.
func (r *rawFields) envelope() (Envelope, error) {
	var e Envelope
	var ok bool
	var err *ValidationError
	if e.EventID, ok, err = pick(r, fEventID, parseUUID); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("eventId", "required")
	}
	if e.EventType, ok, err = pick(r, fEventType, parseString); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("eventType", "required")
	}
	if e.AggregateID, ok, err = pick(r, fAggregateID, parseString); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("aggregateId", "required")
	}
	if e.OccurredAt, ok, err = pick(r, fOccurredAt, parseTime); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("occurredAt", "required")
	}
	if e.Source, ok, err = pick(r, fSource, parseString); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("source", "required")
	}
	if e.DataVersion, _, err = pick(r, fDataVersion, parseString); err != nil {
		return Envelope{}, err
	}
	if e.DataVersion == "" {
		e.DataVersion = DefaultDataVersion
	}
	if e.CorrelationID, _, err = pick(r, fCorrelationID, parseString); err != nil {
		return Envelope{}, err
	}
	if e.CausationID, _, err = pick(r, fCausationID, parseString); err != nil {
		return Envelope{}, err
	}
	if e.Metadata, err = parseObject("metadata", r[fMetadata][0]); err != nil {
		return Envelope{}, err
	}
	if e.Data, err = parseObject("data", r[fData][0]); err != nil {
		return Envelope{}, err
	}
	if err := e.validateFields(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// pick parses both spellings of field f and returns the one present; ok is
// false when neither is present or both are null. Both present with
// different values is an error.
func pick[T comparable](r *rawFields, f int, parse func(field string, raw []byte) (T, bool, *ValidationError)) (v T, ok bool, err *ValidationError) {
	name := fieldNames[f][0]
	var vals [2]T
	var present [2]bool
	for sp, raw := range r[f] {
		if raw == nil {
			continue
		}
		if vals[sp], present[sp], err = parse(name, raw); err != nil {
			return v, false, err
		}
	}
	switch {
	case present[0] && present[1] && vals[0] != vals[1]:
		return v, false, invalid(name, "%q and %q differ", fieldNames[f][0], fieldNames[f][1])
	case present[0]:
		return vals[0], true, nil
	}
	return vals[1], present[1], nil
}

func parseString(field string, raw []byte) (string, bool, *ValidationError) {
	switch raw[0] {
	case 'n':
		return "", false, nil
	case '"':
	default:
		return "", false, invalid(field, "must be a string, got %s", jsonKind(raw[0]))
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, &ValidationError{Field: field, Reason: "bad string: " + err.Error(), Err: err}
	}
	return s, true, nil
}

func parseUUID(field string, raw []byte) (uuid.UUID, bool, *ValidationError) {
	s, ok, err := parseString(field, raw)
	if !ok || err != nil {
		return uuid.Nil, false, err
	}
	// Only the canonical 36-character form: uuid.Parse also takes urn:,
	// braced and bare-hex forms, which other readers of the wire may not.
	if len(s) != 36 {
		return uuid.Nil, false, invalid(field, "not a UUID: %s", quote(s))
	}
	id, perr := uuid.Parse(s)
	if perr != nil {
		return uuid.Nil, false, invalid(field, "not a UUID: %s", quote(s))
	}
	return id, true, nil
}

// parseTime reads an RFC 3339 timestamp; the comparable result is already
// normalised, so equal instants compare equal with ==.
func parseTime(field string, raw []byte) (time.Time, bool, *ValidationError) {
	s, ok, err := parseString(field, raw)
	if !ok || err != nil {
		return time.Time{}, false, err
	}
	t, perr := time.Parse(time.RFC3339, s)
	if perr != nil {
		if _, lerr := time.Parse("2006-01-02T15:04:05", s); lerr == nil {
			return time.Time{}, false, invalid(field, "missing time zone: %s", quote(s))
		}
		return time.Time{}, false, invalid(field, "not an RFC 3339 timestamp: %s", quote(s))
	}
	return normTime(t), true, nil
}

// parseObject returns a copy of a JSON object value, or {} when raw is
// absent or null.
func parseObject(field string, raw []byte) (json.RawMessage, *ValidationError) {
	if raw == nil || raw[0] == 'n' {
		return emptyObject(), nil
	}
	if raw[0] != '{' {
		return nil, invalid(field, "must be a JSON object, got %s", jsonKind(raw[0]))
	}
	return bytes.Clone(raw), nil
}
