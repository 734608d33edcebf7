// Package migrations holds messagekit's database schema as plain SQL files,
// embedded in every binary.
//
// The files are goose migrations (`-- +goose Up` / `-- +goose Down`
// annotations, one transaction each). The binaries apply them with
// `<binary> migrate` or MIGRATE_ON_START=true; producer services that keep the
// outbox in their own database can apply FS with any goose-compatible tool.
// The schema is a contract (DESIGN.md §4): add new files, never edit applied
// ones.
package migrations

import "embed"

// FS contains the migration files at its root, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
