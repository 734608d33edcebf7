// Command messagekit-bridge consumes Kafka topics in a consumer group and
// republishes every event to a RabbitMQ exchange, marking offsets only after
// RabbitMQ confirmed (DESIGN.md §1–3); the pipeline is package
// internal/bridge. It applies migrations (`messagekit-bridge migrate` or
// MIGRATE_ON_START=true) and serves /healthz, /readyz (PostgreSQL, RabbitMQ,
// Kafka, the dedup store's circuit breaker) and /metrics on HTTP_ADDR until
// SIGTERM.
//
// Run `messagekit-bridge --help` for every variable and for what this build
// does not do yet (tracing spans, consumer-lag metric).
package main
