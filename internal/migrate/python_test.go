package migrate_test

import (
	"strings"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// tableShape describes table as the catalog has it: columns with type,
// nullability and default, indexes, constraints and triggers.
func tableShape(t *testing.T, db *testenv.Database, table string) string {
	t.Helper()
	var shape string
	err := db.Pool.QueryRow(ctx(t), `SELECT concat_ws(E'\n',
		(SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text
			|| ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), E'\n' ORDER BY a.attnum)
			FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped),
		(SELECT string_agg(pg_get_indexdef(indexrelid), E'\n' ORDER BY indexrelid::regclass::text)
			FROM pg_index WHERE indrelid = $1::regclass),
		(SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\n' ORDER BY conname)
			FROM pg_constraint WHERE conrelid = $1::regclass),
		(SELECT string_agg(tgname, E'\n' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = $1::regclass))`,
		table).Scan(&shape)
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

// On a database that already has the Python messagekit's tables, migrate
// adds messagekit's own tables beside them and never alters them; it stays
// idempotent, and the outbox statements' helpers take the varchar ids.
func TestUpBesidePythonSeedTables(t *testing.T) {
	db := testenv.PythonSeedPostgres(t, false)
	before := map[string]string{}
	for _, table := range []string{"outbox_events", "processed_messages"} {
		before[table] = tableShape(t, db, table)
	}
	for range 2 {
		if err := migrate.Up(ctx(t), db.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	for table, shape := range before {
		if after := tableShape(t, db, table); after != shape {
			t.Errorf("migrate altered %s:\nbefore\n%s\nafter\n%s", table, shape, after)
		}
	}
	if !strings.Contains(before["outbox_events"], "event_id character varying(36) true") {
		t.Fatalf("not the seed table:\n%s", before["outbox_events"])
	}
	for _, table := range []string{"dead_letters", "admin_actions", "messagekit_outbox"} {
		var ok bool
		if err := db.Pool.QueryRow(ctx(t), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("%s missing: %v", table, err)
		}
	}
	var idType, idsType, processedType string
	err := db.Pool.QueryRow(ctx(t), `SELECT pg_typeof(messagekit_outbox_event_id('0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a'))::text,
		pg_typeof(messagekit_outbox_event_ids(ARRAY['0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a'::uuid]))::text,
		pg_typeof(messagekit_processed_event_id('0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a'))::text`).Scan(&idType, &idsType, &processedType)
	if err != nil || idType != "character varying" || idsType != "character varying[]" || processedType != "character varying" {
		t.Errorf("id helpers return %q %q %q (%v), want character varying", idType, idsType, processedType, err)
	}
	var ours string
	if err := db.Pool.QueryRow(ctx(t), `SELECT format_type(atttypid, NULL) FROM pg_attribute
		WHERE attrelid = 'dead_letters'::regclass AND attname = 'event_id'`).Scan(&ours); err != nil || ours != "uuid" {
		t.Errorf("dead_letters.event_id is %q (%v)", ours, err)
	}
}

// On messagekit's own outbox the helpers are the identity on uuid, inlined,
// so lookups keep using the unique index.
func TestOutboxIDHelpersUseTheIndex(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	var plan string
	err := db.Pool.QueryRow(ctx(t), `EXPLAIN (COSTS OFF) SELECT 1 FROM outbox_events
		WHERE event_id = ANY(messagekit_outbox_event_ids(ARRAY['0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a'::uuid]))`).Scan(&plan)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "outbox_events_event_id_key") {
		t.Errorf("plan does not use the event_id index: %s", plan)
	}
}
