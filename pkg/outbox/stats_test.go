package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// seed writes one row per state and backdates created_at:
// state is one of pending, published, failed (published and failed by the
// bookkeeper), deadletter (failed by the Relay, never published).
func seed(t testing.TB, ctx context.Context, db *testenv.Database, state string, age time.Duration) contracts.Envelope {
	t.Helper()
	e := event(t, "order-1", 1)
	write(t, ctx, db.Pool, e)
	set := map[string]string{
		"pending":    "",
		"published":  ", published = true, published_at = now()",
		"failed":     ", published = true, published_at = now(), failed = true, failed_at = now()",
		"deadletter": ", failed = true, failed_at = now()",
	}[state]
	if _, err := db.Pool.Exec(ctx, "UPDATE outbox_events SET created_at = now() - $2::interval"+set+" WHERE event_id = $1",
		e.EventID, age); err != nil {
		t.Fatal(err)
	}
	return e
}

// Stats counts what the Relay has still to publish and what failed, and
// reads a replication slot in CDC mode. The local server has
// wal_level=replica, so the slot path is tested with a physical slot; a
// logical (Debezium) slot is read by the same query, with
// confirmed_flush_lsn instead of restart_lsn.
func TestReadStats(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)

	empty, err := outbox.ReadStats(ctx, db.Pool, outbox.StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if empty != (outbox.Stats{}) {
		t.Errorf("empty outbox: %+v", empty)
	}

	seed(t, ctx, db, "pending", 10*time.Minute)
	seed(t, ctx, db, "pending", time.Minute)
	seed(t, ctx, db, "pending", 0)
	seed(t, ctx, db, "published", time.Hour)
	seed(t, ctx, db, "failed", time.Hour)
	seed(t, ctx, db, "deadletter", 2*time.Hour)
	s, err := outbox.ReadStats(ctx, db.Pool, outbox.StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 3 || s.Failed != 2 || s.Slot != nil {
		t.Errorf("stats %+v, want 3 pending, 2 failed, no slot", s)
	}
	if s.OldestPendingAge < 10*time.Minute || s.OldestPendingAge > 11*time.Minute {
		t.Errorf("oldest pending age %v, want about 10m", s.OldestPendingAge)
	}

	t.Run("slot", func(t *testing.T) {
		name := "mk_stats_" + fmt.Sprint(time.Now().UnixNano())
		if _, err := db.Pool.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := db.Pool.Exec(context.Background(), "SELECT pg_drop_replication_slot($1)", name); err != nil {
				t.Errorf("drop slot %s: %v", name, err)
			}
		})
		before, err := outbox.ReadStats(ctx, db.Pool, outbox.StatsOptions{SlotName: name})
		if err != nil {
			t.Fatal(err)
		}
		want := outbox.SlotStats{Name: name, Found: true, Type: "physical", WALStatus: "reserved"}
		got := *before.Slot
		got.LagBytes = 0
		if got != want || before.Slot.LagBytes < 0 || before.Pending != 0 || before.Failed != 2 {
			t.Errorf("stats %+v slot %+v, want failed 2 and slot %+v with lag >= 0", before, *before.Slot, want)
		}
		for i := range 20 {
			write(t, ctx, db.Pool, event(t, "order-2", i))
		}
		after, err := outbox.ReadStats(ctx, db.Pool, outbox.StatsOptions{SlotName: name})
		if err != nil {
			t.Fatal(err)
		}
		if after.Slot.LagBytes <= before.Slot.LagBytes {
			t.Errorf("lag %d bytes after writing WAL, was %d", after.Slot.LagBytes, before.Slot.LagBytes)
		}
	})
	t.Run("missing slot", func(t *testing.T) {
		s, err := outbox.ReadStats(ctx, db.Pool, outbox.StatsOptions{SlotName: "mk_no_such_slot"})
		if err != nil {
			t.Fatal(err)
		}
		if *s.Slot != (outbox.SlotStats{Name: "mk_no_such_slot"}) {
			t.Errorf("missing slot reported as %+v", *s.Slot)
		}
	})
}

// Prune deletes what the options select and is older than the retention,
// in bounded statements, and never an unpublished row outside CDC mode.
func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	for _, tc := range []struct {
		name    string
		opts    outbox.PruneOptions
		deleted int64
		left    map[string]int64 // state -> rows left
	}{
		{"published only", outbox.PruneOptions{BatchSize: 2}, 5,
			map[string]int64{"pending": 3, "published": 1, "failed": 1, "deadletter": 1}},
		{"and failed", outbox.PruneOptions{IncludeFailed: true}, 7,
			map[string]int64{"pending": 3, "published": 1}},
		{"CDC", outbox.PruneOptions{CDC: true, BatchSize: 3}, 7,
			map[string]int64{"pending": 1, "published": 1, "failed": 1, "deadletter": 1}},
		{"CDC and failed", outbox.PruneOptions{CDC: true, IncludeFailed: true}, 9,
			map[string]int64{"pending": 1, "published": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.Pool.Exec(ctx, "TRUNCATE outbox_events"); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				seed(t, ctx, db, "published", 2*time.Hour)
			}
			seed(t, ctx, db, "published", time.Minute)
			seed(t, ctx, db, "pending", 3*time.Hour)
			seed(t, ctx, db, "pending", 2*time.Hour)
			seed(t, ctx, db, "pending", 0)
			seed(t, ctx, db, "failed", 2*time.Hour)
			seed(t, ctx, db, "deadletter", 2*time.Hour)
			n, err := outbox.Prune(ctx, db.Pool, time.Hour, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.deleted {
				t.Errorf("deleted %d, want %d", n, tc.deleted)
			}
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
			if fmt.Sprint(left) != fmt.Sprint(tc.left) {
				t.Errorf("left %v, want %v", left, tc.left)
			}
		})
	}
	for _, bad := range []time.Duration{0, -time.Hour} {
		if _, err := outbox.Prune(ctx, db.Pool, bad, outbox.PruneOptions{}); err == nil {
			t.Errorf("Prune accepted retention %v", bad)
		}
	}
	if _, err := outbox.Prune(ctx, db.Pool, time.Hour, outbox.PruneOptions{BatchSize: -1}); err == nil {
		t.Error("Prune accepted a negative batch size")
	}
}
