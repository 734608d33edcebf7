package bridge

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

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
