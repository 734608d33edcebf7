package adminapi_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// TestHealthOutboxLogicalSlot pins CDC mode of /health/outbox (DESIGN.md
// §7) on a real logical replication slot (pgoutput), in a cluster of the
// test's own since the shared server's wal_level is not logical: degraded
// when the slot is missing, inactive (nobody streams), behind by more than
// OUTBOX_HEALTH_SLOT_LAG_BYTES while streaming, or lost; healthy while a
// consumer streams and confirms. Always 200, with the seed's fields.
func TestHealthOutboxLogicalSlot(t *testing.T) {
	t.Parallel()
	db := testenv.PrivatePostgres(t, "wal_level=logical", "max_replication_slots=4", "max_wal_senders=4",
		"max_slot_wal_keep_size=32MB", "wal_keep_size=0", "min_wal_size=32MB", "max_wal_size=64MB")
	store, err := deadletter.New(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	const slot, lagLimit = "mk_outbox", 256 << 10
	api, err := adminapi.New(adminapi.Config{DeadLetters: store, DB: db.Pool, Token: token, SlotName: slot,
		OutboxHealth: adminapi.HealthThresholds{SlotLagBytes: lagLimit}, StatsCacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	exec1 := func(sql string) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	check := func(wantStatus, wantReason string) {
		t.Helper()
		r := do(t, api, http.MethodGet, "/health/outbox", "", nil)
		var h struct {
			Status string `json:"status"`
			Checks struct {
				Outbox struct {
					Status  string   `json:"status"`
					Reason  string   `json:"reason"`
					Pending *int64   `json:"pending_count"`
					Age     *float64 `json:"oldest_event_age_seconds"`
					Mode    string   `json:"mode"`
				} `json:"outbox"`
			} `json:"checks"`
		}
		r.decode(t, &h)
		o := h.Checks.Outbox
		if r.status != http.StatusOK || h.Status != wantStatus || o.Status != wantStatus || o.Mode != "cdc" ||
			!strings.Contains(o.Reason, wantReason) || o.Pending == nil || o.Age == nil {
			t.Errorf("want %s (%q): %d %s", wantStatus, wantReason, r.status, r.body)
		}
	}
	walWrite := func(mib int) {
		t.Helper()
		exec1(`CREATE TABLE IF NOT EXISTS filler (b text)`)
		for range mib {
			exec1(`INSERT INTO filler SELECT repeat(md5(random()::text), 32) FROM generate_series(1, 1024)`)
		}
	}

	check("degraded", "does not exist")
	exec1(`CREATE PUBLICATION mk_pub FOR TABLE outbox_events`)
	exec1(`SELECT pg_create_logical_replication_slot('` + slot + `', 'pgoutput')`)
	check("degraded", "inactive")

	// A consumer that streams and confirms promptly: healthy.
	stream := func(statusInterval string) (stop func()) {
		t.Helper()
		sctx, cancel := context.WithCancel(context.Background())
		dir := os.Getenv(testenv.PostgresBinVariable)
		if dir == "" {
			dir = testenv.DefaultPostgresBin
		}
		bin := filepath.Join(dir, "pg_recvlogical")
		cmd := exec.CommandContext(sctx, bin, "-d", db.URL, "--slot", slot, "--start", "-f", "/dev/null",
			"-o", "proto_version=1", "-o", "publication_names=mk_pub", "-s", statusInterval, "-F", statusInterval)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 15*time.Second, "the slot active", func() bool {
			var active bool
			_ = db.Pool.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
			return active
		})
		return func() {
			cancel()
			_ = cmd.Wait()
			testenv.WaitFor(t, 15*time.Second, "the slot inactive", func() bool {
				var active bool
				_ = db.Pool.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
				return !active
			})
		}
	}
	stop := stream("1")
	walWrite(1)
	testenv.WaitFor(t, 15*time.Second, "the consumer to confirm", func() bool {
		var lag int64
		_ = db.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
			FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lag)
		return lag < lagLimit
	})
	check("healthy", "")
	stop()

	// Streaming but confirming once an hour: WAL written past the slot.
	stop = stream("3600")
	walWrite(2)
	check("degraded", "bytes behind")
	stop()

	// Inactive and far behind max_slot_wal_keep_size: the WAL it needs is
	// removed at a checkpoint, the slot is lost.
	for range 4 {
		walWrite(16)
		exec1(`SELECT pg_switch_wal()`)
		exec1(`CHECKPOINT`)
	}
	var walStatus string
	if err := db.Pool.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&walStatus); err != nil {
		t.Fatal(err)
	}
	if walStatus != "lost" {
		t.Fatalf("slot wal_status %s after 64 MiB past a 32 MiB keep size; want lost", walStatus)
	}
	check("degraded", "lost")
}
