package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// TestPostgresStoreProbesTheIndexPerKey pins the dedup look-up's plan on a
// table without statistics (a new consumer name, autovacuum behind): one
// primary-key probe per key. The earlier `event_id = ANY($2)` let
// PostgreSQL scan every row of the consumer name and filter it by the
// array, which took over half a second per batch at 100k rows and made the
// bridge fall behind at 5k records/s (docs/adr/0015). It also checks the
// answers.
func TestPostgresStoreProbesTheIndexPerKey(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	ctx := context.Background()
	const consumer = "plan-test"
	if _, err := db.Pool.Exec(ctx, `INSERT INTO processed_messages (consumer_name, event_id)
SELECT $1, gen_random_uuid() FROM generate_series(1, 20000)`, consumer); err != nil {
		t.Fatal(err)
	}
	store := NewPostgresStore(db.Pool)
	keys := make([]uuid.UUID, 500)
	for i := range keys {
		keys[i] = uuid.New()
	}
	if err := store.Record(ctx, consumer, keys[:3]); err != nil {
		t.Fatal(err)
	}
	found, err := store.Processed(ctx, consumer, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range found {
		if f != (i < 3) {
			t.Fatalf("Processed(key %d) = %v, want %v", i, f, i < 3)
		}
	}

	var plan []byte
	if err := db.Pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+processedSQL, consumer, pgUUIDs(keys)).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var doc []struct{ Plan planNode }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", plan, err)
	}
	var probes int
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Relation == "processed_messages" {
			switch {
			case !strings.HasPrefix(n.NodeType, "Index"):
				t.Errorf("%s on processed_messages: want an index scan per key\n%s", n.NodeType, plan)
			case !strings.Contains(n.IndexCond, "event_id"):
				t.Errorf("index condition %q does not bound event_id\n%s", n.IndexCond, plan)
			default:
				probes++
			}
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	if probes != 1 {
		t.Errorf("found %d index scans of processed_messages, want 1\n%s", probes, plan)
	}
}

type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexCond string     `json:"Index Cond"`
	Plans     []planNode `json:"Plans"`
}

// countingQuerier counts the calls that reach the database.
type countingQuerier struct {
	Querier
	calls []string
}

func (q *countingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	q.calls = append(q.calls, "Query")
	return q.Querier.Query(ctx, sql, args...)
}

func (q *countingQuerier) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.calls = append(q.calls, "Exec")
	return q.Querier.Exec(ctx, sql, args...)
}

func (q *countingQuerier) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	q.calls = append(q.calls, "SendBatch")
	return q.Querier.SendBatch(ctx, b)
}

// Pins the round trip the bridge shares between a delivered batch's record
// and the next batch's look-up: the look-up sees the keys just recorded
// (so the next batch cannot republish them), it is one call to the
// database, and either half alone is the plain call.
func TestPostgresStoreRecordAndProcessed(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	ctx := context.Background()
	const consumer = "record-and-look-up"
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	q := &countingQuerier{Querier: db.Pool}
	store := NewPostgresStore(q)

	found, err := store.RecordAndProcessed(ctx, consumer, []uuid.UUID{a, b}, []uuid.UUID{b, c, a})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(found) != "[true false true]" {
		t.Errorf("RecordAndProcessed found %v, want [true false true]", found)
	}
	if fmt.Sprint(q.calls) != "[SendBatch]" {
		t.Errorf("database calls %v, want one SendBatch", q.calls)
	}
	if found, err = store.Processed(ctx, consumer, []uuid.UUID{a, b, c}); err != nil || fmt.Sprint(found) != "[true true false]" {
		t.Errorf("Processed after = %v, %v; want [true true false]", found, err)
	}

	q.calls = nil
	if found, err = store.RecordAndProcessed(ctx, consumer, nil, []uuid.UUID{c}); err != nil || fmt.Sprint(found) != "[false]" {
		t.Errorf("with nothing to record = %v, %v; want [false]", found, err)
	}
	if found, err = store.RecordAndProcessed(ctx, consumer, []uuid.UUID{c}, nil); err != nil || len(found) != 0 {
		t.Errorf("with nothing to look up = %v, %v; want []", found, err)
	}
	if fmt.Sprint(q.calls) != "[Query Exec]" {
		t.Errorf("database calls %v, want [Query Exec]", q.calls)
	}
	if found, err = store.Processed(ctx, consumer, []uuid.UUID{c}); err != nil || !found[0] {
		t.Errorf("Processed(c) = %v, %v; want recorded", found, err)
	}

	// A failing round trip fails whole: the cancelled context reaches the
	// caller, wrapped.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.RecordAndProcessed(cctx, consumer, []uuid.UUID{uuid.New()}, []uuid.UUID{a}); !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context = %v, want context.Canceled", err)
	}
}
