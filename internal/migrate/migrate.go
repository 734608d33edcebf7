// Package migrate applies messagekit's embedded schema (package migrations)
// with goose.
//
// Every migration runs in its own transaction, so a failing one leaves the
// schema as it was; applying when nothing is pending is a no-op. A PostgreSQL
// advisory lock serialises concurrent runs, so several replicas started with
// MIGRATE_ON_START=true do not race. Applied versions are kept in the table
// messagekit_schema_migrations, not goose's default, because the outbox often
// lives in a producer's own database, which may already use goose.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/firstunicorn/messagekit-go/migrations"
)

// VersionTable is the table that records applied migrations.
const VersionTable = "messagekit_schema_migrations"

// lockID is the advisory lock key held while migrating ("mkschema" in ASCII),
// distinct from goose's default so a producer's own goose runs do not wait on it.
const lockID int64 = 0x6d6b736368656d61

// Up applies every pending migration of migrations.FS to the database at
// databaseURL and logs each one applied. It returns an error naming the failed
// migration; that migration's changes are rolled back.
func Up(ctx context.Context, databaseURL string, logger *slog.Logger) error {
	return UpFS(ctx, databaseURL, migrations.FS, logger)
}

// UpFS is Up with another set of migrations; tests use it to prove that a
// failing migration leaves the schema as it was.
func UpFS(ctx context.Context, databaseURL string, fsys fs.FS, logger *slog.Logger) (err error) {
	p, db, err := newProvider(databaseURL, fsys, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	results, err := p.Up(ctx)
	if pe := (*goose.PartialError)(nil); errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
		return fmt.Errorf("migrate: %s failed and was rolled back: %w", pe.Failed.Source.Path, pe.Err)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if logger != nil {
		for _, r := range results {
			logger.InfoContext(ctx, "migration applied",
				slog.Int64("version", r.Source.Version), slog.String("file", r.Source.Path),
				slog.Duration("took", r.Duration))
		}
		current, _ := p.GetDBVersion(ctx)
		logger.InfoContext(ctx, "schema up to date", slog.Int64("version", current), slog.Int("applied", len(results)))
	}
	return nil
}

// Status writes one line per known migration to w: its version, file and
// whether (and when) it was applied.
func Status(ctx context.Context, databaseURL string, w io.Writer) (err error) {
	p, db, err := newProvider(databaseURL, migrations.FS, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	for _, s := range st {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = "applied " + s.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		if _, err := fmt.Fprintf(w, "%05d  %-40s %s\n", s.Source.Version, s.Source.Path, applied); err != nil {
			return err
		}
	}
	return nil
}

func newProvider(databaseURL string, fsys fs.FS, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: open database: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID),
		// Poll the lock every second, for up to five minutes: a concurrent
		// runner usually finishes within a second.
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("migrate: %w", err), db.Close())
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("migrate: %w", err), db.Close())
	}
	return p, db, nil
}

// The pgx database/sql driver registers itself as "pgx" on import.
var _ = stdlib.GetDefaultDriver
