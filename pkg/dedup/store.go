package dedup

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// DB begins transactions. *pgxpool.Pool and *pgx.Conn satisfy it, and so
// does pgx.Tx (its Begin opens a savepoint).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store keeps the ids of processed events per consumer. It begins the
// transactions in which claims are made, and a claim lives and dies with its
// transaction: committing records the event as processed, rolling back
// releases it. [Postgres] is the production store and [Memory] its
// in-memory twin for unit tests; package deduptest checks that a Store
// behaves like both.
//
// Implementations are safe for concurrent use; a transaction is not.
type Store interface {
	DB
	// Claim claims id for consumer in tx. It reports true when the id is
	// new, false when it is already processed or already claimed by tx. When
	// another open transaction holds a claim on the same id, Claim waits
	// until that transaction ends: false if it committed, true if it rolled
	// back. So of concurrent claimers exactly one wins.
	Claim(ctx context.Context, tx pgx.Tx, consumer string, id uuid.UUID) (bool, error)
	// ClaimBatch claims ids like Claim, each in turn, and reports, for each
	// index of ids, whether it was claimed. An id repeated in ids is claimed
	// at its first occurrence only.
	ClaimBatch(ctx context.Context, tx pgx.Tx, consumer string, ids []uuid.UUID) ([]bool, error)
}

// Result says what [Handle] or a [Processor] did with an event.
type Result uint8

// Results.
const (
	// Handled: the event was new, the handler ran and its transaction,
	// claim included, committed.
	Handled Result = iota + 1
	// Duplicate: the event was already processed by this consumer; the
	// handler did not run.
	Duplicate
	// DeadLetter: only from a [Processor]: the message is poison or its
	// handler failed for good, and the caller must dead-letter it.
	DeadLetter
)

// String returns "handled", "duplicate" or "dead-letter".
func (r Result) String() string {
	switch r {
	case Handled:
		return "handled"
	case Duplicate:
		return "duplicate"
	case DeadLetter:
		return "dead-letter"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// TxFunc is work done inside a dedup transaction.
type TxFunc func(ctx context.Context, tx pgx.Tx) error

// Handle commits fn's work at most once per (consumer, id): it begins a
// transaction on s, claims id, runs fn only when the claim is new, and
// commits, so fn's writes and the claim commit together or not at all.
//
// It returns [Handled] after a successful commit and [Duplicate], without
// running fn, when id is already processed (or was processed by a
// concurrent transaction that committed while Handle waited for it).
// When fn fails, the transaction, claim included, is rolled back and fn's
// error is returned as is (joined with the rollback's error if that failed
// too), so a later delivery of the event runs fn again. Errors of the store
// are wrapped with the consumer and id. If fn panics, the transaction is
// rolled back and the panic continues.
//
// Handle is safe for concurrent use. fn must not commit or roll back tx.
func Handle(ctx context.Context, s Store, consumer string, id uuid.UUID, fn TxFunc) (Result, error) {
	return handle(ctx, ctx, s, consumer, id, fn)
}

// handle is Handle with the begin under its own context, so that a
// Processor can stop before a transaction but not inside one.
func handle(beginCtx, ctx context.Context, s Store, consumer string, id uuid.UUID, fn TxFunc) (Result, error) {
	tx, err := s.Begin(beginCtx)
	if err != nil {
		return 0, &beginError{fmt.Errorf("dedup: begin transaction for %s/%s: %w", consumer, id, err)}
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback(context.WithoutCancel(ctx)) // fn panicked
		}
	}()
	claimed, err := s.Claim(ctx, tx, consumer, id)
	if err != nil {
		done = true
		return 0, withRollback(err, rollback(ctx, tx))
	}
	if !claimed {
		done = true
		return Duplicate, rollback(ctx, tx)
	}
	if err := fn(ctx, tx); err != nil {
		done = true
		return 0, withRollback(err, rollback(ctx, tx))
	}
	done = true
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("dedup: commit %s/%s: %w", consumer, id, err)
	}
	return Handled, nil
}

// rollback rolls tx back even when ctx has ended (PostgreSQL would roll an
// abandoned transaction back anyway, but only when the connection closes).
// A transaction that is already closed is not an error here.
func rollback(ctx context.Context, tx pgx.Tx) error {
	err := tx.Rollback(context.WithoutCancel(ctx))
	if err == nil || errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return fmt.Errorf("dedup: roll back: %w", err)
}

// withRollback returns err, joined with the rollback's error when there is one.
func withRollback(err, rbErr error) error {
	if rbErr == nil {
		return err
	}
	return errors.Join(err, rbErr)
}

// beginError marks a failure to begin a transaction: the store is down, not
// the message at fault, so a Processor waits instead of counting an attempt.
type beginError struct{ err error }

func (e *beginError) Error() string { return e.err.Error() }
func (e *beginError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retrying cannot fix it, so a [Processor]
// dead-letters the message at once instead of retrying. The result wraps err
// (errors.Is and errors.As see through it) and reports Permanent() == true.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// IsPermanent reports whether err says it is permanent: the first error in
// its chain with a Permanent() bool method (such as those of [Permanent],
// [contracts.DecodeError] and [contracts.ValidationError]) returns true.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

func checkConsumer(consumer string) error {
	if consumer == "" {
		return errors.New("dedup: empty consumer name")
	}
	return nil
}
