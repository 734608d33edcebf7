package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// DefaultPruneBatchSize is how many rows one [Prune] statement deletes at
// most.
const DefaultPruneBatchSize = 1000

// PruneOptions selects what [Prune] deletes. The zero value deletes
// published rows that are not failed.
type PruneOptions struct {
	// IncludeFailed also deletes failed rows (dead letters the admin API
	// lists and replays). Default false: they are kept.
	IncludeFailed bool
	// CDC deletes rows whether published or not: with Debezium nothing marks
	// rows published, and a row is no longer needed once Debezium read it
	// from the WAL (which it does long before any sensible retention).
	// Default false: unpublished rows, which the Relay has still to send,
	// are never deleted.
	CDC bool
	// BatchSize bounds the rows one statement deletes; each statement is its
	// own short transaction. Default [DefaultPruneBatchSize].
	BatchSize int
}

// Prune deletes outbox rows created more than retention ago (by created_at,
// the column outbox replay by time range uses), as selected by opts, and
// returns how many it deleted. It deletes in statements of at most
// opts.BatchSize rows, each committed on its own when db is a pool or a
// connection, so it never holds many row locks for long; rows locked by
// other transactions are skipped until the next call. On error or when ctx
// ends it returns the count deleted so far with the error. retention must
// be positive.
//
// It works on this module's outbox table, whose rows it selects by id, and
// on the Python messagekit's (ADR 0036), which has no id column and whose
// rows it selects by event_id, its primary key. When db also has pgx's
// QueryRow method (a pool, a connection or a transaction does), one
// catalog query per call tells the two apart; otherwise Prune takes the
// table for this module's and, should the id column be missing, falls back
// to event_id.
func Prune(ctx context.Context, db Execer, retention time.Duration, opts PruneOptions) (int64, error) {
	if retention <= 0 {
		return 0, fmt.Errorf("outbox: prune retention must be positive, got %v", retention)
	}
	if opts.BatchSize < 0 {
		return 0, fmt.Errorf("outbox: PruneOptions.BatchSize is negative (%d)", opts.BatchSize)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultPruneBatchSize
	}
	var which string
	switch {
	case opts.CDC && opts.IncludeFailed:
		which = "true"
	case opts.CDC:
		which = "NOT failed"
	case opts.IncludeFailed:
		which = "(published OR failed)"
	default:
		which = "published AND NOT failed"
	}
	key := "id"
	if q, ok := db.(queryRower); ok {
		hasID, err := outboxHasID(ctx, q)
		if err != nil {
			return 0, err
		}
		if !hasID {
			key = "event_id"
		}
	}
	total, err := pruneBy(ctx, db, key, which, retention, opts.BatchSize)
	var pgErr *pgconn.PgError
	if key == "id" && total == 0 && errors.As(err, &pgErr) && pgErr.Code == undefinedColumn {
		return pruneBy(ctx, db, "event_id", which, retention, opts.BatchSize)
	}
	return total, err
}

// undefinedColumn is PostgreSQL's SQLSTATE for a missing column.
const undefinedColumn = "42703"

// queryRower is the part of pgx's pools, connections and transactions
// that [Prune] uses to look at the table's shape.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// outboxHasID reports whether outbox_events (as the search path finds it,
// like the DELETE) has this module's id column.
func outboxHasID(ctx context.Context, db queryRower) (bool, error) {
	var hasID bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
		WHERE attrelid = to_regclass('outbox_events') AND attname = 'id' AND NOT attisdropped)`).Scan(&hasID)
	if err != nil {
		return false, fmt.Errorf("outbox: prune: does outbox_events have an id column: %w", err)
	}
	return hasID, nil
}

// pruneBy deletes in batches of at most batch rows, picking them by key:
// id on this module's table, event_id (the primary key) on the Python
// messagekit's.
func pruneBy(ctx context.Context, db Execer, key, which string, retention time.Duration, batch int) (int64, error) {
	query := `DELETE FROM outbox_events WHERE ` + key + ` = ANY (ARRAY(
		SELECT ` + key + ` FROM outbox_events
		WHERE created_at < now() - $1::interval AND ` + which + `
		ORDER BY created_at, ` + key + `
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("outbox: prune: %w", err)
		}
		tag, err := db.Exec(ctx, query, retention, batch)
		if err != nil {
			return total, fmt.Errorf("outbox: prune after %d rows: %w", total, err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// RetentionTable returns outbox_events as a [retention.Table] whose Prune
// calls [Prune] with db, olderThan and opts, for a [retention.Pruner] to
// run every interval.
func RetentionTable(db Execer, olderThan time.Duration, opts PruneOptions) retention.Table {
	return retention.Table{Name: "outbox_events", Prune: func(ctx context.Context) (int64, error) {
		return Prune(ctx, db, olderThan, opts)
	}}
}
