package bookkeeper_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// seedRetention fills every table the bookkeeper prunes with an old and a
// fresh row of each kind that matters.
func seedRetention(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO processed_messages (consumer_name, event_id, processed_at) VALUES
			('c', gen_random_uuid(), now() - interval '10 days'), ('c', gen_random_uuid(), now())`,
		`INSERT INTO dead_letters (source, origin, reason, body, status, first_seen_at, last_seen_at, replayed_at)
		 SELECT 'rabbitmq', 'q', 'rejected', convert_to(s || age, 'UTF8'), s, now() - age::interval, now() - age::interval,
			CASE WHEN s = 'replayed' THEN now() - age::interval END
		 FROM unnest(ARRAY['pending', 'replayed', 'discarded']) s, unnest(ARRAY['40 days', '1 day']) age`,
		// Replayed long after it was last seen: kept while the replay is recent.
		`INSERT INTO dead_letters (source, origin, reason, body, status, last_seen_at, replayed_at)
		 VALUES ('rabbitmq', 'q', 'rejected', 'late replay', 'replayed', now() - interval '40 days', now() - interval '1 day')`,
		`INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at, created_at, published, failed)
		 SELECT gen_random_uuid(), 't', 'a', '{}', now(), now() - age::interval, p, f
		 FROM unnest(ARRAY['40 days', '1 day']) age, (VALUES (false, false), (true, false), (true, true)) AS v(p, f)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The audit: admin_actions since migration 00004, replays before.
	if _, err := pool.Exec(ctx, `DO $$ BEGIN
		IF to_regclass('admin_actions') IS NOT NULL THEN
			INSERT INTO admin_actions (at, action, principal) VALUES (now() - interval '100 days', 'x', 'p'), (now(), 'x', 'p');
		ELSE
			INSERT INTO replays (replay_id, kind, principal, requested_at, replayed_count) VALUES
				(gen_random_uuid(), 'outbox', 'p', now() - interval '100 days', 1), (gen_random_uuid(), 'outbox', 'p', now(), 1);
		END IF; END $$`); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// auditRows counts the rows of the audit table, admin_actions or, before
// migration 00004, replays.
func auditRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	table := "replays"
	if count(t, pool, `SELECT count(*) FROM pg_class WHERE oid = to_regclass('admin_actions')`) == 1 {
		table = "admin_actions"
	}
	return count(t, pool, `SELECT count(*) FROM `+table)
}

// Pins §12 on the bookkeeper's tables with the §5 defaults: expired rows
// go, fresh ones stay, pending dead letters stay however old, and the
// outbox keeps unpublished rows unless it is read by CDC.
func TestRetentionTables(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mode        bookkeeper.OutboxMode
		publication bool
		outboxLeft  int
	}{
		{"relay", bookkeeper.OutboxRelay, false, 4}, // 3 fresh, the old unpublished
		{"auto without a publication", bookkeeper.OutboxAuto, false, 4},
		{"auto with a publication", bookkeeper.OutboxAuto, true, 3},
		{"cdc", bookkeeper.OutboxCDC, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testenv.MigratedPostgres(t)
			ctx := context.Background()
			seedRetention(t, db.Pool)
			if tc.publication {
				if _, err := db.Pool.Exec(ctx, `CREATE PUBLICATION outbox FOR TABLE outbox_events`); err != nil {
					t.Fatal(err)
				}
			}
			tables, err := bookkeeper.Retention{
				ProcessedMessages: 168 * time.Hour, DeadLetters: 720 * time.Hour, Audit: 2160 * time.Hour,
				Outbox: 720 * time.Hour, OutboxMode: tc.mode, BatchSize: 1,
			}.Tables(db.Pool, slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			p, err := retention.New(retention.Config{Tables: tables, DB: db.Pool})
			if err != nil {
				t.Fatal(err)
			}
			auditBefore := auditRows(t, db.Pool)
			res, err := p.RunOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{"processed_messages": 1, "dead_letters": 2, "admin_actions": 1, "outbox_events": int64(6 - tc.outboxLeft)}
			for name, n := range want {
				if res.Pruned[name] != n {
					t.Errorf("pruned %d rows of %s, want %d", res.Pruned[name], name, n)
				}
			}
			if n := count(t, db.Pool, `SELECT count(*) FROM processed_messages`); n != 1 {
				t.Errorf("%d processed_messages left, want the fresh one", n)
			}
			if n := count(t, db.Pool, `SELECT count(*) FROM dead_letters WHERE status = 'pending'`); n != 2 {
				t.Errorf("%d pending dead letters left, want both (old and fresh)", n)
			}
			if n := count(t, db.Pool, `SELECT count(*) FROM dead_letters`); n != 5 {
				t.Errorf("%d dead letters left, want 5 (2 pending, 2 fresh settled, 1 replayed recently)", n)
			}
			if n := count(t, db.Pool, `SELECT count(*) FROM outbox_events`); n != tc.outboxLeft {
				t.Errorf("%d outbox rows left, want %d", n, tc.outboxLeft)
			}
			if n := auditRows(t, db.Pool); auditBefore != 2 || n != 1 {
				t.Errorf("audit rows %d before, %d after; want 2 and 1", auditBefore, n)
			}
		})
	}
}

// Zero keeps a table forever: it is not pruned at all.
func TestRetentionZeroKeepsForever(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	tables, err := bookkeeper.Retention{ProcessedMessages: time.Hour}.Tables(db.Pool, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].Name != "processed_messages" {
		t.Fatalf("tables %v, want processed_messages only", tables)
	}
	if _, err := (bookkeeper.Retention{OutboxMode: "both"}).Tables(db.Pool, slog.Default()); err == nil {
		t.Error("an unknown outbox mode was accepted")
	}
}
