package bookkeeper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// outboxDeletes is a pool that records how many rows each DELETE on
// outbox_events removed.
type outboxDeletes struct {
	*pgxpool.Pool
	mu       sync.Mutex
	affected []int64
}

func (d *outboxDeletes) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := d.Pool.Exec(ctx, sql, args...)
	if err == nil && strings.HasPrefix(sql, "DELETE FROM outbox_events") {
		d.mu.Lock()
		d.affected = append(d.affected, tag.RowsAffected())
		d.mu.Unlock()
	}
	return tag, err
}

// Pins §12 on a Python messagekit producer's database (ADR 0036): its
// outbox_events has no id column, and the bookkeeper with the §5 defaults
// prunes it all the same, in bounded batches, published rows only with the
// Relay and every row with CDC, logging and counting it as outbox_events.
func TestRetentionPythonOutbox(t *testing.T) {
	for _, tc := range []struct {
		name        string
		publication bool
		pruned      int64
		left        string
		batches     string
	}{
		// 5 old published, 1 old published and failed, 3 old unpublished,
		// 2 fresh of each: the Relay keeps the old unpublished.
		{"auto without a publication", false, 6, "map[false:5 true:2]", "[2 2 2 0]"},
		{"auto with a publication", true, 9, "map[false:2 true:2]", "[2 2 2 2 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testenv.PythonSeedPostgres(t, true)
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload,
					occurred_at, published, failed, attempt_count, created_at, published_at, failed_at, error_message)
				SELECT gen_random_uuid()::text, 't', 'a', '{}', now(), p, f, 0, now() - age::interval,
					CASE WHEN p THEN now() END, CASE WHEN f THEN now() END, NULL
				FROM (VALUES (true, false, '40 days', 5), (true, true, '40 days', 1), (false, false, '40 days', 3),
					(true, false, '1 day', 2), (false, false, '1 day', 2)) AS v(p, f, age, n),
					generate_series(1, n)`); err != nil {
				t.Fatal(err)
			}
			if tc.publication {
				if _, err := db.Pool.Exec(ctx, `CREATE PUBLICATION outbox FOR TABLE outbox_events`); err != nil {
					t.Fatal(err)
				}
			}
			rec := &outboxDeletes{Pool: db.Pool}
			tables, err := bookkeeper.Retention{
				ProcessedMessages: 168 * time.Hour, DeadLetters: 720 * time.Hour, Audit: 2160 * time.Hour,
				Outbox: 720 * time.Hour, BatchSize: 2,
			}.Tables(rec, slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			p, err := retention.New(retention.Config{
				Tables: tables, DB: db.Pool, Component: "bookkeeper",
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: reg,
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.RunOnce(ctx)
			if err != nil {
				t.Fatalf("prune run failed: %v", err)
			}
			if res.Pruned["outbox_events"] != tc.pruned {
				t.Errorf("pruned %d outbox rows, want %d", res.Pruned["outbox_events"], tc.pruned)
			}
			left := map[bool]int{}
			rows, err := db.Pool.Query(ctx, `SELECT published, count(*) FROM outbox_events WHERE created_at > now() - interval '2 days'
				OR NOT published GROUP BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var pub bool
				var n int
				if err := rows.Scan(&pub, &n); err != nil {
					t.Fatal(err)
				}
				left[pub] = n
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n := count(t, db.Pool, `SELECT count(*) FROM outbox_events`); n != 13-int(tc.pruned) {
				t.Errorf("%d outbox rows left, want %d", n, 13-tc.pruned)
			}
			if got := fmt.Sprint(left); got != tc.left {
				t.Errorf("rows left, fresh or unpublished, by published: %s, want %s", got, tc.left)
			}
			if n := count(t, db.Pool, `SELECT count(*) FROM outbox_events WHERE created_at < now() - interval '2 days' AND published`); n != 0 {
				t.Errorf("%d old published rows left", n)
			}
			rec.mu.Lock()
			batches := fmt.Sprint(rec.affected)
			rec.mu.Unlock()
			if batches != tc.batches {
				t.Errorf("outbox DELETEs removed %s rows, want %s", batches, tc.batches)
			}
			if got := metricValue(t, reg, "messagekit_bookkeeper_pruned_rows_total", "outbox_events"); got != float64(tc.pruned) {
				t.Errorf("pruned_rows_total{table=outbox_events} = %v, want %d", got, tc.pruned)
			}
			if got := metricValue(t, reg, "messagekit_bookkeeper_prune_runs_total", "ok"); got != 1 {
				t.Errorf("prune_runs_total{result=ok} = %v, want 1", got)
			}
			var line map[string]any
			if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if line["msg"] != "pruned" || line["outbox_events"] != float64(tc.pruned) {
				t.Errorf("log line %v, want msg pruned and outbox_events %d", line, tc.pruned)
			}
		})
	}
}

// metricValue is the value of the series of the metric name whose one
// label has the value label.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s}", name, label)
	return 0
}
