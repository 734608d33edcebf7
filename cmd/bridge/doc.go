// Command messagekit-bridge consumes Kafka topics in a consumer group and
// republishes every event to a RabbitMQ exchange, marking offsets only after
// RabbitMQ confirmed (DESIGN.md §1–3); the pipeline is package
// internal/bridge. It applies migrations (`messagekit-bridge migrate` or
// MIGRATE_ON_START=true) and serves /healthz, /readyz (PostgreSQL, RabbitMQ,
// Kafka, the dedup store's circuit breaker) and /metrics on HTTP_ADDR until
// SIGTERM. Every publish gets an OpenTelemetry span, the child of the
// record's Kafka traceparent, whose context the AMQP message carries.
//
// Run `messagekit-bridge --help` for every variable.
package main
