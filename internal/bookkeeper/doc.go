// Package bookkeeper is the core of messagekit-dlq-bookkeeper: it takes the
// dead letters its sources parsed (packages amqpdlq for RabbitMQ
// dead-letter queues and kafkadlq for Kafka DLQ topics) and stores them with
// package deadletter, through a circuit breaker, with metrics and one log
// line per dead letter naming its origin and event id.
//
// [Recorder.Record] returns only once a batch is committed, or when its
// context ends: while PostgreSQL fails it retries with backoff, and while the
// breaker is open it waits, so a source blocked in Record stops taking
// messages from its broker and acknowledges nothing — consumption pauses
// and resumes by itself, without a busy loop and without losing a message.
// The breaker follows the seed's defaults (DESIGN.md §9): five consecutive
// failures open it, it half-opens after 30 s and lets one probe through.
//
// Sources never drop a message they can not parse: they hand it over as a
// [Letter] with its Problem set, to be stored raw; only a database failure
// keeps a message unacknowledged.
package bookkeeper
