// Package catalog loads an event catalog and checks envelopes against it
// (DESIGN.md §13): is the event type listed, is the source a listed service,
// and does data match the JSON Schema the catalog names for its
// dataVersion.
//
// # Layout
//
// A catalog is a directory, or a git repository, laid out as the Python
// messagekit's, so one catalog serves both fleets:
//
//	events.toml     event types, keyed "events.<event type>"
//	services.toml   services, keyed "services.<service name>"
//	schemas/        JSON Schemas (draft 2020-12 unless they say otherwise)
//
// events.toml (services.toml alike) may spell an entry as a table under
// events, as the Python messagekit's documentation does, or as one quoted
// key, which is what its catalog manager looks up:
//
//	[events."orders.order.created"]      # or ["events.orders.order.created"]
//	owner_service = "order-service"
//	owner_team = "commerce"
//	description = "Emitted when a new order is placed"
//	schemas = { "1.0" = "schemas/orders.order.created.v1.schema.json" }
//
// schemas maps a dataVersion to a schema file, relative to the catalog's
// root; the Python messagekit ignores the key. Every schema is compiled once
// per load. An invalid file is an error naming the file, the line and the
// key ([*FileError]).
//
// # Modes
//
// A [Catalog] in strict mode refuses an event whose type, source or
// dataVersion it does not list; otherwise it logs a warning and lets it
// through. Data that breaks its schema is refused in both modes by
// [Catalog.Check], the producer's check; the bridge decides by itself what
// to do with [Catalog.Inspect]'s answer.
//
// A [Watcher] keeps a catalog current: it reloads a directory, or
// re-reads a git branch, every refresh interval, and keeps the last good
// catalog when a reload fails.
//
// This package is apart from pkg/contracts so that importing contracts
// does not bring in a TOML parser, a JSON Schema compiler and go-git.
package catalog
