// Package adminapi is messagekit's admin HTTP API (DESIGN.md §7): dead-letter
// inspection and discard, the seed-compatible failed-outbox listing, outbox
// statistics, the seed's /health and /health/outbox, and the OpenAPI 3
// document that describes them.
//
// [New] returns one http.Handler for all of it: the routes under /api/v1
// need "Authorization: Bearer <token>" (compared in constant time), except
// GET /api/v1/openapi.json; /health and /health/outbox are open. Errors are
// always a JSON object {"error": "..."}.
//
// Replay endpoints (DESIGN.md §6) are not implemented yet.
package adminapi
