package adminapi

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// Health thresholds of the seed (DESIGN.md §7): above either, the outbox is
// degraded.
const (
	MaxHealthyPending    = 1000
	MaxHealthyPendingAge = 300 * time.Second
)

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
	s, err := outbox.ReadStats(r.Context(), h.db, outbox.StatsOptions{SlotName: h.slot})
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
	events, err := h.readFailed(r.Context(), r.URL.Query().Get("event_type"), limit, offset)
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

// outboxCheck is the "outbox" check of the health documents.
type outboxCheck struct {
	Status string `json:"status"`
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

// outboxStatus applies the seed's thresholds; in CDC mode a missing or
// invalidated slot is degraded.
func outboxStatus(s outbox.Stats) string {
	if s.Slot != nil {
		if !s.Slot.Found || s.Slot.WALStatus == "lost" {
			return StatusDegraded
		}
		return StatusHealthy
	}
	if s.Pending > MaxHealthyPending || s.OldestPendingAge > MaxHealthyPendingAge {
		return StatusDegraded
	}
	return StatusHealthy
}

func (h *Handler) readHealth(r *http.Request) healthJSON {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	doc := healthJSON{Timestamp: time.Now().UTC()}
	s, err := outbox.ReadStats(ctx, h.db, outbox.StatsOptions{SlotName: h.slot})
	if err != nil {
		h.logger.WarnContext(r.Context(), "health: outbox stats unreadable", "error", err)
		doc.Status = StatusUnhealthy
		doc.Checks.Database = checkJSON{Status: StatusUnhealthy, Error: "the database can not be read"}
		return doc
	}
	doc.Checks.Database = checkJSON{Status: StatusHealthy}
	doc.Checks.Outbox = &outboxCheck{Status: outboxStatus(s), statsJSON: toStats(s)}
	doc.Status = doc.Checks.Outbox.Status
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
