package deadletter

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Execer runs one statement; *pgxpool.Pool satisfies it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DefaultPruneBatch is the most rows one [Prune] statement deletes when
// asked for zero or less: dead letters carry bodies of up to 16 MiB, so
// fewer than the thousand of processed_messages.
const DefaultPruneBatch = 200

// A dead letter is pruned once it is settled (replayed or discarded; a
// pending one, claimed by a replay or not, is kept however old) and neither
// seen nor replayed within the retention. The rows are locked in the
// subquery, SKIP LOCKED: a dead letter the bookkeeper is updating right now
// (a second arrival turns it pending again) is left for the next run, and
// one deleted first arrives as a new row.
const pruneSQL = `DELETE FROM dead_letters WHERE id = ANY (ARRAY(
	SELECT id FROM dead_letters
	WHERE status IN ('replayed', 'discarded')
	  AND last_seen_at < now() - $1::bigint * interval '1 microsecond'
	  AND (replayed_at IS NULL OR replayed_at < now() - $1::bigint * interval '1 microsecond')
	LIMIT $2
	FOR UPDATE SKIP LOCKED))`

// Prune deletes the replayed and discarded dead letters last seen (and
// replayed) more than olderThan ago, in statements of at most batch rows
// (zero or less means [DefaultPruneBatch]), each its own transaction on a
// pool, until none is left; it returns how many it deleted. Pending dead
// letters are never deleted. olderThan must be positive. On error or when
// ctx ends it returns the count so far with the error.
func Prune(ctx context.Context, db Execer, olderThan time.Duration, batch int) (int64, error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("deadletter: prune: retention must be positive, got %v", olderThan)
	}
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("deadletter: prune: %w", err)
		}
		tag, err := db.Exec(ctx, pruneSQL, olderThan.Microseconds(), batch)
		if err != nil {
			return total, fmt.Errorf("deadletter: prune after %d rows: %w", total, err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}
