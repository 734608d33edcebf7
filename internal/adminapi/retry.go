package adminapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// maxRetryDeadLetters bounds the dead letters one retry re-sends: an event
// has one per queue or topic that dead-lettered it.
const maxRetryDeadLetters = 1000

// retried is POST /dlq/{event_id}/retry's answer: the seed's field
// retried, and what was done.
type retried struct {
	// Retried is the seed's field: the outbox row is no longer failed.
	Retried bool `json:"retried"`
	// ReplayedDeadLetters are the ids of the dead letters re-sent to
	// their origins (confirmed by the broker); empty when none was pending.
	ReplayedDeadLetters []int64 `json:"replayed_dead_letters"`
	// ReplayID is the replay's id, null when nothing was re-sent.
	ReplayID *string `json:"replay_id"`
	// FlagsReset: the outbox row's failed flags were cleared.
	FlagsReset bool `json:"flags_reset"`
	// Detail says the same in words.
	Detail string `json:"detail"`
}

// POST /api/v1/dlq/{event_id}/retry: replays the event's pending dead
// letters to their origins, then resets its outbox row's failed flags (so
// the Relay publishes it again if it never reached Kafka).
func (h *Handler) retryFailed(w http.ResponseWriter, r *http.Request) {
	a := actionOf(r)
	v := chi.URLParam(r, "event_id")
	a.target = map[string]any{"event_id": v}
	eventID, err := uuid.Parse(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("event_id: want a UUID, got %q", deadletter.CleanText(v, 64)))
		return
	}
	failed, err := h.readFailedFlag(r.Context(), eventID)
	switch {
	case errors.Is(err, errNoOutboxEvent):
		writeError(w, http.StatusNotFound, fmt.Sprintf("outbox event %s not found", eventID))
		return
	case err != nil:
		h.fail(w, r, err)
		return
	case !failed:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("outbox event %s is not failed", eventID))
		return
	}
	f := deadletter.Filter{EventID: eventID}
	if !h.checkDestinations(w, r, f) {
		return
	}
	h.releaseStale(r)
	replayID := uuid.New()
	items, _, err := h.dl.ClaimPage(r.Context(), f, replayID, maxRetryDeadLetters, 1<<62)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := retried{ReplayedDeadLetters: []int64{}}
	a.matched = len(items)
	if len(items) > 0 {
		a.replayID = replayID
		o, err := h.replayClaimed(r.Context(), items, replayID, a)
		if o.firstError != nil {
			h.failPublish(w, r, fmt.Errorf("%d of %d dead letters of event %s not re-sent, its outbox row stays failed: %w",
				len(o.failed), len(items), eventID, o.firstError))
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out.ReplayedDeadLetters = o.done
		id := replayID.String()
		out.ReplayID = &id
	}
	if err := h.resetFailed(r.Context(), eventID); err != nil {
		h.fail(w, r, err)
		return
	}
	out.Retried, out.FlagsReset = true, true
	if len(out.ReplayedDeadLetters) == 0 {
		out.Detail = "no pending dead letter of this event: only the outbox row's failed flags were reset"
	} else {
		out.Detail = fmt.Sprintf("re-sent %d dead letters to their origins and reset the outbox row's failed flags",
			len(out.ReplayedDeadLetters))
	}
	writeJSON(w, http.StatusOK, out)
}
