package bridge

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Store keeps the dedup keys of the events a consumer name has bridged.
// Implementations are safe for concurrent use.
type Store interface {
	// Processed reports, for each index of keys, whether consumer recorded
	// that key, in one round trip.
	Processed(ctx context.Context, consumer string, keys []uuid.UUID) ([]bool, error)
	// Record records keys as processed by consumer in one round trip; keys
	// already recorded are not an error.
	Record(ctx context.Context, consumer string, keys []uuid.UUID) error
}

// Querier runs statements; *pgxpool.Pool satisfies it. Give the store a
// pool, not a transaction: each call commits on its own.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// recordLooker is a [Store] that records keys and then looks others up in
// one round trip.
type recordLooker interface {
	// RecordAndProcessed records done as processed by consumer, then
	// reports for each index of keys whether consumer recorded that key
	// (the keys of done included), as Record followed by Processed.
	RecordAndProcessed(ctx context.Context, consumer string, done, keys []uuid.UUID) ([]bool, error)
}

// recordAndLookUp records done and then looks keys up in s, in one round
// trip when s can, else in two.
func recordAndLookUp(ctx context.Context, s Store, consumer string, done, keys []uuid.UUID) ([]bool, error) {
	if rl, ok := s.(recordLooker); ok {
		return rl.RecordAndProcessed(ctx, consumer, done, keys)
	}
	if err := s.Record(ctx, consumer, done); err != nil {
		return nil, err
	}
	return s.Processed(ctx, consumer, keys)
}

// PostgresStore is the [Store] on the processed_messages table (DESIGN.md
// §4), shared with pkg/dedup. Unlike pkg/dedup's claims, which commit with a
// handler's writes in one transaction, the bridge's side effect happens in
// RabbitMQ: it looks keys up before publishing and records them after the
// confirms, each with one statement outside any transaction. A PostgresStore
// is safe for concurrent use.
type PostgresStore struct {
	db Querier
}

// NewPostgresStore returns the store on db, usually a *pgxpool.Pool.
func NewPostgresStore(db Querier) *PostgresStore { return &PostgresStore{db: db} }

// One index probe per key, whatever the statistics say: with
// `consumer_name = $1 AND event_id = ANY($2)` and no fresh statistics (a new
// consumer name, autovacuum behind or off) PostgreSQL picks a scan of every
// row of the consumer name, filtered by the array: O(rows × keys), over
// half a second per batch at 100k rows. LIMIT keeps the lateral subquery
// from being flattened into a join the planner could turn into that scan.
const processedSQL = `SELECT k FROM unnest($2::uuid[]) AS k,
LATERAL (SELECT 1 FROM processed_messages WHERE consumer_name = $1 AND event_id = messagekit_processed_event_id(k) LIMIT 1) p`

// Processed implements [Store]. It fails with the database's error, wrapped.
func (s *PostgresStore) Processed(ctx context.Context, consumer string, keys []uuid.UUID) ([]bool, error) {
	if len(keys) == 0 {
		return []bool{}, nil
	}
	rows, err := s.db.Query(ctx, processedSQL, consumer, pgUUIDs(keys))
	if err != nil {
		return nil, fmt.Errorf("bridge: look up %d keys of %s: %w", len(keys), consumer, err)
	}
	found, err := collectFound(rows, keys)
	if err != nil {
		return nil, fmt.Errorf("bridge: look up %d keys of %s: %w", len(keys), consumer, err)
	}
	return found, nil
}

// Sorted keys take their row locks in one order, so two concurrent records
// of overlapping keys (two partitions carrying one event) cannot deadlock.
const recordSQL = `INSERT INTO processed_messages (consumer_name, event_id, processed_at)
SELECT $1, messagekit_processed_event_id(k), now() FROM (SELECT DISTINCT unnest($2::uuid[]) AS k ORDER BY 1) t
ON CONFLICT DO NOTHING`

// Record implements [Store]. It fails with the database's error, wrapped.
func (s *PostgresStore) Record(ctx context.Context, consumer string, keys []uuid.UUID) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := s.db.Exec(ctx, recordSQL, consumer, pgUUIDs(keys)); err != nil {
		return fmt.Errorf("bridge: record %d keys of %s: %w", len(keys), consumer, err)
	}
	return nil
}

// RecordAndProcessed records done, then looks keys up, in one round trip:
// both statements go in one pipeline, which PostgreSQL runs as one implicit
// transaction, so the look-up sees the keys just recorded and a failure
// records nothing. It fails with the database's error, wrapped.
//
// The bridge calls it in place of Record followed by Processed when a
// batch's keys can share the next batch's look-up: a Store that embeds
// *PostgresStore to wrap Record or Processed must wrap it too.
func (s *PostgresStore) RecordAndProcessed(ctx context.Context, consumer string, done, keys []uuid.UUID) ([]bool, error) {
	switch {
	case len(done) == 0:
		return s.Processed(ctx, consumer, keys)
	case len(keys) == 0:
		return []bool{}, s.Record(ctx, consumer, done)
	}
	var b pgx.Batch
	b.Queue(recordSQL, consumer, pgUUIDs(done))
	b.Queue(processedSQL, consumer, pgUUIDs(keys))
	br := s.db.SendBatch(ctx, &b)
	found, err := func() ([]bool, error) {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("bridge: record %d keys of %s: %w", len(done), consumer, err)
		}
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("bridge: look up %d keys of %s: %w", len(keys), consumer, err)
		}
		return collectFound(rows, keys)
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("bridge: record and look up keys of %s: %w", consumer, cerr)
	}
	if err != nil {
		return nil, err
	}
	return found, nil
}

// collectFound reads the keys rows returns and reports, for each index of
// keys, whether it was among them.
func collectFound(rows pgx.Rows, keys []uuid.UUID) ([]bool, error) {
	got, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
	if err != nil {
		return nil, err
	}
	set := make(map[uuid.UUID]struct{}, len(got))
	for _, k := range got {
		set[k.Bytes] = struct{}{}
	}
	found := make([]bool, len(keys))
	for i, k := range keys {
		_, found[i] = set[k]
	}
	return found, nil
}

// pgUUIDs converts keys to pgx's own UUID type, which pgx encodes in binary
// directly; a uuid.UUID goes through its driver.Valuer (a string, parsed
// again), which cost more CPU than the rest of the bridge's dedup work.
func pgUUIDs(keys []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(keys))
	for i, k := range keys {
		out[i] = pgtype.UUID{Bytes: k, Valid: true}
	}
	return out
}

// replayNamespace is the UUIDv5 namespace of replay dedup keys. It is fixed
// forever: changing it would let every replay through the bridge again.
var replayNamespace = uuid.MustParse("6f1c8a52-4d0e-5b7a-9c3e-2a1b0d4e8f61")

// ReplayKey returns the dedup key of a record: eventID itself when replayID
// is empty, else the UUIDv5 (SHA-1) of "<eventID>/<replayID>" in a fixed
// namespace, so that a replay passes the bridge once per replay request
// (DESIGN.md §6) while processed_messages keeps its uuid primary key.
func ReplayKey(eventID uuid.UUID, replayID string) uuid.UUID {
	if replayID == "" {
		return eventID
	}
	return uuid.NewSHA1(replayNamespace, []byte(eventID.String()+"/"+replayID))
}
