// Command messagekit-admin-api serves the dead-letter and outbox replay
// HTTP API (DESIGN.md §6–7).
//
// This build only loads and validates its configuration, applies migrations
// (`messagekit-admin-api migrate` or MIGRATE_ON_START=true), and serves
// /healthz, /readyz (PostgreSQL, RabbitMQ, Kafka) and /metrics on HTTP_ADDR
// until SIGTERM; the API under /api/v1 arrives in a later release. Run
// `messagekit-admin-api --help` for every variable. ADMIN_TOKEN is a secret:
// it is never printed.
package main
