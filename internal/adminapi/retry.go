package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// resetFailedSQL is the seed's retry: the outbox row is no longer failed
// and the attempt is counted.
const resetFailedSQL = `UPDATE outbox_events SET failed = false, failed_at = NULL, error_message = NULL,
		attempt_count = attempt_count + 1
	WHERE event_id = messagekit_outbox_event_id($1::uuid) RETURNING 1`

type retried struct {
	Retried bool `json:"retried"`
}

// POST /api/v1/dlq/{event_id}/retry: replays the event's pending dead
// letters to their origins, then resets its outbox row's failed flags (so
// the Relay publishes it again if it never reached Kafka).
func (h *Handler) retryFailed(w http.ResponseWriter, r *http.Request) {
	v := chi.URLParam(r, "event_id")
	eventID, err := uuid.Parse(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("event_id: want a UUID, got %q", v))
		return
	}
	var failed bool
	err = h.db.QueryRow(r.Context(), `SELECT failed FROM outbox_events WHERE event_id = messagekit_outbox_event_id($1::uuid)`, eventID).Scan(&failed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		writeError(w, http.StatusNotFound, fmt.Sprintf("outbox event %s not found", eventID))
		return
	case err != nil:
		h.fail(w, r, fmt.Errorf("read outbox event %s: %w", eventID, err))
		return
	case !failed:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("outbox event %s is not failed", eventID))
		return
	}
	items, err := h.dl.PendingByEvent(r.Context(), eventID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	replayID := uuid.New()
	o := bulkOutcome{replayed: map[deadletter.Source]int{}}
	if len(items) > 0 {
		for i, err := range h.send(r.Context(), items, replayID) {
			if err != nil {
				h.failPublish(w, r, fmt.Errorf("dead letter %d: %w", items[i].ID, err))
				return
			}
		}
	}
	markCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), markTimeout)
	defer cancel()
	ids := make([]int64, len(items))
	source := map[int64]deadletter.Source{}
	for i, it := range items {
		ids[i], source[it.ID] = it.ID, it.Source
	}
	marked, err := h.dl.MarkManyReplayed(markCtx, ids)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, id := range marked {
		o.replayed[source[id]]++
	}
	var one int
	if err := h.db.QueryRow(markCtx, resetFailedSQL, eventID).Scan(&one); err != nil {
		h.fail(w, r, fmt.Errorf("reset outbox event %s: %w", eventID, err))
		return
	}
	h.recordReplay(r, replayRecord{replayID: replayID, kind: KindDLQRetry,
		filter: map[string]any{"event_id": eventID}, replayed: o.replayed})
	writeJSON(w, http.StatusOK, retried{Retried: true})
}
