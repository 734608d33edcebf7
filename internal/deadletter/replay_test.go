package deadletter_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// TestMarkManyReplayed pins the bulk counterpart of MarkReplayed: only
// pending rows are marked (replay_count+1), their outbox rows' failed flags
// are reset, and unknown or discarded ids are left out without error.
func TestMarkManyReplayed(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	withOutbox := addOutbox(t, db, uuid.New())
	res := record(t, s, rabbit(withOutbox, `{"a":1}`), rabbit(uuid.New(), `{"b":2}`), rabbit(uuid.New(), `{"c":3}`))
	if !outbox(t, db, withOutbox).failed {
		t.Fatal("outbox row not flagged by Record")
	}
	ids := []int64{res[0].ID, res[1].ID, res[2].ID}
	if _, err := s.MarkDiscarded(ctx(t), ids[2], "no"); err != nil {
		t.Fatal(err)
	}

	got, err := s.GetMany(ctx(t), append(slices.Clone(ids), 1<<40))
	if err != nil || len(got) != 3 {
		t.Fatalf("GetMany = %d items, %v", len(got), err)
	}
	for _, it := range got {
		if len(it.Body) == 0 || it.Headers == nil {
			t.Errorf("GetMany item %d without message", it.ID)
		}
	}
	pending, err := s.PendingByEvent(ctx(t), withOutbox)
	if err != nil || len(pending) != 1 || pending[0].ID != ids[0] {
		t.Fatalf("PendingByEvent = %v, %v", pending, err)
	}

	marked, err := s.MarkManyReplayed(ctx(t), append(slices.Clone(ids), 1<<40))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(ids[:2])
	slices.Sort(marked)
	slices.Sort(want)
	if !slices.Equal(marked, want) {
		t.Errorf("marked %v, want %v", marked, want)
	}
	for i, want := range []deadletter.Status{deadletter.StatusReplayed, deadletter.StatusReplayed, deadletter.StatusDiscarded} {
		it, err := s.Get(ctx(t), ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if it.Status != want || (want == deadletter.StatusReplayed && (it.ReplayCount != 1 || it.ReplayedAt.IsZero())) {
			t.Errorf("row %d: %s, replay_count %d", i, it.Status, it.ReplayCount)
		}
	}
	if row := outbox(t, db, withOutbox); row.failed || row.failedAt != nil {
		t.Errorf("outbox flags not reset: %+v", row)
	}
	again, err := s.MarkManyReplayed(ctx(t), ids)
	if err != nil || len(again) != 0 {
		t.Errorf("second mark = %v, %v; want nothing", again, err)
	}
	if pending, err := s.PendingByEvent(ctx(t), withOutbox); err != nil || len(pending) != 0 {
		t.Errorf("PendingByEvent after replay = %v, %v", pending, err)
	}
}
