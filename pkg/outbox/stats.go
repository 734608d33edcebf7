package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query returning one row. pgx.Tx, *pgx.Conn, *pgxpool.Pool
// and *pgxpool.Conn satisfy it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// StatsOptions selects what [ReadStats] reads.
type StatsOptions struct {
	// SlotName, when set, selects CDC mode (Debezium publishes the outbox):
	// the replication slot of that name is read into [Stats.Slot], and
	// Pending and OldestPendingAge are not computed, since with Debezium
	// nothing marks rows published. Empty means Relay mode.
	SlotName string
}

// Stats describes the outbox's health (DESIGN.md §7's GET /outbox/stats and
// /health/outbox). Thresholds (degraded above 1000 pending, or the oldest
// older than 300 s) are the caller's to apply.
type Stats struct {
	// Pending counts rows neither published nor failed: what the Relay has
	// still to publish. Zero in CDC mode.
	Pending int64
	// OldestPendingAge is the age of the oldest pending row by created_at,
	// zero when none is pending or in CDC mode.
	OldestPendingAge time.Duration
	// Failed counts rows marked failed (dead letters), published or not.
	Failed int64
	// Slot is the replication slot in CDC mode, nil in Relay mode.
	Slot *SlotStats
}

// SlotStats describes a replication slot, read from pg_replication_slots.
type SlotStats struct {
	// Name is the slot's name.
	Name string
	// Found reports whether the slot exists; the other fields are zero when
	// it does not.
	Found bool
	// Active reports whether a consumer (Debezium) is streaming from it.
	Active bool
	// Type is "logical" (Debezium) or "physical".
	Type string
	// WALStatus is PostgreSQL's wal_status: "reserved", "extended",
	// "unreserved" or "lost" (the slot was invalidated), or "" when unknown.
	WALStatus string
	// LagBytes is how much WAL the consumer has still to confirm:
	// pg_current_wal_lsn() minus confirmed_flush_lsn (restart_lsn for a
	// physical slot). -1 when the slot has no position yet.
	LagBytes int64
}

// readCounts reads each figure through its partial index (pending,
// failed), never the whole table.
const readCounts = `SELECT p.n, coalesce(extract(epoch FROM now() - p.oldest), 0)::float8,
		(SELECT count(*) FROM outbox_events WHERE failed)
	FROM (SELECT count(*) AS n, min(created_at) AS oldest
		FROM outbox_events WHERE NOT published AND NOT failed) AS p`

const readFailed = `SELECT count(*) FROM outbox_events WHERE failed`

const readSlot = `SELECT active, slot_type, wal_status,
		pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint
	FROM pg_replication_slots WHERE slot_name = $1`

// ReadStats reads the outbox's [Stats] through db. A slot that does not
// exist is reported with Found false, not as an error. Errors come from the
// database, wrapped with what was being read.
func ReadStats(ctx context.Context, db Querier, opts StatsOptions) (Stats, error) {
	var s Stats
	if opts.SlotName == "" {
		var age float64
		if err := db.QueryRow(ctx, readCounts).Scan(&s.Pending, &age, &s.Failed); err != nil {
			return Stats{}, fmt.Errorf("outbox: read pending and failed counts: %w", err)
		}
		s.OldestPendingAge = time.Duration(age * float64(time.Second))
		return s, nil
	}
	if err := db.QueryRow(ctx, readFailed).Scan(&s.Failed); err != nil {
		return Stats{}, fmt.Errorf("outbox: read failed count: %w", err)
	}
	slot := &SlotStats{Name: opts.SlotName, LagBytes: -1}
	var walStatus *string
	var lag *int64
	err := db.QueryRow(ctx, readSlot, opts.SlotName).Scan(&slot.Active, &slot.Type, &walStatus, &lag)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		slot.LagBytes = 0
	case err != nil:
		return Stats{}, fmt.Errorf("outbox: read replication slot %q: %w", opts.SlotName, err)
	default:
		slot.Found = true
		if walStatus != nil {
			slot.WALStatus = *walStatus
		}
		if lag != nil {
			slot.LagBytes = *lag
		}
	}
	s.Slot = slot
	return s, nil
}
