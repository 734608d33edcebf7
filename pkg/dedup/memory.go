package dedup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Memory is a [Store] in process memory with the claim semantics of
// [Postgres], for unit tests of consumers and handlers without a database.
// Its Begin returns an in-memory pgx.Tx: Commit records the transaction's
// claims, Rollback releases them, and a claim on an id held by another open
// transaction waits for it, as a row lock would. That transaction runs no
// SQL: Exec, Query, QueryRow, SendBatch, CopyFrom, Prepare and Begin fail
// and Conn returns nil, so handlers under test must not need the database.
//
// The zero value is ready to use; a Memory must not be copied after first
// use. It is safe for concurrent use; each of its transactions is not.
type Memory struct {
	// Now returns the time a commit stamps its claims with, which Prune
	// compares against. Nil means time.Now. Tests set it to move time; it
	// must not change while other goroutines use the Memory.
	Now func() time.Time

	mu      sync.Mutex
	done    map[memKey]time.Time
	pending map[memKey]*memTx
}

var _ Store = (*Memory)(nil)

type memKey struct {
	consumer string
	id       uuid.UUID
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{} }

// Begin returns a new in-memory transaction, or ctx's error if ctx has ended.
func (m *Memory) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &memTx{m: m, end: make(chan struct{})}, nil
}

// Claim claims id for consumer in tx, a transaction of m; see
// [Store.Claim]. While it waits for another transaction, ctx ending aborts
// tx (as a cancelled statement would in PostgreSQL) and returns ctx's
// error. It fails with pgx.ErrTxClosed on an ended transaction.
func (m *Memory) Claim(ctx context.Context, tx pgx.Tx, consumer string, id uuid.UUID) (bool, error) {
	t, err := m.tx(tx, consumer)
	if err != nil {
		return false, err
	}
	return t.claim(ctx, memKey{consumer, id})
}

// ClaimBatch claims ids for consumer in tx like Claim, in the order of
// [Postgres.ClaimBatch]; see [Store.ClaimBatch].
func (m *Memory) ClaimBatch(ctx context.Context, tx pgx.Tx, consumer string, ids []uuid.UUID) ([]bool, error) {
	t, err := m.tx(tx, consumer)
	if err != nil {
		return nil, err
	}
	claimed := make(map[uuid.UUID]struct{}, len(ids))
	for _, id := range sortedUnique(ids) {
		ok, err := t.claim(ctx, memKey{consumer, id})
		if err != nil {
			return nil, err
		}
		if ok {
			claimed[id] = struct{}{}
		}
	}
	return firstOccurrences(ids, claimed), nil
}

// Processed reports, for each index of ids, whether consumer has processed
// that id: committed, or claimed by tx itself, like [Postgres.Processed].
// It never waits.
func (m *Memory) Processed(ctx context.Context, tx pgx.Tx, consumer string, ids []uuid.UUID) ([]bool, error) {
	t, err := m.tx(tx, consumer)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := t.usable(); err != nil {
		return nil, err
	}
	found := make([]bool, len(ids))
	for i, id := range ids {
		k := memKey{consumer, id}
		_, committed := m.done[k]
		found[i] = committed || m.pending[k] == t
	}
	return found, nil
}

// Prune deletes the ids of every consumer committed more than olderThan
// ago, at most batch (zero or less: [DefaultPruneBatch]) per lock hold, and
// returns how many it deleted; see [Postgres.Prune].
func (m *Memory) Prune(ctx context.Context, olderThan time.Duration, batch int) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("dedup: prune: negative age %v", olderThan)
	}
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		m.mu.Lock()
		cutoff := m.now().Add(-olderThan)
		n := 0
		for k, at := range m.done {
			if n == batch {
				break
			}
			if at.Before(cutoff) {
				delete(m.done, k)
				n++
			}
		}
		m.mu.Unlock()
		total += int64(n)
		if n < batch {
			return total, nil
		}
	}
}

func (m *Memory) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Memory) tx(tx pgx.Tx, consumer string) (*memTx, error) {
	if err := checkConsumer(consumer); err != nil {
		return nil, err
	}
	t, ok := tx.(*memTx)
	if !ok || t.m != m {
		return nil, fmt.Errorf("dedup: a %T is not a transaction of this Memory", tx)
	}
	return t, nil
}

type txState uint8

const (
	txOpen txState = iota
	txAborted
	txClosed
)

var (
	errNotSQL  = errors.New("dedup: a Memory transaction runs no SQL")
	errAborted = errors.New("dedup: transaction is aborted, commands ignored until end of transaction block")
)

// memTx is Memory's transaction. Its fields are guarded by m.mu.
type memTx struct {
	m      *Memory
	state  txState
	claims []memKey
	end    chan struct{} // closed when the transaction ends
}

var _ pgx.Tx = (*memTx)(nil)

func (t *memTx) usable() error {
	switch t.state {
	case txClosed:
		return pgx.ErrTxClosed
	case txAborted:
		return errAborted
	}
	return nil
}

func (t *memTx) claim(ctx context.Context, k memKey) (bool, error) {
	m := t.m
	for {
		m.mu.Lock()
		if err := t.usable(); err != nil {
			m.mu.Unlock()
			return false, err
		}
		if m.done == nil {
			m.done = make(map[memKey]time.Time)
			m.pending = make(map[memKey]*memTx)
		}
		if _, ok := m.done[k]; ok {
			m.mu.Unlock()
			return false, nil
		}
		owner := m.pending[k]
		if owner == t {
			m.mu.Unlock()
			return false, nil
		}
		if owner == nil {
			m.pending[k] = t
			t.claims = append(t.claims, k)
			m.mu.Unlock()
			return true, nil
		}
		m.mu.Unlock()
		select {
		case <-owner.end:
		case <-ctx.Done():
			m.mu.Lock()
			if t.state == txOpen {
				t.state = txAborted
			}
			m.mu.Unlock()
			return false, ctx.Err()
		}
	}
}

// finish ends the transaction, recording its claims when commit is true
// and it is not aborted. It reports the state the transaction was in.
func (t *memTx) finish(commit bool) txState {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	was := t.state
	if was == txClosed {
		return was
	}
	t.state = txClosed
	now := m.now()
	for _, k := range t.claims {
		delete(m.pending, k)
		if commit && was == txOpen {
			m.done[k] = now
		}
	}
	t.claims = nil
	close(t.end)
	return was
}

// Commit records the transaction's claims. Like pgx, it returns
// pgx.ErrTxClosed on an ended transaction and pgx.ErrTxCommitRollback,
// after rolling back, on an aborted one; if ctx has ended it rolls back and
// returns ctx's error.
func (t *memTx) Commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		if t.finish(false) == txClosed {
			return pgx.ErrTxClosed
		}
		return err
	}
	switch t.finish(true) {
	case txClosed:
		return pgx.ErrTxClosed
	case txAborted:
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback releases the transaction's claims. It returns pgx.ErrTxClosed
// on an ended transaction, so a deferred Rollback after Commit is harmless.
func (t *memTx) Rollback(ctx context.Context) error {
	if t.finish(false) == txClosed {
		return pgx.ErrTxClosed
	}
	return nil
}

func (t *memTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNotSQL }

func (t *memTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errNotSQL
}

func (t *memTx) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	return pgx.FailedBatchResults(b, errNotSQL)
}

func (t *memTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *memTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, errNotSQL
}

func (t *memTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errNotSQL
}

func (t *memTx) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, errNotSQL }

func (t *memTx) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

func (t *memTx) Conn() *pgx.Conn { return nil }

type errRow struct{}

func (errRow) Scan(...any) error { return errNotSQL }
