// Package contracts defines the messagekit wire contract: the event
// [Envelope] that travels as the outbox payload, the Kafka record value and
// the AMQP body; its validation; typed events ([Event], [Define]); a
// [Registry] from event type to Go type; and the names of the Kafka, AMQP and
// dead-letter headers that the bridge, the relay and the bookkeeper exchange.
//
// # Envelope
//
// An envelope is a JSON object with camelCase keys:
//
//	{"eventId":"0193…","eventType":"identity.user.created","aggregateId":"user-42",
//	 "occurredAt":"2026-11-26T10:00:00.123456Z","source":"identity-service",
//	 "dataVersion":"1.0","correlationId":"…","causationId":"…",
//	 "metadata":{},"data":{…}}
//
// [Decode] also accepts the snake_case spellings written by the Python
// messagekit (event_id, event_type, aggregate_id, occurred_at, data_version,
// correlation_id, causation_id); output is always camelCase. Unknown top-level
// keys are ignored so that producers can add fields without breaking
// consumers. occurredAt is normalised to UTC truncated to microseconds, the
// precision PostgreSQL keeps, and always written with six fractional digits,
// so it survives a database round trip unchanged. data and metadata are kept
// as raw JSON: the envelope never re-orders or re-encodes business fields.
//
// # Errors
//
// Decoding fails with a [*DecodeError] when the input is not a JSON object at
// all (not JSON, another JSON type, over [Decoder.MaxBytes], nested deeper
// than [Decoder.MaxDepth]) and with a [*ValidationError] when it is a JSON
// object that breaks the envelope rules. Both report Permanent() == true:
// retrying cannot fix them, so callers dead-letter the message. [StageOf]
// maps them to the dead-letter [Stage].
//
// # Concurrency
//
// Envelope and Event values are plain values, safe to share for reading.
// A [Registry] is safe for concurrent use.
package contracts
