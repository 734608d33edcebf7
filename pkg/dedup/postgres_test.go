package dedup_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/deduptest"
)

// countingTracer counts the statements a connection sends; once a
// statement is prepared each is one network round trip.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// newPool connects to a fresh migrated database with room for the suite's
// 16 concurrent claimers, counting statements when tracer is set.
func newPool(t *testing.T, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	db := testenv.MigratedPostgres(t)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 24
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Postgres passes the conformance suite on a real server.
func TestPostgresConformance(t *testing.T) {
	deduptest.Run(t, func(t *testing.T) deduptest.Harness {
		pool := newPool(t, nil)
		return deduptest.Harness{
			Store: dedup.NewPostgres(pool),
			Age: func(t *testing.T, d time.Duration) {
				if _, err := pool.Exec(context.Background(),
					"UPDATE processed_messages SET processed_at = processed_at - $1::bigint * interval '1 microsecond'",
					d.Microseconds()); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

// The batch forms are one round trip each whatever the batch size, and
// Handle is four (begin, claim, fn's statement, commit).
func TestPostgresRoundTrips(t *testing.T) {
	t.Parallel()
	tracer := &countingTracer{}
	pool := newPool(t, tracer)
	s := dedup.NewPostgres(pool)
	ctx := context.Background()
	ids := make([]uuid.UUID, 500)
	for i := range ids {
		ids[i] = uuid.New()
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"ClaimBatch", func() error { _, err := s.ClaimBatch(ctx, tx, "billing", ids); return err }},
		{"Processed", func() error { _, err := s.Processed(ctx, tx, "billing", ids); return err }},
		{"Claim", func() error { _, err := s.Claim(ctx, tx, "billing", ids[0]); return err }},
	} {
		before := tracer.n.Load()
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := tracer.n.Load() - before; n != 1 {
			t.Errorf("%s of %d ids sent %d statements, want 1", tc.name, len(ids), n)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	before := tracer.n.Load()
	res, err := dedup.Handle(ctx, s, "billing", uuid.New(), func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT 1")
		return err
	})
	if err != nil || res != dedup.Handled {
		t.Fatalf("Handle = (%v, %v)", res, err)
	}
	if n := tracer.n.Load() - before; n != 4 {
		t.Errorf("Handle sent %d statements, want 4", n)
	}
}

// Prune deletes in batches until nothing old is left, also when there are
// more old rows than one batch holds.
func TestPostgresPruneManyBatches(t *testing.T) {
	t.Parallel()
	pool := newPool(t, nil)
	s := dedup.NewPostgres(pool)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO processed_messages (consumer_name, event_id, processed_at)
		SELECT 'billing', gen_random_uuid(), now() - interval '2 days' FROM generate_series(1, 2500)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO processed_messages (consumer_name, event_id)
		SELECT 'billing', gen_random_uuid() FROM generate_series(1, 10)`); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, 24*time.Hour, 0)
	if err != nil || n != 2500 {
		t.Fatalf("Prune = %d, %v; want 2500", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM processed_messages").Scan(&left); err != nil || left != 10 {
		t.Fatalf("%d rows left (%v), want the 10 recent ones", left, err)
	}
}
