package adminapi

import (
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Principal is who the replays table records for a request authorised by
// ADMIN_TOKEN: the token is shared, so it names no person.
const Principal = "admin-token"

// source labels of messagekit_admin_replayed_messages_total for outbox
// replays (dead letters use their source).
const sourceOutbox deadletter.Source = "outbox"

// replayRecord is one row of the replays table.
type replayRecord struct {
	replayID uuid.UUID
	kind     string
	filter   any
	replayed map[deadletter.Source]int
	failed   int
}

const insertReplaySQL = `INSERT INTO replays (replay_id, kind, principal, remote_addr, filter, replayed_count, failed_count)
	VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) RETURNING id`

// recordReplay writes the replays row and counts the metrics. The replay
// has happened by then, so a failure to record it is logged, not answered.
func (h *Handler) recordReplay(r *http.Request, rec replayRecord) {
	total := 0
	for src, n := range rec.replayed {
		total += n
		if h.metrics != nil {
			h.metrics.replayed.WithLabelValues(rec.kind, string(src)).Add(float64(n))
		}
	}
	if h.metrics != nil {
		h.metrics.replays.WithLabelValues(rec.kind).Inc()
	}
	filter, err := json.Marshal(rec.filter)
	if err != nil {
		filter = []byte("{}")
	}
	var id int64
	if err := h.db.QueryRow(r.Context(), insertReplaySQL, rec.replayID, rec.kind, Principal, r.RemoteAddr,
		string(filter), total, rec.failed).Scan(&id); err != nil {
		h.logger.ErrorContext(r.Context(), "admin api: replay done but not recorded in the replays table",
			"replay_id", rec.replayID, "kind", rec.kind, "replayed", total, "error", err)
	}
}
