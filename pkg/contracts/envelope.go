package contracts

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Patterns of the envelope's constrained string fields (DESIGN.md §3).
const (
	// EventTypePattern is what eventType must match, e.g. "identity.user.created".
	EventTypePattern = `^[a-z]+\.[a-z-]+\.[a-z-]+$`
	// SourcePattern is what source must match, e.g. "identity-service".
	SourcePattern = `^[a-z][a-z0-9-]*$`
)

// DefaultDataVersion is the dataVersion of an envelope that does not state one.
const DefaultDataVersion = "1.0"

// TimeLayout is the layout occurredAt is written in: UTC with exactly six
// fractional digits, e.g. "2026-11-26T10:00:00.123456Z".
const TimeLayout = "2006-01-02T15:04:05.000000Z"

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// matchEventType reports whether s matches [EventTypePattern]. Hand-written
// because a regexp match costs more than the rest of decoding the field;
// TestPatternMatchers pins it to the pattern.
func matchEventType(s string) bool {
	i := 0
	for i < len(s) && isLower(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for range 2 {
		if i >= len(s) || s[i] != '.' {
			return false
		}
		i++
		start := i
		for i < len(s) && (isLower(s[i]) || s[i] == '-') {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// matchSource reports whether s matches [SourcePattern].
func matchSource(s string) bool {
	if len(s) == 0 || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// Envelope is one event as it travels on the wire. Build one with [New] or
// [Event.New], read one with [Decode], write one with [Envelope.MarshalJSON].
//
// The zero value is not a valid envelope. An Envelope is a plain value: safe
// to read from several goroutines, but Data and Metadata share their backing
// arrays between copies, so do not modify them in place.
type Envelope struct {
	// EventID identifies the event; consumers dedup on it. Required, not
	// the nil UUID. [New] fills a UUIDv7.
	EventID uuid.UUID
	// EventType matches [EventTypePattern]. Required.
	EventType string
	// AggregateID names the entity the event is about; it is the Kafka key,
	// so it decides ordering. Required, non-empty.
	AggregateID string
	// OccurredAt is when the event happened. Required. [New] and [Decode]
	// store it in UTC truncated to microseconds; [Envelope.MarshalJSON]
	// normalises it the same way.
	OccurredAt time.Time
	// Source names the producing service and matches [SourcePattern].
	// Required.
	Source string
	// DataVersion is the version of the data schema. Empty means
	// [DefaultDataVersion]; [New] and [Decode] fill it.
	DataVersion string
	// CorrelationID groups the events of one business flow. Optional.
	CorrelationID string
	// CausationID is the eventId of the event that caused this one. Optional.
	CausationID string
	// Metadata is a JSON object of free-form, non-business attributes, kept
	// as raw JSON. Empty or null means {}.
	Metadata json.RawMessage
	// Data is the JSON object of business fields, kept as raw JSON so that
	// the envelope never re-orders or re-encodes them. Empty or null means {}.
	Data json.RawMessage
}

// Validate reports the first rule the envelope breaks, in field order, as a
// [*ValidationError], or nil. It checks required fields, patterns,
// the occurredAt range (years 0001 to 9999 in UTC) and that Data and
// Metadata are JSON objects (or empty). It does not apply the [Decoder]'s
// size and depth limits, which are resource limits of the reader.
func (e Envelope) Validate() error {
	if err := e.validateFields(); err != nil {
		return err
	}
	if err := validateObject("metadata", e.Metadata); err != nil {
		return err
	}
	if err := validateObject("data", e.Data); err != nil {
		return err
	}
	return nil
}

// validateFields checks everything but Data and Metadata, which Decode has
// already checked while parsing.
func (e Envelope) validateFields() *ValidationError {
	t := normTime(e.OccurredAt)
	switch {
	case e.EventID == uuid.Nil:
		return invalid("eventId", "must not be the nil UUID")
	case e.EventType == "":
		return invalid("eventType", "must not be empty")
	case !matchEventType(e.EventType):
		return invalid("eventType", "%s does not match %s", quote(e.EventType), EventTypePattern)
	case e.AggregateID == "":
		return invalid("aggregateId", "must not be empty")
	case e.OccurredAt.IsZero():
		return invalid("occurredAt", "must be set")
	case t.Before(minTime) || t.After(maxTime):
		return invalid("occurredAt", "%s is outside years 0001 to 9999 UTC", e.OccurredAt.UTC().Format(time.RFC3339Nano))
	case e.Source == "":
		return invalid("source", "must not be empty")
	case !matchSource(e.Source):
		return invalid("source", "%s does not match %s", quote(e.Source), SourcePattern)
	}
	return nil
}

func validateObject(field string, raw json.RawMessage) *ValidationError {
	raw = bytes.TrimSpace(raw)
	if isEmptyJSON(raw) {
		return nil
	}
	if !json.Valid(raw) {
		return invalid(field, "not valid JSON")
	}
	if raw[0] != '{' {
		return invalid(field, "must be a JSON object, got %s", jsonKind(raw[0]))
	}
	return nil
}

func isEmptyJSON(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// object returns raw, or {} for an empty or null object.
func object(raw json.RawMessage) json.RawMessage {
	if isEmptyJSON(bytes.TrimSpace(raw)) {
		return emptyObject()
	}
	return raw
}

// emptyObject returns a fresh {}: callers may own and modify it.
func emptyObject() json.RawMessage { return json.RawMessage{'{', '}'} }

// normTime returns t as the envelope keeps it: UTC, truncated to microseconds.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Equal reports whether e and o are the same envelope: equal fields, instants
// equal at microsecond precision, an empty DataVersion equal to
// [DefaultDataVersion], empty Data or Metadata equal to {}, and otherwise
// Data and Metadata equal byte for byte.
func (e Envelope) Equal(o Envelope) bool {
	return e.EventID == o.EventID &&
		e.EventType == o.EventType &&
		e.AggregateID == o.AggregateID &&
		normTime(e.OccurredAt).Equal(normTime(o.OccurredAt)) &&
		e.Source == o.Source &&
		e.dataVersion() == o.dataVersion() &&
		e.CorrelationID == o.CorrelationID &&
		e.CausationID == o.CausationID &&
		bytes.Equal(object(e.Metadata), object(o.Metadata)) &&
		bytes.Equal(object(e.Data), object(o.Data))
}

func (e Envelope) dataVersion() string {
	if e.DataVersion == "" {
		return DefaultDataVersion
	}
	return e.DataVersion
}

// MarshalJSON validates e and writes it in the wire format: camelCase keys in
// contract order, occurredAt in [TimeLayout], dataVersion defaulted,
// correlationId and causationId omitted when empty, metadata and data always
// present ({} when empty) and copied verbatim. It returns the
// [*ValidationError] of [Envelope.Validate] for an invalid envelope, so an
// invalid envelope is never written.
//
// json.Marshal(e) calls it but then escapes <, > and & inside data; call
// e.MarshalJSON() directly to keep data byte for byte.
func (e Envelope) MarshalJSON() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	meta, data := bytes.TrimSpace(object(e.Metadata)), bytes.TrimSpace(object(e.Data))
	b := make([]byte, 0, 256+len(e.AggregateID)+len(e.CorrelationID)+len(e.CausationID)+len(meta)+len(data))
	b = append(b, `{"eventId":"`...)
	b = append(b, e.EventID.String()...)
	b = append(b, `","eventType":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"aggregateId":`...)
	b = appendString(b, e.AggregateID)
	b = append(b, `,"occurredAt":"`...)
	b = normTime(e.OccurredAt).AppendFormat(b, TimeLayout)
	b = append(b, `","source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"dataVersion":`...)
	b = appendString(b, e.dataVersion())
	if e.CorrelationID != "" {
		b = append(b, `,"correlationId":`...)
		b = appendString(b, e.CorrelationID)
	}
	if e.CausationID != "" {
		b = append(b, `,"causationId":`...)
		b = appendString(b, e.CausationID)
	}
	b = append(b, `,"metadata":`...)
	b = append(b, meta...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	return b, nil
}

// UnmarshalJSON decodes b with [Decode] and the default limits, so an
// Envelope can sit inside other JSON documents. JSON null leaves e unchanged.
// It returns [*DecodeError] or [*ValidationError] like [Decode].
func (e *Envelope) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	env, err := Decode(b)
	if err != nil {
		return err
	}
	*e = env
	return nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does, except
// that <, > and & are not escaped: invalid UTF-8 becomes U+FFFD, control
// characters and U+2028/U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
