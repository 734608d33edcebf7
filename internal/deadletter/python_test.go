package deadletter_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// pythonEvents writes n copies of a Python-produced flat event, each with
// its own event id, into db's seed outbox and returns the ids.
func pythonEvents(t *testing.T, db *testenv.Database, n int) []uuid.UUID {
	t.Helper()
	body, err := os.ReadFile("../../pkg/contracts/testdata/python/user_created.flat-dumps.json")
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for range n {
		id := uuid.New()
		testenv.InsertPythonEvent(t, db, bytes.Replace(body, []byte("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a"), []byte(id.String()), 1))
		ids = append(ids, id)
	}
	return ids
}

// seedOutbox reads the flags of a row of the seed's varchar outbox.
func seedOutbox(t *testing.T, db *testenv.Database, id uuid.UUID) outboxRow {
	t.Helper()
	var r outboxRow
	err := db.Pool.QueryRow(ctx(t), `SELECT failed, failed_at, error_message, attempt_count FROM outbox_events
		WHERE event_id = $1`, id.String()).Scan(&r.failed, &r.failedAt, &r.message, &r.attempts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The bookkeeper's flags work on the Python messagekit's outbox as it is
// (event_id varchar(36)): a batch of dead letters, written in bulk and one
// by one, flags the rows, and replaying resets them, one or many at once.
func TestRecordOnPythonSeedOutbox(t *testing.T) {
	t.Parallel()
	db := testenv.PythonSeedPostgres(t, true)
	s, err := deadletter.New(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	ids := pythonEvents(t, db, 3)
	again := rabbit(ids[0], "{}") // the same identity twice in one batch: written one by one
	res := record(t, s, rabbit(ids[0], "{}"), rabbit(ids[1], "{}"), again, rabbit(uuid.New(), "{}"))
	if !res[0].OutboxFlagged || !res[1].OutboxFlagged || !res[2].OutboxFlagged || res[3].OutboxFlagged {
		t.Fatalf("results %+v, want the three Python events flagged", res)
	}
	for i, want := range []int{2, 1, 0} {
		row := seedOutbox(t, db, ids[i])
		if row.failed != (want > 0) || row.attempts != want ||
			(want > 0 && (row.message == nil || *row.message != "rejected by queue orders.q")) {
			t.Errorf("event %d: row %+v, want %d attempts", i, row, want)
		}
	}
	if _, err := s.MarkReplayed(ctx(t), res[0].ID); err != nil {
		t.Fatal(err)
	}
	if row := seedOutbox(t, db, ids[0]); row.failed || row.failedAt != nil {
		t.Errorf("after MarkReplayed: %+v", row)
	}
	claim := uuid.New()
	items, _, err := s.ClaimPage(ctx(t), deadletter.Filter{EventID: ids[1]}, claim, 10, 1<<20)
	if err != nil || len(items) != 1 {
		t.Fatalf("ClaimPage of one event: %v %v", items, err)
	}
	if _, err := s.Claim(ctx(t), res[3].ID, claim); err != nil {
		t.Fatal(err)
	}
	if marked, err := s.FinishReplay(ctx(t), []int64{res[1].ID, res[3].ID}, claim); err != nil || len(marked) != 2 {
		t.Fatalf("FinishReplay: %v %v", marked, err)
	}
	if row := seedOutbox(t, db, ids[1]); row.failed || row.attempts != 1 {
		t.Errorf("after FinishReplay: %+v", row)
	}
}
