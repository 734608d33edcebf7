package outbox

import (
	"context"
	"fmt"
	"time"

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
	query := `DELETE FROM outbox_events WHERE id = ANY (ARRAY(
		SELECT id FROM outbox_events
		WHERE created_at < now() - $1::interval AND ` + which + `
		ORDER BY created_at, id
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("outbox: prune: %w", err)
		}
		tag, err := db.Exec(ctx, query, retention, opts.BatchSize)
		if err != nil {
			return total, fmt.Errorf("outbox: prune after %d rows: %w", total, err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(opts.BatchSize) {
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
