package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// execOnly hides every method of a pool but Exec, as a caller's own
// Execer would, and records how many rows each statement deleted.
type execOnly struct {
	db       outbox.Execer
	affected []int64
}

func (e *execOnly) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := e.db.Exec(ctx, sql, args...)
	if err == nil {
		e.affected = append(e.affected, tag.RowsAffected())
	}
	return tag, err
}

// seedPython writes Python messagekit outbox rows (no id column): per
// state, old (2h) and fresh ones.
func seedPython(t *testing.T, ctx context.Context, db *testenv.Database) {
	t.Helper()
	if _, err := db.Pool.Exec(ctx, `TRUNCATE outbox_events`); err != nil {
		t.Fatal(err)
	}
	// 5 old published, 1 fresh published, 2 old pending, 1 fresh pending,
	// 1 old published and failed, 1 old unpublished and failed.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at,
			published, failed, attempt_count, created_at, published_at, failed_at, error_message)
		SELECT gen_random_uuid()::text, 't', 'a', '{}', now(), p, f, 0, now() - age::interval,
			CASE WHEN p THEN now() END, CASE WHEN f THEN now() END, NULL
		FROM (VALUES (true, false, '2 hours', 5), (true, false, '1 minute', 1), (false, false, '2 hours', 2),
			(false, false, '0 seconds', 1), (true, true, '2 hours', 1), (false, true, '2 hours', 1)) AS v(p, f, age, n),
			generate_series(1, n)`); err != nil {
		t.Fatal(err)
	}
}

func pythonLeft(t *testing.T, ctx context.Context, db *testenv.Database) string {
	t.Helper()
	left := map[string]int64{}
	rows, err := db.Pool.Query(ctx, `SELECT CASE WHEN failed AND published THEN 'failed' WHEN failed THEN 'deadletter'
		WHEN published THEN 'published' ELSE 'pending' END, count(*) FROM outbox_events GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var state string
		var c int64
		if err := rows.Scan(&state, &c); err != nil {
			t.Fatal(err)
		}
		left[state] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(left)
}

// Prune works on the Python messagekit's outbox table (ADR 0036), which
// has no id column: by event_id, with the same selection and batches as on
// this module's table, whether db is a pool or an Exec-only Execer.
func TestPrunePythonOutbox(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.PythonSeedPostgres(t, false)
	for _, tc := range []struct {
		name     string
		execOnly bool
		opts     outbox.PruneOptions
		deleted  int64
		left     map[string]int64
	}{
		{"published only", false, outbox.PruneOptions{BatchSize: 2}, 5,
			map[string]int64{"pending": 3, "published": 1, "failed": 1, "deadletter": 1}},
		{"CDC and failed", false, outbox.PruneOptions{CDC: true, IncludeFailed: true, BatchSize: 3}, 9,
			map[string]int64{"pending": 1, "published": 1}},
		{"Exec only, and failed", true, outbox.PruneOptions{IncludeFailed: true, BatchSize: 2}, 7,
			map[string]int64{"pending": 3, "published": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seedPython(t, ctx, db)
			rec := &execOnly{db: db.Pool}
			var n int64
			var err error
			if tc.execOnly {
				n, err = outbox.Prune(ctx, rec, time.Hour, tc.opts)
			} else {
				n, err = outbox.Prune(ctx, db.Pool, time.Hour, tc.opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.deleted {
				t.Errorf("deleted %d, want %d", n, tc.deleted)
			}
			if got := pythonLeft(t, ctx, db); got != fmt.Sprint(tc.left) {
				t.Errorf("left %s, want %v", got, tc.left)
			}
			if tc.execOnly {
				// Bounded batches: the statement by id failed (no such
				// column), then 2, 2, 2 and the last one by event_id.
				if fmt.Sprint(rec.affected) != "[2 2 2 1]" {
					t.Errorf("statements deleted %v rows, want [2 2 2 1]", rec.affected)
				}
			}
		})
	}
}
