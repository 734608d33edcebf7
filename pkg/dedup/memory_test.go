package dedup_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/deduptest"
)

// Memory passes the same conformance suite as Postgres.
func TestMemoryConformance(t *testing.T) {
	deduptest.Run(t, func(t *testing.T) deduptest.Harness {
		m := dedup.NewMemory()
		var offset atomic.Int64
		m.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		return deduptest.Harness{
			Store: m,
			Age:   func(t *testing.T, d time.Duration) { offset.Add(int64(d)) },
		}
	})
}

// A Memory transaction refuses SQL instead of pretending to run it, and
// refuses to be used with another Memory.
func TestMemoryTxRunsNoSQL(t *testing.T) {
	ctx := context.Background()
	m := dedup.NewMemory()
	tx, err := m.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("Exec: no error")
	}
	if _, err := tx.Query(ctx, "SELECT 1"); err == nil {
		t.Error("Query: no error")
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
		t.Error("QueryRow: no error")
	}
	if _, err := tx.Begin(ctx); err == nil {
		t.Error("nested Begin: no error")
	}
	if _, err := dedup.NewMemory().Claim(ctx, tx, "billing", uuid.New()); err == nil {
		t.Error("Claim with another Memory's transaction: no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Begin(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Begin under a cancelled context: %v", err)
	}
}

// The zero Memory is usable.
func TestMemoryZeroValue(t *testing.T) {
	var m dedup.Memory
	res, err := dedup.Handle(context.Background(), &m, "billing", uuid.New(), func(context.Context, pgx.Tx) error { return nil })
	if err != nil || res != dedup.Handled {
		t.Fatalf("Handle on a zero Memory = (%v, %v)", res, err)
	}
}
