package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
)

// PrivatePostgres starts a PostgreSQL cluster of the test's own (initdb and
// pg_ctl, on a free port of 127.0.0.1, trust auth, superuser root) with the
// given server settings (e.g. "wal_level=logical"; StartPostgresTLS is the
// TLS-only variant), creates and migrates
// database test in it, and stops and removes the cluster when the test
// ends. Use it for what the shared server must not be put through: other
// settings, a stop or a kill. Run as root, the server runs as user
// postgres. Without the binaries the test is skipped (or fails when
// integration tests are required).
func PrivatePostgres(t testing.TB, settings ...string) *Database {
	t.Helper()
	skipShort(t)
	bin := envOr(PostgresBinVariable, DefaultPostgresBin)
	if _, err := os.Stat(filepath.Join(bin, "pg_ctl")); err != nil {
		unavailable(t, PostgresBinVariable, err)
	}
	dir, err := os.MkdirTemp("", "messagekit-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var runAs []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("testenv: running as root, need user postgres for initdb: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(ctx context.Context, name string, args ...string) error {
		argv := append(append(runAs, filepath.Join(bin, name)), args...)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, out)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := filepath.Join(dir, "data")
	if err := run(ctx, "initdb", "-D", data, "-U", "root", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	port := freePort(t)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB", port, dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	if err := run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "start"); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := run(ctx, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	server := fmt.Sprintf("postgres://root@127.0.0.1:%d/postgres", port)
	if err := adminExec(ctx, server, "CREATE DATABASE test"); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	dbURL := fmt.Sprintf("postgres://root@127.0.0.1:%d/test", port)
	if err := migrate.Up(ctx, dbURL, nil); err != nil {
		t.Fatalf("testenv: migrate: %v", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &Database{Name: "test", URL: dbURL, Pool: pool}
}
