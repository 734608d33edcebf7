package adminapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
)

type statsDoc struct {
	Mode                    string   `json:"mode"`
	Pending                 *int64   `json:"pending"`
	OldestPendingAgeSeconds *float64 `json:"oldest_pending_age_seconds"`
	Failed                  int64    `json:"failed"`
	Slot                    *struct {
		Name     string `json:"name"`
		Found    bool   `json:"found"`
		LagBytes *int64 `json:"lag_bytes"`
	} `json:"slot"`
}

type healthDoc struct {
	Status    string    `json:"status"`
	Service   string    `json:"service"`
	Timestamp time.Time `json:"timestamp"`
	Checks    struct {
		Database struct {
			Status string `json:"status"`
		} `json:"database"`
		Outbox *struct {
			Status       string   `json:"status"`
			PendingCount *int64   `json:"pending_count"`
			AgeSeconds   *float64 `json:"oldest_event_age_seconds"`
			statsDoc
		} `json:"outbox"`
	} `json:"checks"`
}

// TestOutboxStatsAndHealth pins /outbox/stats and the seed's health
// document: checks.outbox carries pending_count and
// oldest_event_age_seconds (check_outbox_lag of the Python messagekit);
// healthy, degraded above OUTBOX_HEALTH_PENDING (1000) pending or an oldest
// pending row older than OUTBOX_HEALTH_STALE_AFTER (300 s), always 200.
func TestOutboxStatsAndHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *adminapi.Config) { c.StatsCacheTTL = -1 })
	published := e.writeEvent(t, "sales.order.placed")
	failed := e.writeEvent(t, "sales.order.placed")
	e.writeEvent(t, "sales.order.placed")
	e.exec(t, `UPDATE outbox_events SET published = true, published_at = now() WHERE event_id = $1`, published.EventID)
	e.exec(t, `UPDATE outbox_events SET failed = true, failed_at = now() WHERE event_id = $1`, failed.EventID)

	r := e.get(t, "/api/v1/outbox/stats")
	var s statsDoc
	r.decode(t, &s)
	if r.status != http.StatusOK || s.Mode != "relay" || s.Pending == nil || *s.Pending != 1 || s.Failed != 1 ||
		s.OldestPendingAgeSeconds == nil || *s.OldestPendingAgeSeconds > 60 || s.Slot != nil {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}

	health := func(t *testing.T, path string) healthDoc {
		t.Helper()
		r := do(t, e.api, http.MethodGet, path, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("%s: status %d", path, r.status)
		}
		var h healthDoc
		r.decode(t, &h)
		if h.Checks.Outbox == nil || h.Checks.Database.Status != "healthy" || time.Since(h.Timestamp) > time.Minute {
			t.Fatalf("%s: %s", path, r.body)
		}
		return h
	}
	if h := health(t, "/health"); h.Status != "healthy" || h.Service != adminapi.DefaultService || *h.Checks.Outbox.Pending != 1 ||
		h.Checks.Outbox.PendingCount == nil || *h.Checks.Outbox.PendingCount != 1 || h.Checks.Outbox.AgeSeconds == nil {
		t.Errorf("/health: %+v", h)
	}
	if h := health(t, "/health/outbox"); h.Status != "healthy" || h.Service != "" {
		t.Errorf("/health/outbox: %+v", h)
	}

	// Oldest pending older than 300 s.
	e.exec(t, `UPDATE outbox_events SET created_at = now() - interval '301 seconds' WHERE NOT published AND NOT failed`)
	if h := health(t, "/health/outbox"); h.Status != "degraded" || *h.Checks.Outbox.OldestPendingAgeSeconds < 300 ||
		*h.Checks.Outbox.AgeSeconds < 300 {
		t.Errorf("old pending row: %+v", h)
	}
	// Exactly 1000 pending (fresh) is healthy, 1001 degraded.
	e.exec(t, `DELETE FROM outbox_events WHERE NOT published AND NOT failed`)
	insert := `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
		SELECT gen_random_uuid(), 'sales.order.placed', 'order-1', '{}'::jsonb, now() FROM generate_series(1, $1)`
	e.exec(t, insert, 1000)
	if h := health(t, "/health"); h.Status != "healthy" || *h.Checks.Outbox.Pending != 1000 {
		t.Errorf("1000 pending: %+v", h)
	}
	e.exec(t, insert, 1)
	if h := health(t, "/health"); h.Status != "degraded" || *h.Checks.Outbox.Pending != 1001 || *h.Checks.Outbox.PendingCount != 1001 {
		t.Errorf("1001 pending: %+v", h)
	}
}

// TestOutboxHealthThresholdsAndCache pins OUTBOX_HEALTH_PENDING and
// _STALE_AFTER, and that the figures are read once per StatsCacheTTL, not
// per probe.
func TestOutboxHealthThresholdsAndCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *adminapi.Config) {
		c.OutboxHealth = adminapi.HealthThresholds{Pending: 2, StaleAfter: time.Hour}
		c.StatsCacheTTL = time.Hour
	})
	status := func() (string, int64) {
		var h healthDoc
		do(t, e.api, http.MethodGet, "/health/outbox", "", nil).decode(t, &h)
		return h.Status, *h.Checks.Outbox.PendingCount
	}
	e.writeEvent(t, "sales.order.placed")
	e.writeEvent(t, "sales.order.placed")
	e.exec(t, `UPDATE outbox_events SET created_at = now() - interval '2 hours'`)
	if s, n := status(); s != "degraded" || n != 2 {
		t.Errorf("2 pending, 2 h old, limits 2 and 1 h: %s %d; want degraded by age", s, n)
	}
	e.writeEvent(t, "sales.order.placed")
	if s, n := status(); s != "degraded" || n != 2 {
		t.Errorf("cached figures: %s %d; want the first read's 2", s, n)
	}
	fresh := newEnv(t, func(c *adminapi.Config) {
		c.OutboxHealth = adminapi.HealthThresholds{Pending: 5, StaleAfter: time.Hour}
	})
	e.exec(t, `UPDATE outbox_events SET created_at = now()`)
	var h healthDoc
	do(t, fresh.api, http.MethodGet, "/health/outbox", "", nil).decode(t, &h)
	if h.Status != "healthy" {
		t.Errorf("a fresh database: %+v", h)
	}
}

// TestOutboxStatsCDC pins CDC mode: a configured slot is reported (here a
// missing one, which makes the outbox degraded) and pending is null.
func TestOutboxStatsCDC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *adminapi.Config) { c.SlotName = "no_such_slot" })
	r := e.get(t, "/api/v1/outbox/stats")
	var s statsDoc
	r.decode(t, &s)
	if r.status != http.StatusOK || s.Mode != "cdc" || s.Pending != nil || s.Slot == nil ||
		s.Slot.Name != "no_such_slot" || s.Slot.Found || s.Slot.LagBytes != nil {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	r = do(t, e.api, http.MethodGet, "/health/outbox", "", nil)
	var h healthDoc
	r.decode(t, &h)
	if r.status != http.StatusOK || h.Status != "degraded" {
		t.Errorf("health: %d %s", r.status, r.body)
	}
}

// brokenDB fails every query, as an unreachable database does.
type brokenDB struct{}

var errBroken = errors.New("connection refused")

func (brokenDB) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, errBroken }
func (brokenDB) QueryRow(context.Context, string, ...any) pgx.Row        { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return errBroken }

// TestHealthUnhealthy pins that an unreadable database is "unhealthy" with
// 200 on the health routes, without the cause, and a 500 on the API that
// does not leak it either.
func TestHealthUnhealthy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *adminapi.Config) { c.DB = brokenDB{} })
	for _, path := range []string{"/health", "/health/outbox"} {
		r := do(t, e.api, http.MethodGet, path, "", nil)
		var h healthDoc
		r.decode(t, &h)
		if r.status != http.StatusOK || h.Status != "unhealthy" || h.Checks.Database.Status != "unhealthy" ||
			h.Checks.Outbox != nil || strings.Contains(string(r.body), "refused") {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/api/v1/outbox/stats", "/api/v1/dlq"} {
		r := e.get(t, path)
		if msg := r.errorMessage(t); r.status != http.StatusInternalServerError || strings.Contains(msg, "refused") {
			t.Errorf("%s: %d %q", path, r.status, msg)
		}
	}
}

type failedDoc struct {
	Events []struct {
		ID           uuid.UUID  `json:"id"`
		EventType    string     `json:"event_type"`
		FailedAt     *time.Time `json:"failed_at"`
		ErrorMessage *string    `json:"error_message"`
	} `json:"events"`
}

// TestListFailed pins the seed-compatible GET /dlq: failed outbox rows
// only, newest failed_at first, event_type filter, limit and offset, 400
// for bad values.
func TestListFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var failedIDs []uuid.UUID // oldest failure first
	for i := range 5 {
		typ := "sales.order.placed"
		if i%2 == 1 {
			typ = "sales.order.shipped"
		}
		ev := e.writeEvent(t, typ)
		e.exec(t, `UPDATE outbox_events SET failed = true, failed_at = $2, error_message = $3 WHERE event_id = $1`,
			ev.EventID, base.Add(time.Duration(i)*time.Hour), fmt.Sprintf("boom %d", i))
		failedIDs = append(failedIDs, ev.EventID)
	}
	e.writeEvent(t, "sales.order.placed") // pending, not listed
	newestFirst := slices.Clone(failedIDs)
	slices.Reverse(newestFirst)

	tests := []struct {
		query string
		want  []uuid.UUID
	}{
		{"", newestFirst},
		{"limit=2", newestFirst[:2]},
		{"limit=2&offset=2", newestFirst[2:4]},
		{"offset=4", newestFirst[4:]},
		{"offset=5", nil},
		{"event_type=sales.order.shipped", []uuid.UUID{failedIDs[3], failedIDs[1]}},
		{"event_type=sales.order.shipped&limit=1&offset=1", []uuid.UUID{failedIDs[1]}},
		{"event_type=nope", nil},
	}
	for _, tc := range tests {
		t.Run("query="+tc.query, func(t *testing.T) {
			t.Parallel()
			r := e.get(t, "/api/v1/dlq?"+tc.query)
			var d failedDoc
			r.decode(t, &d)
			if r.status != http.StatusOK || d.Events == nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var got []uuid.UUID
			for _, ev := range d.Events {
				got = append(got, ev.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("fields", func(t *testing.T) {
		t.Parallel()
		var d failedDoc
		e.get(t, "/api/v1/dlq?limit=1").decode(t, &d)
		ev := d.Events[0]
		if ev.EventType != "sales.order.placed" || ev.FailedAt == nil || !ev.FailedAt.Equal(base.Add(4*time.Hour)) ||
			ev.ErrorMessage == nil || *ev.ErrorMessage != "boom 4" {
			t.Errorf("%+v", ev)
		}
	})
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "offset=-1", "offset=x", "offset=99999999999"} {
		t.Run("bad "+q, func(t *testing.T) {
			t.Parallel()
			r := e.get(t, "/api/v1/dlq?"+q)
			param, _, _ := strings.Cut(q, "=")
			if msg := r.errorMessage(t); r.status != http.StatusBadRequest || !strings.Contains(msg, param) {
				t.Errorf("%d %q", r.status, msg)
			}
		})
	}
}
