package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Option sets an optional field of an envelope built by [New] or
// [Event.New]. Options run in order after the defaults are filled, and the
// envelope is validated after the last one.
type Option func(*Envelope) error

// New builds a valid envelope: a fresh UUIDv7 eventId (time-ordered, so
// outbox and dedup indexes stay local), occurredAt = now (UTC, microseconds),
// dataVersion [DefaultDataVersion], empty metadata, and data = data encoded
// as JSON (without HTML escaping; nil gives {}; a json.RawMessage is taken
// as is after compacting). Options then override any of these.
//
// It returns a [*ValidationError] when data does not encode to a JSON object
// (Field "data"), when data or metadata nest deeper than a default [Decoder]
// accepts (DefaultMaxDepth-1 levels, the envelope being one), or when the
// result breaks a rule of [Envelope.Validate], and
// the error of uuid.NewV7 if the system's random source fails. It is safe for
// concurrent use.
func New(eventType, aggregateID, source string, data any, opts ...Option) (Envelope, error) {
	raw, err := encodeObject("data", data)
	if err != nil {
		return Envelope{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("new event id: %w", err)
	}
	e := Envelope{
		EventID:     id,
		EventType:   eventType,
		AggregateID: aggregateID,
		OccurredAt:  normTime(time.Now()),
		Source:      source,
		DataVersion: DefaultDataVersion,
		Metadata:    emptyObject(),
		Data:        raw,
	}
	for _, opt := range opts {
		if err := opt(&e); err != nil {
			return Envelope{}, err
		}
	}
	e.OccurredAt = normTime(e.OccurredAt)
	if e.DataVersion == "" {
		e.DataVersion = DefaultDataVersion
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	// Fail at the producer rather than dead-letter at every consumer.
	if tooDeep(e.Metadata, DefaultMaxDepth-1) {
		return Envelope{}, invalid("metadata", "nested deeper than %d levels", DefaultMaxDepth-1)
	}
	if tooDeep(e.Data, DefaultMaxDepth-1) {
		return Envelope{}, invalid("data", "nested deeper than %d levels", DefaultMaxDepth-1)
	}
	return e, nil
}

// encodeObject encodes v as a JSON object for field, without HTML escaping.
func encodeObject(field string, v any) (json.RawMessage, error) {
	if v == nil {
		return emptyObject(), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, &ValidationError{Field: field, Reason: "cannot encode: " + err.Error(), Err: err}
	}
	raw := bytes.TrimSpace(buf.Bytes())
	if string(raw) == "null" {
		return emptyObject(), nil
	}
	if raw[0] != '{' {
		return nil, invalid(field, "must be a JSON object, got %s", jsonKind(raw[0]))
	}
	return json.RawMessage(raw), nil
}

// WithEventID sets eventId instead of a fresh UUIDv7, e.g. to re-emit an
// event under its original id. The nil UUID fails validation.
func WithEventID(id uuid.UUID) Option {
	return func(e *Envelope) error { e.EventID = id; return nil }
}

// WithOccurredAt sets occurredAt instead of now. It is stored in UTC,
// truncated to microseconds.
func WithOccurredAt(t time.Time) Option {
	return func(e *Envelope) error { e.OccurredAt = normTime(t); return nil }
}

// WithDataVersion sets dataVersion (default [DefaultDataVersion]).
func WithDataVersion(v string) Option {
	return func(e *Envelope) error { e.DataVersion = v; return nil }
}

// WithCorrelationID sets correlationId (default empty, omitted on the wire).
func WithCorrelationID(id string) Option {
	return func(e *Envelope) error { e.CorrelationID = id; return nil }
}

// WithCausationID sets causationId (default empty, omitted on the wire).
func WithCausationID(id string) Option {
	return func(e *Envelope) error { e.CausationID = id; return nil }
}

// WithCause marks the envelope as caused by parent: causationId becomes
// parent's eventId and correlationId parent's correlationId, or parent's
// eventId when parent has none, so a whole flow shares one correlation id.
func WithCause(parent Envelope) Option {
	return func(e *Envelope) error {
		e.CausationID = parent.EventID.String()
		e.CorrelationID = parent.CorrelationID
		if e.CorrelationID == "" {
			e.CorrelationID = parent.EventID.String()
		}
		return nil
	}
}

// WithMetadata sets metadata to v encoded as JSON, which must be an object
// (e.g. a map[string]string or a struct); nil gives {}. New returns a
// [*ValidationError] with Field "metadata" otherwise.
func WithMetadata(v any) Option {
	return func(e *Envelope) error {
		raw, err := encodeObject("metadata", v)
		if err != nil {
			return err
		}
		e.Metadata = raw
		return nil
	}
}
