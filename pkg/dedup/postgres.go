package dedup

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// DefaultPruneBatch is the number of rows [Postgres.Prune] and
// [Memory.Prune] delete per statement when asked for zero or less.
const DefaultPruneBatch = 1000

// Postgres is the [Store] on the processed_messages table of the messagekit
// schema (DESIGN.md §4). Claims are INSERT … ON CONFLICT DO NOTHING in the
// caller's transaction: a concurrent claimer of the same id blocks on the
// primary key until the first transaction ends, which gives exactly one
// winner. A Postgres is safe for concurrent use.
type Postgres struct {
	db DB
}

var _ Store = (*Postgres)(nil)

// NewPostgres returns the store on db, usually a *pgxpool.Pool. db is used
// by Begin and Prune; Claim, ClaimBatch and Processed use whatever pgx
// transaction they are given, so a caller may also claim in a transaction
// it began itself on the same database.
func NewPostgres(db DB) *Postgres { return &Postgres{db: db} }

// Begin begins a transaction on the store's database.
func (p *Postgres) Begin(ctx context.Context) (pgx.Tx, error) { return p.db.Begin(ctx) }

const claimSQL = `INSERT INTO processed_messages (consumer_name, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`

// Claim claims id for consumer in tx with one statement; see [Store.Claim].
// It fails when consumer is empty and with tx's error, wrapped.
func (p *Postgres) Claim(ctx context.Context, tx pgx.Tx, consumer string, id uuid.UUID) (bool, error) {
	if err := checkConsumer(consumer); err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, claimSQL, consumer, id)
	if err != nil {
		return false, fmt.Errorf("dedup: claim %s/%s: %w", consumer, id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// The ids arrive sorted and distinct, so two batches that share ids take
// their row locks in the same order and cannot deadlock.
const claimBatchSQL = `INSERT INTO processed_messages (consumer_name, event_id)
SELECT $1, id FROM unnest($2::uuid[]) AS t(id)
ON CONFLICT DO NOTHING
RETURNING event_id`

// ClaimBatch claims ids for consumer in tx with one statement (one round
// trip); see [Store.ClaimBatch]. It fails when consumer is empty and with
// tx's error, wrapped.
func (p *Postgres) ClaimBatch(ctx context.Context, tx pgx.Tx, consumer string, ids []uuid.UUID) ([]bool, error) {
	if err := checkConsumer(consumer); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []bool{}, nil
	}
	got, err := collectIDs(tx.Query(ctx, claimBatchSQL, consumer, sortedUnique(ids)))
	if err != nil {
		return nil, fmt.Errorf("dedup: claim %d ids for %s: %w", len(ids), consumer, err)
	}
	return firstOccurrences(ids, got), nil
}

const processedSQL = `SELECT event_id FROM processed_messages WHERE consumer_name = $1 AND event_id = ANY($2::uuid[])`

// Processed reports, for each index of ids, whether consumer has processed
// that id: committed, or claimed by tx itself. It reads with one statement
// (one round trip) and never waits for other transactions' claims, which it
// does not see. It fails when consumer is empty and with tx's error,
// wrapped. tx may be any transaction on the store's database.
func (p *Postgres) Processed(ctx context.Context, tx pgx.Tx, consumer string, ids []uuid.UUID) ([]bool, error) {
	if err := checkConsumer(consumer); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []bool{}, nil
	}
	got, err := collectIDs(tx.Query(ctx, processedSQL, consumer, sortedUnique(ids)))
	if err != nil {
		return nil, fmt.Errorf("dedup: look up %d ids for %s: %w", len(ids), consumer, err)
	}
	found := make([]bool, len(ids))
	for i, id := range ids {
		_, found[i] = got[id]
	}
	return found, nil
}

// Pruning deletes by primary key what an index scan on processed_at found,
// batch rows per transaction, so no statement holds many locks for long.
const pruneSQL = `DELETE FROM processed_messages p
USING (SELECT consumer_name, event_id FROM processed_messages
       WHERE processed_at < now() - $1::bigint * interval '1 microsecond'
       LIMIT $2 FOR UPDATE SKIP LOCKED) old
WHERE p.consumer_name = old.consumer_name AND p.event_id = old.event_id`

// Prune deletes the ids of every consumer processed more than olderThan
// ago, batch rows per transaction (zero or less means
// [DefaultPruneBatch]), until none is left, and returns how many it
// deleted. Once an id is pruned a redelivery of its event runs the handler
// again, so olderThan must exceed the longest time a message can be
// redelivered after. Rows locked by a concurrent Prune are skipped. It
// stops with ctx's error when ctx ends, returning the count so far.
func (p *Postgres) Prune(ctx context.Context, olderThan time.Duration, batch int) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("dedup: prune: negative age %v", olderThan)
	}
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	var total int64
	for {
		var n int64
		err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, pruneSQL, olderThan.Microseconds(), batch)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("dedup: prune processed_messages older than %v: %w", olderThan, err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// collectIDs reads a one-column result of uuids into a set.
func collectIDs(rows pgx.Rows, err error) (map[uuid.UUID]struct{}, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[uuid.UUID]struct{})
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		got[id] = struct{}{}
	}
	return got, rows.Err()
}

// sortedUnique returns the distinct ids in byte order, PostgreSQL's order
// of uuid values.
func sortedUnique(ids []uuid.UUID) []uuid.UUID {
	s := slices.Clone(ids)
	slices.SortFunc(s, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(s)
}

// firstOccurrences marks each index of ids whose id is in claimed and not
// seen at an earlier index.
func firstOccurrences(ids []uuid.UUID, claimed map[uuid.UUID]struct{}) []bool {
	out := make([]bool, len(ids))
	for i, id := range ids {
		if _, ok := claimed[id]; ok {
			out[i] = true
			delete(claimed, id)
		}
	}
	return out
}

// RetentionTable returns processed_messages as a [retention.Table] whose
// Prune calls [Postgres.Prune] with olderThan and batch, for a
// [retention.Pruner] to run every interval.
func (p *Postgres) RetentionTable(olderThan time.Duration, batch int) retention.Table {
	return retention.Table{Name: "processed_messages", Prune: func(ctx context.Context) (int64, error) {
		return p.Prune(ctx, olderThan, batch)
	}}
}
