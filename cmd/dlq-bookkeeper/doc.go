// Command messagekit-dlq-bookkeeper consumes Kafka DLQ topics and RabbitMQ
// dead-letter queues, stores every dead letter in PostgreSQL and marks the
// producer's outbox rows failed (DESIGN.md §1, §4).
//
// It acknowledges a message (RabbitMQ ack, Kafka offset) only after its dead
// letter is committed, stores messages it can not parse raw, and pauses
// consumption while PostgreSQL is down. It serves /healthz, /readyz
// (PostgreSQL, RabbitMQ, Kafka, both consumers, the PostgreSQL circuit
// breaker) and /metrics on HTTP_ADDR, and applies migrations with
// `messagekit-dlq-bookkeeper migrate` or MIGRATE_ON_START=true. Run
// `messagekit-dlq-bookkeeper --help` for every variable.
//
// The work lives in internal/bookkeeper (with amqpdlq and kafkadlq) and
// internal/deadletter; this package only wires them.
package main
