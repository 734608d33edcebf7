package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
)

// DatabaseVariable names the PostgreSQL server used by integration tests.
const DatabaseVariable = "TEST_DATABASE_URL"

// DefaultDatabaseURL is used when DatabaseVariable is unset.
const DefaultDatabaseURL = "postgres://root@127.0.0.1:5432/test"

// Database is one test's own PostgreSQL database.
type Database struct {
	// Name is the database's name on the server.
	Name string
	// URL connects to this database (postgres:// form).
	URL string
	// Pool is connected to URL and closed when the test ends.
	Pool *pgxpool.Pool
}

// postgresServer resolves, once per process, the URL of a reachable server:
// TEST_DATABASE_URL (or its default), else a Docker container.
var postgresServer = sync.OnceValues(func() (string, error) {
	u := envOr(DatabaseVariable, DefaultDatabaseURL)
	errLocal := pingPostgres(u)
	if errLocal == nil {
		return u, nil
	}
	hostPort, errDocker := startContainer("postgres", "15",
		[]string{"POSTGRES_USER=root", "POSTGRES_DB=test", "POSTGRES_HOST_AUTH_METHOD=trust"}, "5432/tcp",
		func(hp string) error { return pingPostgres("postgres://root@" + hp + "/test") })
	if errDocker != nil {
		return "", errors.Join(errLocal, errDocker)
	}
	return "postgres://root@" + hostPort + "/test", nil
})

func pingPostgres(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return errors.Join(conn.Ping(ctx), conn.Close(ctx))
}

// Postgres creates an empty database for this test and drops it (closing
// every connection to it) when the test ends.
func Postgres(t testing.TB) *Database {
	t.Helper()
	skipShort(t)
	server, err := postgresServer()
	if err != nil {
		unavailable(t, DatabaseVariable, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := "mk_" + slug(t.Name(), 40, '_') + "_" + randomHex(4)
	if err := adminExec(ctx, server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})

	dbURL, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", name, err)
	}
	t.Cleanup(pool.Close) // runs before the drop above
	return &Database{Name: name, URL: dbURL, Pool: pool}
}

// MigratedPostgres is Postgres with messagekit's migrations applied.
func MigratedPostgres(t testing.TB) *Database {
	t.Helper()
	db := Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrate.Up(ctx, db.URL, nil); err != nil {
		t.Fatalf("testenv: migrate %s: %v", db.Name, err)
	}
	return db
}

func adminExec(ctx context.Context, serverURL, sql string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	return errors.Join(err, conn.Close(ctx))
}

// withDatabase returns serverURL pointing at database name instead.
func withDatabase(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s must be a postgres:// URL, got %q", DatabaseVariable, serverURL)
	}
	u.Path = "/" + name
	return u.String(), nil
}
