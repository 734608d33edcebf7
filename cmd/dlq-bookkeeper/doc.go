// Command messagekit-dlq-bookkeeper consumes Kafka DLQ topics and RabbitMQ
// dead-letter queues, stores every dead letter in PostgreSQL and marks the
// producer's outbox rows failed (DESIGN.md §1, §4).
//
// This build only loads and validates its configuration, applies migrations
// (`messagekit-dlq-bookkeeper migrate` or MIGRATE_ON_START=true), and serves
// /healthz, /readyz (PostgreSQL, RabbitMQ, Kafka) and /metrics on HTTP_ADDR
// until SIGTERM; the work loop arrives in a later release. Run
// `messagekit-dlq-bookkeeper --help` for every variable.
package main
