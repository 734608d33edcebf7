package contracts

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrTooLarge is wrapped by the [*DecodeError] returned for input longer than
// [Decoder.MaxBytes]. [StageOf] maps it to [StageRecordTooLarge].
var ErrTooLarge = errors.New("input too large")

// ErrUnknownType is returned, wrapped with the type name
// (unknown event type "x.y.z"), by [Registry.Decode] for an event type that
// was never registered. Test for it with errors.Is.
var ErrUnknownType = errors.New("unknown event type")

// DecodeError reports input that is not a JSON object at all: not valid JSON,
// a JSON value of another type, input over [Decoder.MaxBytes] or nested deeper
// than [Decoder.MaxDepth]. [Decode] returns it as a *DecodeError; the bridge
// dead-letters such records with stage [StageDecode].
type DecodeError struct {
	// Reason says what is wrong, e.g. "not a JSON object (got array)".
	Reason string
	// Err is the underlying cause, if any: a *json.SyntaxError or [ErrTooLarge].
	Err error
}

// Error returns "decode envelope: " followed by the reason and the cause.
func (e *DecodeError) Error() string {
	if e.Err != nil && e.Err != ErrTooLarge {
		return "decode envelope: " + e.Reason + ": " + e.Err.Error()
	}
	return "decode envelope: " + e.Reason
}

// Unwrap returns the underlying cause, possibly nil.
func (e *DecodeError) Unwrap() error { return e.Err }

// Permanent reports true: the same bytes never decode, so retrying is useless.
func (e *DecodeError) Permanent() bool { return true }

// ValidationError reports a JSON object, or an [Envelope] value, that breaks
// the envelope rules: a required field missing, a field of the wrong JSON
// type, a pattern not matched, conflicting camelCase and snake_case
// spellings, or (from [Event.Decode]) data that does not fit the Go type.
// [Decode], [Envelope.Validate], [New] and [Event.Decode] return it as a
// *ValidationError; the bridge dead-letters such records with stage
// [StageValidate].
type ValidationError struct {
	// Field is the camelCase name of the offending field ("eventId",
	// "occurredAt", "data"), or a dotted path into data ("data.user.id").
	Field string
	// Reason says what is wrong, e.g. `not a UUID: "abc"`.
	Reason string
	// Err is the underlying cause, if any.
	Err error
}

// Error returns "<field>: <reason>", e.g. `eventId: not a UUID: "abc"`.
func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the underlying cause, possibly nil.
func (e *ValidationError) Unwrap() error { return e.Err }

// Permanent reports true: the same message never validates, so retrying is
// useless.
func (e *ValidationError) Permanent() bool { return true }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// quote returns s quoted for an error message, cut to a readable length so
// that a huge hostile value does not end up whole in logs.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// Stage is the value of the [DLQHeaderStage] header on a Kafka dead-letter
// record: the step at which the bridge gave up on the record.
type Stage string

// Dead-letter stages (DESIGN.md §3).
const (
	// StageDecode: the record value is not a JSON object ([*DecodeError]).
	StageDecode Stage = "DECODE"
	// StageValidate: a JSON object that breaks the envelope rules
	// ([*ValidationError]).
	StageValidate Stage = "VALIDATE"
	// StageRecordTooLarge: the record is over the bridge's size limit.
	StageRecordTooLarge Stage = "RECORD_TOO_LARGE"
	// StageAMQPNack: RabbitMQ nacked the publish after all retries.
	StageAMQPNack Stage = "AMQP_NACK"
	// StageAMQPUnroutable: RabbitMQ returned the message as unroutable.
	StageAMQPUnroutable Stage = "AMQP_UNROUTABLE"
)

// String returns the stage as it is written in the header.
func (s Stage) String() string { return string(s) }

// StageOf maps an error from this package to its dead-letter stage: an error
// wrapping [ErrTooLarge] to [StageRecordTooLarge], another [*DecodeError] to
// [StageDecode], a [*ValidationError] to [StageValidate]. It looks through
// wrapping with errors.As and reports false for any other error.
func StageOf(err error) (Stage, bool) {
	var de *DecodeError
	var ve *ValidationError
	switch {
	case errors.Is(err, ErrTooLarge):
		return StageRecordTooLarge, true
	case errors.As(err, &de):
		return StageDecode, true
	case errors.As(err, &ve):
		return StageValidate, true
	}
	return "", false
}
