package deduptest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// Store is what the suite exercises: a [dedup.Store] with the lookup and
// pruning methods that [dedup.Postgres] and [dedup.Memory] both have.
type Store interface {
	dedup.Store
	Processed(ctx context.Context, tx pgx.Tx, consumer string, ids []uuid.UUID) ([]bool, error)
	Prune(ctx context.Context, olderThan time.Duration, batch int) (int64, error)
}

// Harness is one empty store under test, used by one subtest only.
type Harness struct {
	// Store is the store under test. It must allow at least 20 concurrent
	// transactions.
	Store Store
	// Age makes every claim committed so far look d older, as if that much
	// time had passed (it is called while no transaction is open).
	Age func(t *testing.T, d time.Duration)
}

// Run runs the suite, one parallel subtest per behaviour, calling
// newHarness once per subtest for a fresh store.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"ClaimThenDuplicate", testClaimThenDuplicate},
		{"RollbackReleases", testRollbackReleases},
		{"ConcurrentClaimersOneWins", testConcurrentOneWins},
		{"WaiterSeesHolderOutcome", testWaiterSeesHolderOutcome},
		{"CancelWhileWaiting", testCancelWhileWaiting},
		{"ClaimBatch", testClaimBatch},
		{"ClaimBatchRollback", testClaimBatchRollback},
		{"OverlappingBatchesNoDeadlock", testOverlappingBatches},
		{"Handle", testHandle},
		{"HandlePanicReleases", testHandlePanic},
		{"ClosedTransaction", testClosedTx},
		{"Prune", testPrune},
		{"EmptyConsumer", testEmptyConsumer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func begin(t *testing.T, s Store) pgx.Tx {
	t.Helper()
	tx, err := s.Begin(ctxT(t))
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func claim(t *testing.T, s Store, tx pgx.Tx, consumer string, id uuid.UUID) bool {
	t.Helper()
	ok, err := s.Claim(ctxT(t), tx, consumer, id)
	if err != nil {
		t.Fatalf("claim %s/%s: %v", consumer, id, err)
	}
	return ok
}

func commit(t *testing.T, tx pgx.Tx) {
	t.Helper()
	if err := tx.Commit(ctxT(t)); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// claimCommitted claims ids for consumer in a new transaction and commits.
func claimCommitted(t *testing.T, s Store, consumer string, ids ...uuid.UUID) {
	t.Helper()
	tx := begin(t, s)
	for _, id := range ids {
		if !claim(t, s, tx, consumer, id) {
			t.Fatalf("claim of fresh id %s failed", id)
		}
	}
	commit(t, tx)
}

// isNew reports whether id is claimable for consumer, without keeping it.
func isNew(t *testing.T, s Store, consumer string, id uuid.UUID) bool {
	t.Helper()
	tx := begin(t, s)
	ok := claim(t, s, tx, consumer, id)
	if err := tx.Rollback(ctxT(t)); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	return ok
}

// A new id is claimed once; claims are per consumer.
func testClaimThenDuplicate(t *testing.T, h Harness) {
	s, id := h.Store, uuid.New()
	tx := begin(t, s)
	if !claim(t, s, tx, "billing", id) {
		t.Fatal("first claim of a new id: false")
	}
	if claim(t, s, tx, "billing", id) {
		t.Fatal("second claim in the same transaction: true")
	}
	commit(t, tx)
	if isNew(t, s, "billing", id) {
		t.Fatal("claim after commit: true")
	}
	if !isNew(t, s, "shipping", id) {
		t.Fatal("another consumer's claim of the id: false")
	}
}

// Rolling back releases the claim.
func testRollbackReleases(t *testing.T, h Harness) {
	s, id := h.Store, uuid.New()
	tx := begin(t, s)
	if !claim(t, s, tx, "billing", id) {
		t.Fatal("first claim: false")
	}
	if err := tx.Rollback(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if !isNew(t, s, "billing", id) {
		t.Fatal("claim after rollback: false")
	}
}

// 16 goroutines claim the same id in their own transactions at once:
// exactly one wins.
func testConcurrentOneWins(t *testing.T, h Harness) {
	const n = 16
	s, id := h.Store, uuid.New()
	var ready, wg sync.WaitGroup
	ready.Add(n)
	start := make(chan struct{})
	// No one commits before everyone has called Claim, so the claims
	// overlap instead of running one after another.
	var entered atomic.Int32
	allIn := make(chan struct{})
	var wins atomic.Int32
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			ctx := ctxT(t)
			tx, err := s.Begin(ctx)
			ready.Done()
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			<-start
			if entered.Add(1) == n {
				close(allIn)
			}
			ok, err := s.Claim(ctx, tx, "billing", id)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				wins.Add(1)
			}
			<-allIn
			if err := tx.Commit(ctx); err != nil {
				errs <- err
			}
		})
	}
	ready.Wait()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d of %d concurrent claimers won, want exactly 1", w, n)
	}
	if isNew(t, s, "billing", id) {
		t.Fatal("the id is claimable after the winner committed")
	}
}

// A claimer of an id held by an open transaction waits for it, then gets
// false if it committed and true if it rolled back.
func testWaiterSeesHolderOutcome(t *testing.T, h Harness) {
	for _, commitHolder := range []bool{true, false} {
		t.Run(fmt.Sprintf("holderCommits=%v", commitHolder), func(t *testing.T) {
			s, id := h.Store, uuid.New()
			holder := begin(t, s)
			if !claim(t, s, holder, "billing", id) {
				t.Fatal("holder's claim: false")
			}
			waiter := begin(t, s)
			type result struct {
				ok  bool
				err error
			}
			got := make(chan result, 1)
			go func() {
				ok, err := s.Claim(ctxT(t), waiter, "billing", id)
				got <- result{ok, err}
			}()
			// A claim returning while the holder is open would break
			// exactly-one-wins; 100 ms is ample for a wrong answer to show.
			select {
			case r := <-got:
				t.Fatalf("claim returned (%v, %v) while the holder was still open", r.ok, r.err)
			case <-time.After(100 * time.Millisecond):
			}
			if commitHolder {
				commit(t, holder)
			} else if err := holder.Rollback(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.ok == commitHolder {
				t.Fatalf("waiter's claim = %v after the holder's %s", r.ok, map[bool]string{true: "commit", false: "rollback"}[commitHolder])
			}
		})
	}
}

// A claim waiting for another transaction returns when its context ends,
// and its transaction can still be rolled back.
func testCancelWhileWaiting(t *testing.T, h Harness) {
	s, id := h.Store, uuid.New()
	holder := begin(t, s)
	if !claim(t, s, holder, "billing", id) {
		t.Fatal("holder's claim: false")
	}
	waiter := begin(t, s)
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if ok, err := s.Claim(ctx, waiter, "billing", id); err == nil {
		t.Fatalf("claim of a held id under an expiring context: (%v, nil), want an error", ok)
	}
	_ = waiter.Rollback(ctxT(t)) // may report the connection's loss
	if err := holder.Rollback(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if !isNew(t, s, "billing", id) {
		t.Fatal("id not claimable after both transactions ended")
	}
}

// ClaimBatch answers per index, first occurrence wins; Processed sees
// committed ids and the transaction's own claims only.
func testClaimBatch(t *testing.T, h Harness) {
	s := h.Store
	a, b, c, d, e, f := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	claimCommitted(t, s, "billing", a, b)
	claimCommitted(t, s, "shipping", c)

	tx := begin(t, s)
	got, err := s.ClaimBatch(ctxT(t), tx, "billing", []uuid.UUID{c, a, d, c, b, e})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, false, false, true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ClaimBatch = %v, want %v", got, want)
	}
	if got, err := s.ClaimBatch(ctxT(t), tx, "billing", nil); err != nil || len(got) != 0 {
		t.Fatalf("ClaimBatch(nil) = %v, %v", got, err)
	}
	proc, err := s.Processed(ctxT(t), tx, "billing", []uuid.UUID{a, c, f, e})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; fmt.Sprint(proc) != fmt.Sprint(want) {
		t.Fatalf("Processed in the claiming transaction = %v, want %v", proc, want)
	}
	other := begin(t, s)
	proc, err = s.Processed(ctxT(t), other, "billing", []uuid.UUID{a, c})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false}; fmt.Sprint(proc) != fmt.Sprint(want) {
		t.Fatalf("Processed in another transaction = %v, want %v (uncommitted claims are invisible)", proc, want)
	}
	commit(t, tx)
	proc, err = s.Processed(ctxT(t), other, "billing", []uuid.UUID{c, d, e, f})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true, false}; fmt.Sprint(proc) != fmt.Sprint(want) {
		t.Fatalf("Processed after commit = %v, want %v", proc, want)
	}
}

func testClaimBatchRollback(t *testing.T, h Harness) {
	s := h.Store
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	tx := begin(t, s)
	if _, err := s.ClaimBatch(ctxT(t), tx, "billing", ids); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tx = begin(t, s)
	got, err := s.ClaimBatch(ctxT(t), tx, "billing", ids)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[true true true]" {
		t.Fatalf("ClaimBatch after rollback = %v, want all true", got)
	}
}

// Two transactions claiming the same ids in opposite orders neither
// deadlock nor both win an id.
func testOverlappingBatches(t *testing.T, h Harness) {
	s := h.Store
	ids := make([]uuid.UUID, 500)
	for i := range ids {
		ids[i] = uuid.New()
	}
	rev := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		rev[len(ids)-1-i] = id
	}
	orders := [][]uuid.UUID{ids, rev, slices.Clone(ids), slices.Clone(ids)}
	for _, o := range orders[2:] {
		rand.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
	}
	var wg, ready sync.WaitGroup
	ready.Add(len(orders))
	start := make(chan struct{})
	wins := make([]map[uuid.UUID]bool, len(orders))
	errs := make([]error, len(orders))
	for k, order := range orders {
		wg.Go(func() {
			ctx := ctxT(t)
			tx, err := s.Begin(ctx)
			ready.Done()
			if err != nil {
				errs[k] = err
				return
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			<-start // all at once, so the row locks interleave
			got, err := s.ClaimBatch(ctx, tx, "billing", order)
			if err != nil {
				errs[k] = err
				return
			}
			wins[k] = map[uuid.UUID]bool{}
			for i, ok := range got {
				if ok {
					wins[k][order[i]] = true
				}
			}
			errs[k] = tx.Commit(ctx)
		})
	}
	ready.Wait()
	close(start)
	wg.Wait()
	count := map[uuid.UUID]int{}
	for k := range orders {
		if errs[k] != nil {
			t.Fatalf("batch %d: %v", k, errs[k])
		}
		for id := range wins[k] {
			count[id]++
		}
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Errorf("id %s won by %d batches, want 1", id, count[id])
		}
	}
}

// Handle runs fn once per id, skips duplicates, and releases the claim
// when fn fails.
func testHandle(t *testing.T, h Harness) {
	s, id := h.Store, uuid.New()
	ctx := ctxT(t)
	boom := errors.New("boom")
	runs := 0
	res, err := dedup.Handle(ctx, s, "billing", id, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		return boom
	})
	if !errors.Is(err, boom) || res != 0 {
		t.Fatalf("Handle with failing fn = (%v, %v), want (0, boom)", res, err)
	}
	res, err = dedup.Handle(ctx, s, "billing", id, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		if tx == nil {
			return errors.New("nil tx")
		}
		return nil
	})
	if err != nil || res != dedup.Handled {
		t.Fatalf("Handle after a failure = (%v, %v), want (handled, nil)", res, err)
	}
	res, err = dedup.Handle(ctx, s, "billing", id, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		return nil
	})
	if err != nil || res != dedup.Duplicate {
		t.Fatalf("Handle of a processed id = (%v, %v), want (duplicate, nil)", res, err)
	}
	if runs != 2 {
		t.Fatalf("fn ran %d times, want 2", runs)
	}
}

// A panicking fn rolls the claim back and the panic continues.
func testHandlePanic(t *testing.T, h Harness) {
	s, id := h.Store, uuid.New()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not propagate")
			}
		}()
		_, _ = dedup.Handle(ctxT(t), s, "billing", id, func(context.Context, pgx.Tx) error { panic("boom") })
	}()
	if !isNew(t, s, "billing", id) {
		t.Fatal("claim kept after a panic")
	}
}

// An ended transaction refuses claims, commits and rollbacks with
// pgx.ErrTxClosed.
func testClosedTx(t *testing.T, h Harness) {
	s := h.Store
	tx := begin(t, s)
	commit(t, tx)
	if _, err := s.Claim(ctxT(t), tx, "billing", uuid.New()); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Claim after commit: %v, want pgx.ErrTxClosed", err)
	}
	if _, err := s.ClaimBatch(ctxT(t), tx, "billing", []uuid.UUID{uuid.New()}); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("ClaimBatch after commit: %v, want pgx.ErrTxClosed", err)
	}
	if err := tx.Commit(ctxT(t)); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("second Commit: %v, want pgx.ErrTxClosed", err)
	}
	if err := tx.Rollback(ctxT(t)); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Rollback after Commit: %v, want pgx.ErrTxClosed", err)
	}
}

// Prune deletes, in bounded batches, exactly the claims older than the
// window, of every consumer.
func testPrune(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxT(t)
	old := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	claimCommitted(t, s, "billing", old[:3]...)
	claimCommitted(t, s, "shipping", old[3:]...)
	h.Age(t, 2*time.Hour)
	recent := uuid.New()
	claimCommitted(t, s, "billing", recent)

	if n, err := s.Prune(ctx, 3*time.Hour, 2); err != nil || n != 0 {
		t.Fatalf("Prune(3h) = %d, %v; want 0 deleted", n, err)
	}
	n, err := s.Prune(ctx, time.Hour, 2)
	if err != nil || n != int64(len(old)) {
		t.Fatalf("Prune(1h, batch 2) = %d, %v; want %d deleted", n, err, len(old))
	}
	for i, id := range old {
		consumer := "billing"
		if i >= 3 {
			consumer = "shipping"
		}
		if !isNew(t, s, consumer, id) {
			t.Errorf("pruned id %s of %s is still processed", id, consumer)
		}
	}
	if isNew(t, s, "billing", recent) {
		t.Error("a recent id was pruned")
	}
	if _, err := s.Prune(ctx, -time.Second, 0); err == nil {
		t.Error("Prune with a negative age: no error")
	}
}

func testEmptyConsumer(t *testing.T, h Harness) {
	s := h.Store
	tx := begin(t, s)
	if _, err := s.Claim(ctxT(t), tx, "", uuid.New()); err == nil {
		t.Error("Claim with an empty consumer: no error")
	}
	if _, err := s.ClaimBatch(ctxT(t), tx, "", []uuid.UUID{uuid.New()}); err == nil {
		t.Error("ClaimBatch with an empty consumer: no error")
	}
	if _, err := s.Processed(ctxT(t), tx, "", []uuid.UUID{uuid.New()}); err == nil {
		t.Error("Processed with an empty consumer: no error")
	}
}
