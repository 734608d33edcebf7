package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Event is a typed event: an event type string bound to the Go type T of its
// data. Define one per event type, usually as a package-level variable:
//
//	var UserCreated = contracts.Define[UserCreatedData]("identity.user.created")
//
// The zero Event has an empty name, and its New fails validation. An Event is
// immutable and safe for concurrent use.
type Event[T any] struct {
	name string
}

// Define returns the typed event for eventType. It panics if eventType does
// not match [EventTypePattern], like regexp.MustCompile, so that a typo fails
// at program start; use [NewEvent] for type strings known only at run time.
func Define[T any](eventType string) Event[T] {
	ev, err := NewEvent[T](eventType)
	if err != nil {
		panic("contracts.Define: " + err.Error())
	}
	return ev
}

// NewEvent returns the typed event for eventType, or a [*ValidationError]
// (Field "eventType") if eventType does not match [EventTypePattern].
func NewEvent[T any](eventType string) (Event[T], error) {
	if err := checkEventType(eventType); err != nil {
		return Event[T]{}, err
	}
	return Event[T]{name: eventType}, nil
}

func checkEventType(eventType string) error {
	if !matchEventType(eventType) {
		return invalid("eventType", "%s does not match %s", quote(eventType), EventTypePattern)
	}
	return nil
}

// Name returns the event type string, e.g. "identity.user.created".
func (ev Event[T]) Name() string { return ev.name }

// New builds an envelope of this type with data encoded as its data; see
// [New] for the defaults, the options and the errors returned (T must encode
// to a JSON object).
func (ev Event[T]) New(aggregateID, source string, data T, opts ...Option) (Envelope, error) {
	return New(ev.name, aggregateID, source, data, opts...)
}

// Decode returns env's data as a T. Unknown fields in data are ignored, so
// producers can add fields. It returns a [*ValidationError] with Field
// "eventType" when env is of another type, and with Field "data" or
// "data.<path>" when data does not fit T.
func (ev Event[T]) Decode(env Envelope) (T, error) {
	var v T
	if env.EventType != ev.name {
		return v, invalid("eventType", "is %s, want %q", quote(env.EventType), ev.name)
	}
	if err := decodeData(env.Data, &v); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// decodeData unmarshals data ({} when empty) into ptr, naming the field that
// does not fit.
func decodeData(data json.RawMessage, ptr any) error {
	err := json.Unmarshal(object(data), ptr)
	if err == nil {
		return nil
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		field := "data"
		if ute.Field != "" {
			field += "." + ute.Field
		}
		return &ValidationError{
			Field:  field,
			Reason: fmt.Sprintf("cannot decode JSON %s into Go %s", ute.Value, ute.Type),
			Err:    err,
		}
	}
	return &ValidationError{Field: "data", Reason: err.Error(), Err: err}
}
