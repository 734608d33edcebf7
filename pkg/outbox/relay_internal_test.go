package outbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// The Relay's queries (and Stats') read the pending index, in publish order,
// with the generic plans prepared statements end up with: no sort (which
// would also mean ordering by something other than the xid8 column), no
// scan of the whole table, whatever its size.
func TestRelayQueriesUsePendingIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.MigratedPostgres(t)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at, published)
		SELECT gen_random_uuid(), 'sales.order.placed', 'order-' || (g % 100), '{}', now(), g % 10 <> 0
		FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "ANALYZE outbox_events"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sql, params, args string
	}{
		{"fetch", fetchPending, "int", "1000"},
		{"fetch after", fetchAfter, "int, text, bigint", "1000, '1', 5"},
		{"pending left", selectPendingLeft, "", ""},
		{"pending left after", selectPendingLeftAfter, "text, bigint", "'1', 5"},
		{"stats", readCounts, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stmt := "p_" + strings.ReplaceAll(tc.name, " ", "_")
			prepare := "PREPARE " + stmt
			if tc.params != "" {
				prepare += "(" + tc.params + ")"
			}
			if _, err := conn.Exec(ctx, prepare+" AS "+tc.sql); err != nil {
				t.Fatal(err)
			}
			execute := "EXECUTE " + stmt
			if tc.args != "" {
				execute += "(" + tc.args + ")"
			}
			rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) "+execute)
			if err != nil {
				t.Fatal(err)
			}
			var plan strings.Builder
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintln(&plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			p := plan.String()
			if tc.name == "stats" && !strings.Contains(p, "outbox_events_failed_idx") {
				t.Errorf("failed rows not counted through their index:\n%s", p)
			}
			if !strings.Contains(p, "outbox_events_pending_idx") || strings.Contains(p, "Sort") || strings.Contains(p, "Seq Scan on outbox_events") {
				t.Errorf("plan does not read the pending index in order:\n%s", p)
			}
		})
	}
}
