package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
)

// PrivatePostgres starts a PostgreSQL cluster of the test's own
// (OwnPostgres) with the given server settings (e.g. "wal_level=logical"),
// migrates its database test, and returns it with a pool. Use it for what
// the shared server must not be put through: other settings, a stop or a
// kill.
func PrivatePostgres(t testing.TB, settings ...string) *Database {
	t.Helper()
	c := OwnPostgres(t, settings...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := migrate.Up(ctx, c.URL, nil); err != nil {
		t.Fatalf("testenv: migrate: %v", err)
	}
	pool, err := pgxpool.New(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &Database{Name: "test", URL: c.URL, Pool: pool}
}
