package contracts

import (
	"bytes"
	"encoding/binary"
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
// defaults and copies data and metadata. A Decoder is a plain value, safe
// for concurrent use.
type Decoder struct {
	// MaxBytes is the largest input accepted; zero or negative means
	// [DefaultMaxBytes].
	MaxBytes int
	// MaxDepth is the deepest nesting of objects and arrays accepted, the
	// envelope object counting as level 1; zero or negative means
	// [DefaultMaxDepth].
	MaxDepth int
	// Alias makes Decode return Data and Metadata as sub-slices of its input
	// instead of copies, which saves copying them when the caller keeps the
	// input anyway, e.g. to forward it unchanged. The caller must then not
	// modify the input while it uses Data or Metadata; appending to them
	// does not write into the input. Absent or null data and metadata are
	// still a fresh {}, and so is the data gathered from a flat envelope.
	// False (the default) copies.
	Alias bool
}

// Decode decodes b with the default limits; see [Decoder.Decode].
func Decode(b []byte) (Envelope, error) { return Decoder{}.Decode(b) }

// Decode parses and validates one envelope. It accepts camelCase and
// snake_case keys (both spellings of one field must then agree), and both
// shapes of DESIGN.md §3: nested, where data is the "data" member, and flat
// (the Python messagekit's BaseEvent.to_message()), where the business
// fields sit beside the envelope fields. The rule: when "data" is a JSON
// object it is the data and other top-level keys that are not envelope
// fields are ignored; when "data" is absent or null, the top-level members
// that are not envelope fields (in either spelling) are the data, in input
// order and verbatim, or {} when there are none. An object without an
// eventId but with a "specversion" member is read as a CloudEvents 1.0
// structured-mode event instead (see [Envelope.MarshalCloudEvent] for the
// mapping; errors then name its attributes). It fills dataVersion with
// [DefaultDataVersion] and metadata with {} when absent or null, normalises
// occurredAt to UTC truncated to microseconds, and keeps data and metadata
// verbatim: copied out of b, so b may be reused afterwards, unless
// [Decoder.Alias] is set, in which case they point into b. The result passes
// [Envelope.Validate].
//
// It returns a [*DecodeError] when b is longer than MaxBytes (wrapping
// [ErrTooLarge]), nested deeper than MaxDepth, not valid JSON, not UTF-8
// (invalid bytes inside a string: the reason names the byte offset of the
// first), or valid JSON other than an object; and a [*ValidationError] naming the field when b is
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
	// One pass over valid input; anything else takes the slow path, whose
	// only job is to describe what is wrong.
	if i := skipSpace(b, 0); i < len(b) && b[i] == '{' {
		var raws rawFields
		if dup, ok := raws.scan(b, i, maxDepth); ok {
			if dup != nil {
				return Envelope{}, dup
			}
			return raws.envelope(b, i, d.Alias)
		}
	}
	return decodeSlow(b, maxDepth, d.Alias)
}

// decodeSlow decodes b the way Decode did before it had a scanner: depth
// first, then json.Valid, which fixes which error invalid input gets. It is
// reached only for input the scanner rejects, so for valid JSON objects
// within the depth limit it never runs; it still decodes them, so that a
// scanner bug would cost speed rather than reject a good envelope.
func decodeSlow(b []byte, maxDepth int, alias bool) (Envelope, error) {
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
	// JSON text is UTF-8 (RFC 8259 §8.1) and Python's decoder refuses
	// anything else; json.Valid lets invalid bytes through inside strings,
	// the only place the grammar leaves for them.
	if off := invalidUTF8(b); off >= 0 {
		return Envelope{}, &DecodeError{Reason: fmt.Sprintf("invalid UTF-8 at byte offset %d", off)}
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return Envelope{}, &DecodeError{Reason: "not a JSON object (got " + jsonKind(b[i]) + ")"}
	}
	raws, err := splitObject(b, i)
	if err != nil {
		return Envelope{}, err
	}
	return raws.envelope(b, i, alias)
}

// invalidUTF8 returns the offset of the first byte of b that is not part of
// a valid UTF-8 sequence, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
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

// fieldOf returns the field and spelling of a top-level key name. A switch
// rather than a map: it runs for every key of every envelope. TestFieldOf
// pins it to fieldNames.
func fieldOf(name []byte) (fieldKey, bool) {
	switch string(name) {
	case "eventId":
		return fieldKey{fEventID, 0}, true
	case "event_id":
		return fieldKey{fEventID, 1}, true
	case "eventType":
		return fieldKey{fEventType, 0}, true
	case "event_type":
		return fieldKey{fEventType, 1}, true
	case "aggregateId":
		return fieldKey{fAggregateID, 0}, true
	case "aggregate_id":
		return fieldKey{fAggregateID, 1}, true
	case "occurredAt":
		return fieldKey{fOccurredAt, 0}, true
	case "occurred_at":
		return fieldKey{fOccurredAt, 1}, true
	case "source":
		return fieldKey{fSource, 0}, true
	case "dataVersion":
		return fieldKey{fDataVersion, 0}, true
	case "data_version":
		return fieldKey{fDataVersion, 1}, true
	case "correlationId":
		return fieldKey{fCorrelationID, 0}, true
	case "correlation_id":
		return fieldKey{fCorrelationID, 1}, true
	case "causationId":
		return fieldKey{fCausationID, 0}, true
	case "causation_id":
		return fieldKey{fCausationID, 1}, true
	case "metadata":
		return fieldKey{fMetadata, 0}, true
	case "data":
		return fieldKey{fData, 0}, true
	}
	return fieldKey{}, false
}

// keyOf returns the field and spelling of the top-level key written as the
// JSON string quoted, escapes resolved (event\u005fid is event_id).
func keyOf(quoted []byte) (fieldKey, bool) {
	raw := quoted[1 : len(quoted)-1]
	k, ok := fieldOf(raw)
	if !ok && bytes.IndexByte(raw, '\\') >= 0 {
		var s string
		if json.Unmarshal(quoted, &s) == nil {
			k, ok = fieldOf([]byte(s))
		}
	}
	return k, ok
}

// rawFields holds the raw JSON value of each known key, by field and
// spelling, sliced from the input; nil when absent.
type rawFields [numFields][2][]byte

// set records the value of the top-level key written as the JSON string
// quoted, or returns the error for a duplicated known key.
func (r *rawFields) set(quoted, value []byte) *ValidationError {
	k, ok := keyOf(quoted)
	if !ok {
		return nil
	}
	if r[k.field][k.spelling] != nil {
		name := fieldNames[k.field][k.spelling]
		return invalid(fieldNames[k.field][0], "duplicate key %q", name)
	}
	r[k.field][k.spelling] = value
	return nil
}

// splitObject collects the known top-level keys of the object starting at
// b[i], for the slow path. b must be valid JSON.
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
		key := b[i:end]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, malformed
		}
		i = skipSpace(b, i+1)
		vend := valueEnd(b, i)
		if vend > len(b) || vend <= i {
			return nil, malformed
		}
		if err := raws.set(key, b[i:vend]); err != nil {
			return nil, err
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
// result, returning the first error. b is the whole input and start the
// index of its top-level object. With alias, data and metadata are
// sub-slices of the input; data built from a flat envelope is always a
// fresh slice.
func (r *rawFields) envelope(b []byte, start int, alias bool) (Envelope, error) {
	if r[fEventID][0] == nil && r[fEventID][1] == nil {
		// Without an eventId, it may be a CloudEvent (ADR 0037).
		if ce, ok, dup := readCloudEvent(b, start); ok {
			if dup != nil {
				return Envelope{}, dup
			}
			return ce.envelope(alias)
		}
	}
	var t fieldTexts
	r.texts(&t)
	var e Envelope
	var ok bool
	var err *ValidationError
	if e.EventID, ok, err = pick(r, &t, fEventID, parseUUID); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("eventId", "required")
	}
	if e.EventType, ok, err = pick(r, &t, fEventType, parseText); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("eventType", "required")
	}
	if e.AggregateID, ok, err = pick(r, &t, fAggregateID, parseText); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("aggregateId", "required")
	}
	if e.OccurredAt, ok, err = pick(r, &t, fOccurredAt, parseTime); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("occurredAt", "required")
	}
	if e.Source, ok, err = pick(r, &t, fSource, parseText); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("source", "required")
	}
	if e.DataVersion, _, err = pick(r, &t, fDataVersion, parseText); err != nil {
		return Envelope{}, err
	}
	if e.DataVersion == "" {
		e.DataVersion = DefaultDataVersion
	}
	if e.CorrelationID, _, err = pick(r, &t, fCorrelationID, parseText); err != nil {
		return Envelope{}, err
	}
	if e.CausationID, _, err = pick(r, &t, fCausationID, parseText); err != nil {
		return Envelope{}, err
	}
	meta, err := objectValue("metadata", r[fMetadata][0])
	if err != nil {
		return Envelope{}, err
	}
	data, err := objectValue("data", r[fData][0])
	if err != nil {
		return Envelope{}, err
	}
	if err := e.validateFields(); err != nil {
		return Envelope{}, err
	}
	if data == nil {
		// The flat shape (DESIGN.md §3): without a data object, the
		// members that are not envelope fields are the data.
		if flat := flatData(b, start); flat != nil {
			e.Metadata, _ = objects(meta, nil, alias)
			e.Data = flat
			return e, nil
		}
	}
	e.Metadata, e.Data = objects(meta, data, alias)
	return e, nil
}

// flatData returns the members of the valid JSON object at b[start] whose
// keys are not envelope fields (in any spelling), in input order and
// verbatim, as a new JSON object whose capacity is its length; nil when
// every member is an envelope field.
func flatData(b []byte, start int) json.RawMessage {
	var out []byte
	i := skipSpace(b, start+1)
	for i < len(b) && b[i] == '"' {
		kend := stringEnd(b, i)
		vstart := skipSpace(b, skipSpace(b, kend)+1)
		vend := valueEnd(b, vstart)
		if _, known := keyOf(b[i:kend]); !known {
			if out == nil {
				out = make([]byte, 0, len(b)-start)
				out = append(out, '{')
			} else {
				out = append(out, ',')
			}
			out = append(out, b[i:kend]...)
			out = append(out, ':')
			out = append(out, b[vstart:vend]...)
		}
		i = skipSpace(b, vend)
		if i >= len(b) || b[i] != ',' {
			break
		}
		i = skipSpace(b, i+1)
	}
	if out == nil {
		return nil
	}
	out = append(out, '}')
	return out[:len(out):len(out)]
}

// fieldTexts holds the values of the plain string fields, without escapes
// and valid UTF-8, copied in advance into one allocation rather than one
// each. It covers the fields kept as strings, by field and spelling;
// eventId and occurredAt are parsed from their bytes instead.
type fieldTexts struct {
	s     [fMetadata][2]string
	plain [fMetadata][2]bool
}

// textFields are the fields fieldTexts holds.
var textFields = [...]int{fEventType, fAggregateID, fSource, fDataVersion, fCorrelationID, fCausationID}

func (r *rawFields) texts(t *fieldTexts) {
	var inners [len(textFields) * 2][]byte // by field and spelling
	for k := range inners {
		raw := r[textFields[k/2]][k%2]
		if len(raw) >= 2 && raw[0] == '"' && plainString(raw[1:len(raw)-1]) {
			inners[k] = raw[1 : len(raw)-1]
		}
	}
	var stack [256]byte // where the copies are gathered, when they fit
	buf := stack[:0]
	for _, in := range inners[:] {
		buf = append(buf, in...)
	}
	all := string(buf)
	for k, in := range inners[:] {
		if in != nil {
			f, sp := textFields[k/2], k%2
			t.s[f][sp], t.plain[f][sp], all = all[:len(in)], true, all[len(in):]
		}
	}
}

// plainString reports whether inner, the bytes between the quotes of a
// valid JSON string, is the string's value: no escapes and valid UTF-8.
func plainString(inner []byte) bool {
	// ASCII without backslashes, eight bytes at a time; anything else is
	// rare and checked exactly.
	i := 0
	for ; len(inner)-i >= 8; i += 8 {
		v := binary.LittleEndian.Uint64(inner[i:])
		bs := v ^ (lanes01 * '\\')
		if ((bs-lanes01)&^bs|v)&lanes80 != 0 {
			return plainStringSlow(inner)
		}
	}
	for ; i < len(inner); i++ {
		if c := inner[i]; c == '\\' || c >= utf8.RuneSelf {
			return plainStringSlow(inner)
		}
	}
	return true
}

func plainStringSlow(inner []byte) bool {
	return bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)
}

// A fieldParser parses one spelling of a field from its raw JSON value;
// text is its value decoded in advance when plain. ok is false for null.
type fieldParser[T comparable] func(field string, raw []byte, text string, plain bool) (v T, ok bool, err *ValidationError)

// pick parses both spellings of field f and returns the one present; ok is
// false when neither is present or both are null. Both present with
// different values is an error.
func pick[T comparable](r *rawFields, t *fieldTexts, f int, parse fieldParser[T]) (v T, ok bool, err *ValidationError) {
	name := fieldNames[f][0]
	var vals [2]T
	var present [2]bool
	for sp, raw := range r[f] {
		if raw == nil {
			continue
		}
		if vals[sp], present[sp], err = parse(name, raw, t.s[f][sp], t.plain[f][sp]); err != nil {
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

func parseText(field string, raw []byte, text string, plain bool) (string, bool, *ValidationError) {
	if plain {
		return text, true, nil
	}
	return parseString(field, raw)
}

// parseString returns the string raw holds; ok is false for null.
func parseString(field string, raw []byte) (string, bool, *ValidationError) {
	switch raw[0] {
	case 'n':
		return "", false, nil
	case '"':
	default:
		return "", false, invalid(field, "must be a string, got %s", jsonKind(raw[0]))
	}
	inner := raw[1 : len(raw)-1]
	if plainStringSlow(inner) {
		return string(inner), true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, &ValidationError{Field: field, Reason: "bad string: " + err.Error(), Err: err}
	}
	return s, true, nil
}

func parseUUID(field string, raw []byte, _ string, _ bool) (uuid.UUID, bool, *ValidationError) {
	// A canonical UUID, the common case, is parsed from its bytes: it has
	// no escapes, so they are its value.
	if len(raw) == 38 && raw[0] == '"' {
		if id, err := uuid.ParseBytes(raw[1:37]); err == nil {
			return id, true, nil
		}
	}
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
func parseTime(field string, raw []byte, _ string, _ bool) (time.Time, bool, *ValidationError) {
	// Parsed from its bytes first: whatever the RFC 3339 parser accepts is
	// ASCII without backslashes, so the bytes are the string's value, and
	// UnmarshalText accepts nothing that time.Parse rejects.
	if len(raw) >= 2 && raw[0] == '"' {
		var t time.Time
		if t.UnmarshalText(raw[1:len(raw)-1]) == nil {
			return normTime(t), true, nil
		}
	}
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

// objectValue returns a JSON object value, or nil when raw is absent or
// null.
func objectValue(field string, raw []byte) ([]byte, *ValidationError) {
	if raw == nil || raw[0] == 'n' {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, invalid(field, "must be a JSON object, got %s", jsonKind(raw[0]))
	}
	return raw, nil
}

// objects returns metadata and data as the envelope keeps them: {} for
// nil, and otherwise the input itself with alias, or else copies sharing one
// allocation. Each result's capacity is its length, so appending to one
// never writes into the other or into the input.
func objects(meta, data []byte, alias bool) (json.RawMessage, json.RawMessage) {
	if alias {
		return aliasObject(meta), aliasObject(data)
	}
	if meta == nil {
		meta = []byte("{}")
	}
	if data == nil {
		data = []byte("{}")
	}
	buf := make([]byte, 0, len(meta)+len(data))
	buf = append(append(buf, meta...), data...)
	return buf[:len(meta):len(meta)], buf[len(meta):]
}

func aliasObject(raw []byte) json.RawMessage {
	if raw == nil {
		return emptyObject()
	}
	return raw[:len(raw):len(raw)]
}
