// Command messagekit-bridge consumes Kafka topics in a consumer group and
// republishes every event to a RabbitMQ exchange, marking offsets only after
// RabbitMQ confirmed (DESIGN.md §1–3).
//
// This build only loads and validates its configuration, applies migrations
// (`messagekit-bridge migrate` or MIGRATE_ON_START=true), and serves
// /healthz, /readyz (PostgreSQL, RabbitMQ, Kafka) and /metrics on HTTP_ADDR
// until SIGTERM; the work loop arrives in a later release. Run
// `messagekit-bridge --help` for every variable.
package main
