// Command messagekit-admin-api serves the dead-letter and outbox admin
// HTTP API (DESIGN.md §6–7).
//
// This build serves, on HTTP_ADDR, the API under /api/v1 (package
// internal/adminapi: dead-letter listing, inspection, replay and discard,
// failed outbox events and their retry, outbox replay by time range,
// outbox statistics, /api/v1/openapi.json), /health and /health/outbox,
// next to /healthz, /readyz (PostgreSQL, RabbitMQ, Kafka) and /metrics; it
// applies migrations (`messagekit-admin-api migrate` or
// MIGRATE_ON_START=true). Replays publish through one RabbitMQ connection
// and one Kafka producer, both opened on first use and closed at shutdown.
// Run `messagekit-admin-api --help` for every variable. ADMIN_TOKEN is a
// secret: it is never printed.
package main
