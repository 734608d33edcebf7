package deadletter_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// TestClaimFinishRelease pins the claim of DESIGN.md §6 in the store: a
// claimed dead letter can not be claimed or discarded again, a page claim
// skips it; FinishReplay marks only what the claim holds (replay_count+1,
// outbox flags reset); Release and ReleaseStale make rows claimable again.
func TestClaimFinishRelease(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	withOutbox := addOutbox(t, db, uuid.New())
	res := record(t, s, rabbit(withOutbox, `{"a":1}`), rabbit(uuid.New(), `{"b":2}`), rabbit(uuid.New(), `{"c":3}`))
	ids := []int64{res[0].ID, res[1].ID, res[2].ID}
	if _, err := s.MarkDiscarded(ctx(t), ids[2], "no"); err != nil {
		t.Fatal(err)
	}

	one, two := uuid.New(), uuid.New()
	it, err := s.Claim(ctx(t), ids[0], one)
	if err != nil || it.ClaimedAt.IsZero() || len(it.Body) == 0 {
		t.Fatalf("Claim = %+v, %v", it, err)
	}
	if _, err := s.Claim(ctx(t), ids[0], two); !errors.Is(err, deadletter.ErrClaimed) {
		t.Errorf("second Claim: %v, want ErrClaimed", err)
	}
	if _, err := s.MarkDiscarded(ctx(t), ids[0], "x"); !errors.Is(err, deadletter.ErrClaimed) {
		t.Errorf("discard of a claimed row: %v, want ErrClaimed", err)
	}
	if _, err := s.Claim(ctx(t), ids[2], two); !errors.Is(err, deadletter.ErrNotPending) {
		t.Errorf("Claim of a discarded row: %v, want ErrNotPending", err)
	}
	if _, err := s.Claim(ctx(t), 1<<40, two); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("Claim of an unknown row: %v, want ErrNotFound", err)
	}
	if n, err := s.CountPending(ctx(t), deadletter.Filter{}, 10); err != nil || n != 1 {
		t.Errorf("CountPending = %d, %v; want 1 (one pending row unclaimed)", n, err)
	}
	page, _, err := s.ClaimPage(ctx(t), deadletter.Filter{}, two, 10, 1<<20)
	if err != nil || len(page) != 1 || page[0].ID != ids[1] {
		t.Fatalf("ClaimPage = %v, %v; want only row %d", page, err, ids[1])
	}

	// The wrong claim marks nothing; the right one marks and resets.
	if got, err := s.FinishReplay(ctx(t), ids[:1], two); err != nil || len(got) != 0 {
		t.Errorf("FinishReplay with another claim = %v, %v", got, err)
	}
	if got, err := s.FinishReplay(ctx(t), ids[:1], one); err != nil || !slices.Equal(got, ids[:1]) {
		t.Errorf("FinishReplay = %v, %v", got, err)
	}
	it, err = s.Get(ctx(t), ids[0])
	if err != nil || it.Status != deadletter.StatusReplayed || it.ReplayCount != 1 || !it.ClaimedAt.IsZero() {
		t.Errorf("after FinishReplay: %+v, %v", it, err)
	}
	if row := outbox(t, db, withOutbox); row.failed || row.failedAt != nil {
		t.Errorf("outbox flags not reset: %+v", row)
	}

	// Released: claimable again. Stale: released by age only.
	if got, err := s.Release(ctx(t), ids[1:2], two); err != nil || !slices.Equal(got, ids[1:2]) {
		t.Errorf("Release = %v, %v", got, err)
	}
	if _, err := s.Claim(ctx(t), ids[1], one); err != nil {
		t.Fatalf("Claim after Release: %v", err)
	}
	if got, err := s.ReleaseStale(ctx(t), time.Hour); err != nil || len(got) != 0 {
		t.Errorf("ReleaseStale(1h) = %v, %v; want nothing", got, err)
	}
	time.Sleep(20 * time.Millisecond)
	if got, err := s.ReleaseStale(ctx(t), 10*time.Millisecond); err != nil || !slices.Equal(got, ids[1:2]) {
		t.Errorf("ReleaseStale = %v, %v; want %v", got, err, ids[1:2])
	}
	if it, err := s.Get(ctx(t), ids[1]); err != nil || it.Status != deadletter.StatusPending || !it.ClaimedAt.IsZero() {
		t.Errorf("after ReleaseStale: %+v, %v", it, err)
	}
}

// TestClaimPageBytesAndCursor pins that a page claim stops at its byte
// budget (but takes at least one row) and that its cursor continues after
// the page, so a released row is not claimed again by the same replay.
func TestClaimPageBytesAndCursor(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	big := `{"pad":"` + string(slices.Repeat([]byte("x"), 1000)) + `"}`
	for range 5 {
		record(t, s, rabbit(uuid.New(), big))
	}
	claim := uuid.New()
	page, cursor, err := s.ClaimPage(ctx(t), deadletter.Filter{}, claim, 10, 10)
	if err != nil || len(page) != 1 || cursor == "" {
		t.Fatalf("page under a 10-byte budget = %d rows, %q, %v; want 1", len(page), cursor, err)
	}
	if _, err := s.Release(ctx(t), []int64{page[0].ID}, claim); err != nil {
		t.Fatal(err)
	}
	rest, _, err := s.ClaimPage(ctx(t), deadletter.Filter{Cursor: cursor}, claim, 10, 2500)
	if err != nil || len(rest) != 2 {
		t.Fatalf("page under a 2500-byte budget = %d rows, %v; want 2", len(rest), err)
	}
	for _, it := range rest {
		if it.ID == page[0].ID {
			t.Errorf("released row %d claimed again past the cursor", it.ID)
		}
	}
}

// TestDiscardPageAndSummary pins bulk discard (pending, unclaimed, up to
// the limit) and the summary's groups, largest first.
func TestDiscardPageAndSummary(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	var ids []int64
	for i := range 4 {
		dl := rabbit(uuid.New(), `{}`)
		if i == 3 {
			dl.Origin = "other.q"
		}
		ids = append(ids, record(t, s, dl)[0].ID)
	}
	if _, err := s.Claim(ctx(t), ids[0], uuid.New()); err != nil {
		t.Fatal(err)
	}
	got, err := s.DiscardPage(ctx(t), deadletter.Filter{}, 2, "poison")
	if err != nil || len(got) != 2 || slices.Contains(got, ids[0]) {
		t.Fatalf("DiscardPage = %v, %v; want 2 rows, not the claimed %d", got, err, ids[0])
	}
	groups, err := s.Summary(ctx(t), deadletter.Filter{}, "status")
	if err != nil || len(groups) != 2 || *groups[0].Key != "discarded" && *groups[0].Key != "pending" || groups[0].Count != 2 {
		t.Fatalf("Summary by status = %+v, %v", groups, err)
	}
	if _, err := s.Summary(ctx(t), deadletter.Filter{}, "body"); !errors.Is(err, deadletter.ErrInvalidFilter) {
		t.Errorf("Summary by body: %v, want ErrInvalidFilter", err)
	}
	if _, err := s.List(ctx(t), deadletter.Filter{Origin: "a\x00b"}); !errors.Is(err, deadletter.ErrInvalidFilter) {
		t.Errorf("List with NUL in queue: %v, want ErrInvalidFilter", err)
	}
	if _, err := s.List(ctx(t), deadletter.Filter{EventType: "\xff"}); !errors.Is(err, deadletter.ErrInvalidFilter) {
		t.Errorf("List with invalid UTF-8 in event_type: %v, want ErrInvalidFilter", err)
	}
}
