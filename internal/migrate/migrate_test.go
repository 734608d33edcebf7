package migrate_test

import (
	"bytes"
	"context"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/migrations"
)

// contractColumns is DESIGN.md §4: the columns other programs (Debezium's
// outbox router, operators' SQL, the admin API) rely on, with their types.
var contractColumns = map[string]map[string]string{
	"outbox_events": {
		"event_id": "uuid", "event_type": "text", "aggregate_id": "text", "payload": "jsonb",
		"occurred_at": "timestamp with time zone", "published": "boolean", "failed": "boolean",
		"attempt_count": "integer", "created_at": "timestamp with time zone",
		"published_at": "timestamp with time zone", "failed_at": "timestamp with time zone",
		"error_message": "text", "aggregate_type": "text", "headers": "jsonb", "transaction_id": "xid8",
	},
	"processed_messages": {
		"consumer_name": "text", "event_id": "uuid", "processed_at": "timestamp with time zone",
	},
	"dead_letters": {
		"id": "bigint", "event_id": "uuid", "source": "text", "origin": "text", "origin_detail": "jsonb",
		"reason": "text", "error_message": "text", "death_count": "integer", "headers": "jsonb",
		"message_key": "bytea", "body": "bytea", "first_seen_at": "timestamp with time zone",
		"last_seen_at": "timestamp with time zone", "status": "text", "replay_count": "integer",
		"replayed_at": "timestamp with time zone", "discard_reason": "text", "outbox_found": "boolean",
	},
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// The schema carries every contract column with its type, and applying the
// migrations a second time changes nothing.
func TestUpMatchesContractAndIsIdempotent(t *testing.T) {
	db := testenv.Postgres(t)
	if err := migrate.Up(ctx(t), db.URL, nil); err != nil {
		t.Fatal(err)
	}
	for table, cols := range contractColumns {
		rows, err := db.Pool.Query(ctx(t),
			"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1", table)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			got[name] = typ
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for col, typ := range cols {
			if got[col] != typ {
				t.Errorf("%s.%s: type %q, want %q", table, col, got[col], typ)
			}
		}
	}
	var pk string
	if err := db.Pool.QueryRow(ctx(t), `SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum))
		FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = 'processed_messages'::regclass AND i.indisprimary`).Scan(&pk); err != nil {
		t.Fatal(err)
	}
	if pk != "consumer_name,event_id" {
		t.Errorf("processed_messages primary key is (%s), want (consumer_name,event_id)", pk)
	}

	before := schemaFingerprint(t, db)
	if err := migrate.Up(ctx(t), db.URL, nil); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if after := schemaFingerprint(t, db); after != before {
		t.Fatalf("second Up changed the schema:\nbefore %s\nafter  %s", before, after)
	}
	var buf bytes.Buffer
	if err := migrate.Status(ctx(t), db.URL, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "00001") || !strings.Contains(buf.String(), "applied") {
		t.Fatalf("status does not show 00001 applied:\n%s", buf.String())
	}
}

// schemaFingerprint lists columns and indexes of the public schema.
func schemaFingerprint(t *testing.T, db *testenv.Database) string {
	t.Helper()
	var s string
	err := db.Pool.QueryRow(ctx(t), `SELECT
		(SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ' ' ORDER BY table_name, column_name)
		   FROM information_schema.columns WHERE table_schema = 'public') || ' | ' ||
		(SELECT string_agg(indexdef, ' ' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A migration that fails half-way leaves no trace: its transaction rolls back
// and the recorded version stays where it was.
func TestFailedMigrationLeavesSchemaAsItWas(t *testing.T) {
	db := testenv.Postgres(t)
	if err := migrate.Up(ctx(t), db.URL, nil); err != nil {
		t.Fatal(err)
	}
	before := schemaFingerprint(t, db)
	broken := fstest.MapFS{}
	files := realMigrations(t)
	for _, name := range files {
		data, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		broken[name] = &fstest.MapFile{Data: data}
	}
	broken["99999_broken.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE half_done (x int);\nALTER TABLE outbox_events ADD COLUMN y int;\nSELECT 1/0;\n-- +goose Down\n")}
	err := migrate.UpFS(ctx(t), db.URL, broken, nil)
	if err == nil || !strings.Contains(err.Error(), "99999_broken.sql") {
		t.Fatalf("want an error naming 99999_broken.sql, got %v", err)
	}
	if after := schemaFingerprint(t, db); after != before {
		t.Fatalf("failed migration changed the schema:\nbefore %s\nafter  %s", before, after)
	}
	var version int64
	if err := db.Pool.QueryRow(ctx(t), "SELECT max(version_id) FROM "+migrate.VersionTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if want := latestVersion(t, files); version != want {
		t.Fatalf("recorded version %d after a failed 99999, want %d", version, want)
	}
}

// Replicas started together with MIGRATE_ON_START=true all succeed: the
// advisory lock serialises them.
func TestConcurrentUp(t *testing.T) {
	db := testenv.Postgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = migrate.Up(ctx(t), db.URL, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
	}
	var applied int
	if err := db.Pool.QueryRow(ctx(t), "SELECT count(*) FROM "+migrate.VersionTable+" WHERE version_id > 0").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if want := len(realMigrations(t)); applied != want {
		t.Fatalf("%d version rows, want one per migration (%d)", applied, want)
	}
}

// A dead letter's identity is (source, origin, event_id), or the body's
// sha-256 without an event id: the indexes the bookkeeper's upsert relies on.
func TestDeadLetterIdentityIndexes(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	const upsertByEvent = `INSERT INTO dead_letters (event_id, source, origin, reason, body)
		VALUES ($1, 'rabbitmq', 'orders.q', 'rejected', $2)
		ON CONFLICT (source, origin, event_id) WHERE event_id IS NOT NULL
		DO UPDATE SET death_count = dead_letters.death_count + 1, last_seen_at = now()`
	const upsertByBody = `INSERT INTO dead_letters (source, origin, reason, body)
		VALUES ('kafka', 'events', 'DECODE', $1)
		ON CONFLICT (source, origin, body_sha256) WHERE event_id IS NULL
		DO UPDATE SET death_count = dead_letters.death_count + 1`
	id := "9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59"
	for range 2 {
		if _, err := db.Pool.Exec(ctx(t), upsertByEvent, id, []byte("body")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx(t), upsertByBody, []byte("\x00garbage")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx(t), upsertByBody, []byte("other garbage")); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Pool.Query(ctx(t), "SELECT source, death_count, status FROM dead_letters ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var source, status string
		var count int
		if err := rows.Scan(&source, &count, &status); err != nil {
			t.Fatal(err)
		}
		got = append(got, source+":"+status+":"+string(rune('0'+count)))
	}
	want := "rabbitmq:pending:2 kafka:pending:2 kafka:pending:1"
	if strings.Join(got, " ") != want {
		t.Fatalf("rows %v, want %s", got, want)
	}
	if _, err := db.Pool.Exec(ctx(t), "UPDATE dead_letters SET status = 'lost'"); err == nil {
		t.Fatal("status outside pending/replayed/discarded was accepted")
	}
}

// The Relay's ordering column defaults to the writing transaction's id.
func TestOutboxTransactionIDDefault(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	tx, err := db.Pool.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx(t))
	var same bool
	err = tx.QueryRow(ctx(t), `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
		VALUES (gen_random_uuid(), 'identity.user.created', 'user-1', '{}', now())
		RETURNING transaction_id = pg_current_xact_id()`).Scan(&same)
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Fatal("transaction_id is not the writing transaction's id")
	}
}

// realMigrations lists the embedded migration files in order.
func realMigrations(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded migrations (%v)", err)
	}
	return names
}

// latestVersion is the number that starts the last migration file's name.
func latestVersion(t *testing.T, names []string) int64 {
	t.Helper()
	last := names[len(names)-1]
	v, err := strconv.ParseInt(last[:strings.IndexByte(last, '_')], 10, 64)
	if err != nil {
		t.Fatalf("migration %s: %v", last, err)
	}
	return v
}
