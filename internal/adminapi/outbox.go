package adminapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// Health thresholds (DESIGN.md §5, §7), the defaults of Config's
// OutboxHealth: above any, the outbox is degraded.
const (
	// DefaultHealthPending is OUTBOX_HEALTH_PENDING's default.
	DefaultHealthPending = 1000
	// DefaultHealthStaleAfter is OUTBOX_HEALTH_STALE_AFTER's default.
	DefaultHealthStaleAfter = 300 * time.Second
	// DefaultHealthSlotLagBytes is OUTBOX_HEALTH_SLOT_LAG_BYTES's default.
	DefaultHealthSlotLagBytes = 1 << 30
)

// DefaultStatsCacheTTL is Config.StatsCacheTTL's default.
const DefaultStatsCacheTTL = 2 * time.Second

// HealthThresholds says when the outbox is degraded. Zero fields mean their
// defaults.
type HealthThresholds struct {
	// Pending: more pending rows than this (Relay mode).
	Pending int64
	// StaleAfter: the oldest pending row is older than this (Relay mode).
	StaleAfter time.Duration
	// SlotLagBytes: the replication slot is further behind than this (CDC
	// mode); a missing, inactive or lost slot is degraded too.
	SlotLagBytes int64
}

func (t HealthThresholds) withDefaults() HealthThresholds {
	if t.Pending <= 0 {
		t.Pending = DefaultHealthPending
	}
	if t.StaleAfter <= 0 {
		t.StaleAfter = DefaultHealthStaleAfter
	}
	if t.SlotLagBytes <= 0 {
		t.SlotLagBytes = DefaultHealthSlotLagBytes
	}
	return t
}

// statsCache keeps the last outbox stats for a short while, so probes
// (several replicas' liveness checks, a dashboard) do not each count the
// outbox; one read at a time, the others wait for it.
type statsCache struct {
	mu   sync.Mutex
	at   time.Time
	s    outbox.Stats
	ttl  time.Duration
	slot string
}

func (c *statsCache) read(ctx context.Context, db outbox.Querier) (outbox.Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttl > 0 && !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.s, nil
	}
	s, err := outbox.ReadStats(ctx, db, outbox.StatsOptions{SlotName: c.slot})
	if err != nil {
		return outbox.Stats{}, err
	}
	c.s, c.at = s, time.Now()
	return s, nil
}

// Health statuses of /health and /health/outbox.
const (
	StatusHealthy   = "healthy"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
)

// healthTimeout bounds the database read of a health request, so a hung
// database answers "unhealthy" instead of hanging the probe.
const healthTimeout = 5 * time.Second

type slotJSON struct {
	Name      string  `json:"name"`
	Found     bool    `json:"found"`
	Active    bool    `json:"active"`
	Type      *string `json:"type"`
	WALStatus *string `json:"wal_status"`
	LagBytes  *int64  `json:"lag_bytes"`
}

// statsJSON is GET /outbox/stats. In CDC mode (a slot configured) nothing
// marks rows published, so pending and oldest_pending_age_seconds are null.
type statsJSON struct {
	Mode                    string    `json:"mode"`
	Pending                 *int64    `json:"pending"`
	OldestPendingAgeSeconds *float64  `json:"oldest_pending_age_seconds"`
	Failed                  int64     `json:"failed"`
	Slot                    *slotJSON `json:"slot"`
}

func toStats(s outbox.Stats) statsJSON {
	out := statsJSON{Mode: "relay", Failed: s.Failed}
	if s.Slot == nil {
		age := s.OldestPendingAge.Seconds()
		out.Pending, out.OldestPendingAgeSeconds = &s.Pending, &age
		return out
	}
	out.Mode = "cdc"
	out.Slot = &slotJSON{Name: s.Slot.Name, Found: s.Slot.Found, Active: s.Slot.Active,
		Type: nullString(s.Slot.Type), WALStatus: nullString(s.Slot.WALStatus)}
	if s.Slot.Found && s.Slot.LagBytes >= 0 {
		out.Slot.LagBytes = &s.Slot.LagBytes
	}
	return out
}

// GET /api/v1/outbox/stats
func (h *Handler) outboxStats(w http.ResponseWriter, r *http.Request) {
	s, err := h.stats.read(r.Context(), h.db)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toStats(s))
}

// Limits of GET /dlq (seed-compatible).
const (
	defaultFailedLimit = 100
	maxFailedLimit     = 1000
)

type failedEvent struct {
	ID           uuid.UUID  `json:"id"`
	EventType    string     `json:"event_type"`
	FailedAt     *time.Time `json:"failed_at"`
	ErrorMessage *string    `json:"error_message"`
}

type failedPage struct {
	Events []failedEvent `json:"events"`
}

// GET /api/v1/dlq
func (h *Handler) listFailed(w http.ResponseWriter, r *http.Request) {
	limit, err := parseInt(r, "limit", defaultFailedLimit, 1, maxFailedLimit)
	if !answerInput(w, err) {
		return
	}
	offset, err := parseInt(r, "offset", 0, 0, math.MaxInt32)
	if !answerInput(w, err) {
		return
	}
	eventType, err := textParam(r, "event_type")
	if !answerInput(w, err) {
		return
	}
	events, err := h.readFailed(r.Context(), eventType, limit, offset)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, failedPage{Events: events})
}

type checkJSON struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// outboxCheck is the "outbox" check of the health documents: the seed's
// fields (check_outbox_lag of the Python messagekit) and the stats. In CDC
// mode nothing marks rows published, so pending_count and
// oldest_event_age_seconds are 0 and the slot tells the lag.
type outboxCheck struct {
	Status                string  `json:"status"`
	PendingCount          int64   `json:"pending_count"`
	OldestEventAgeSeconds float64 `json:"oldest_event_age_seconds"`
	// Reason says why the outbox is degraded; absent when healthy.
	Reason string `json:"reason,omitempty"`
	statsJSON
}

type healthChecks struct {
	Database checkJSON    `json:"database"`
	Outbox   *outboxCheck `json:"outbox"`
}

// healthJSON is the seed's health document: an overall status, when, and
// the checks it was computed from.
type healthJSON struct {
	Status    string       `json:"status"`
	Service   string       `json:"service,omitempty"`
	Timestamp time.Time    `json:"timestamp"`
	Checks    healthChecks `json:"checks"`
}

// outboxStatus applies the thresholds: in Relay mode the seed's pending
// count and oldest age, in CDC mode the slot (missing, inactive, lost or
// lagging is degraded). reason says which, "" when healthy.
func outboxStatus(s outbox.Stats, t HealthThresholds) (status, reason string) {
	if sl := s.Slot; sl != nil {
		switch {
		case !sl.Found:
			return StatusDegraded, fmt.Sprintf("replication slot %s does not exist", sl.Name)
		case sl.WALStatus == "lost":
			return StatusDegraded, fmt.Sprintf("replication slot %s is lost: the WAL it needs was removed", sl.Name)
		case !sl.Active:
			return StatusDegraded, fmt.Sprintf("replication slot %s is inactive: no consumer streams from it", sl.Name)
		case sl.LagBytes > t.SlotLagBytes:
			return StatusDegraded, fmt.Sprintf("replication slot %s is %d bytes behind (threshold %d)", sl.Name, sl.LagBytes, t.SlotLagBytes)
		}
		return StatusHealthy, ""
	}
	switch {
	case s.Pending > t.Pending:
		return StatusDegraded, fmt.Sprintf("%d events pending (threshold %d)", s.Pending, t.Pending)
	case s.OldestPendingAge > t.StaleAfter:
		return StatusDegraded, fmt.Sprintf("the oldest pending event is %.0fs old (threshold %s)", s.OldestPendingAge.Seconds(), t.StaleAfter)
	}
	return StatusHealthy, ""
}

func (h *Handler) readHealth(r *http.Request) healthJSON {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	doc := healthJSON{Timestamp: time.Now().UTC()}
	s, err := h.stats.read(ctx, h.db)
	if err != nil {
		h.logger.WarnContext(r.Context(), "health: outbox stats unreadable", "error", err)
		doc.Status = StatusUnhealthy
		doc.Checks.Database = checkJSON{Status: StatusUnhealthy, Error: "the database can not be read"}
		return doc
	}
	doc.Checks.Database = checkJSON{Status: StatusHealthy}
	status, reason := outboxStatus(s, h.thresholds)
	check := &outboxCheck{Status: status, Reason: reason, statsJSON: toStats(s)}
	if s.Slot == nil {
		check.PendingCount = s.Pending
		check.OldestEventAgeSeconds = math.Round(s.OldestPendingAge.Seconds()*100) / 100
	}
	doc.Checks.Outbox = check
	doc.Status = status
	return doc
}

// GET /health: always 200, the status is in the body.
func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	doc := h.readHealth(r)
	doc.Service = h.service
	writeJSON(w, http.StatusOK, doc)
}

// GET /health/outbox: always 200, the status is in the body.
func (h *Handler) healthOutbox(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.readHealth(r))
}
