package adminapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// DefaultOutboxTopic is Config.OutboxTopic's default.
const DefaultOutboxTopic = "events"

// defaultOutboxReplayLimit is /replay's limit when absent.
const defaultOutboxReplayLimit = 100

// outboxEvent is one event of the /replay preview.
type outboxEvent struct {
	EventID       uuid.UUID       `json:"event_id"`
	EventType     string          `json:"event_type"`
	AggregateID   string          `json:"aggregate_id"`
	AggregateType *string         `json:"aggregate_type"`
	CreatedAt     time.Time       `json:"created_at"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Published     bool            `json:"published"`
	Failed        bool            `json:"failed"`
	Payload       json.RawMessage `json:"payload"`

	traceparent, tracestate *string
}

type outboxEvents struct {
	Events []outboxEvent `json:"events"`
}

type outboxReplayResult struct {
	ReplayedCount int     `json:"replayed_count"`
	ReplayID      string  `json:"replay_id"`
	FailedCount   int     `json:"failed_count"`
	FirstError    *string `json:"first_error"`
}

// outboxRange is the parameters of GET and POST /replay.
type outboxRange struct {
	From      time.Time `json:"from_ts"`
	To        time.Time `json:"to_ts"`
	EventType string    `json:"event_type,omitempty"`
	Limit     int64     `json:"limit"`
}

func parseRange(r *http.Request) (outboxRange, error) {
	var q outboxRange
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from_ts", &q.From}, {"to_ts", &q.To}} {
		if r.URL.Query().Get(p.name) == "" {
			return q, invalid("%s: required, an RFC 3339 timestamp", p.name)
		}
		t, err := parseTime(r, p.name)
		if err != nil {
			return q, err
		}
		*p.dst = t
	}
	if q.To.Before(q.From) {
		return q, invalid("to_ts: before from_ts")
	}
	var err error
	if q.EventType, err = textParam(r, "event_type"); err != nil {
		return q, err
	}
	q.Limit, err = parseInt(r, "limit", defaultOutboxReplayLimit, 1, MaxBulkReplay)
	return q, err
}

// GET /api/v1/replay: the events are written as they are read, so a
// preview of MaxBulkReplay large events is not held in memory.
func (h *Handler) previewReplay(w http.ResponseWriter, r *http.Request) {
	q, err := parseRange(r)
	if !answerInput(w, err) {
		return
	}
	var enc *json.Encoder
	started := false
	err = h.eachInRange(r.Context(), q, func(e *outboxEvent) error {
		if !started {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"events":[`)
			enc, started = json.NewEncoder(w), true
		} else {
			_, _ = io.WriteString(w, ",")
		}
		return enc.Encode(e)
	})
	switch {
	case err != nil && !started:
		h.fail(w, r, err)
	case err != nil:
		// The status is sent: cut the response short so the client sees
		// an incomplete body, not a shorter list.
		h.logger.ErrorContext(r.Context(), "admin api: /replay preview failed midway", "error", err)
		panic(http.ErrAbortHandler)
	case !started:
		writeJSON(w, http.StatusOK, outboxEvents{Events: []outboxEvent{}})
	default:
		_, _ = io.WriteString(w, "]}\n")
	}
}

// record is e as the Relay writes it (DESIGN.md §3), plus replayId.
func (e *outboxEvent) record(topic string, replayID uuid.UUID) outbox.Record {
	hs := []outbox.Header{
		{Key: contracts.KafkaHeaderID, Value: []byte(e.EventID.String())},
		{Key: contracts.KafkaHeaderEventType, Value: []byte(e.EventType)},
	}
	if e.AggregateType != nil && *e.AggregateType != "" {
		hs = append(hs, outbox.Header{Key: contracts.KafkaHeaderAggregateType, Value: []byte(*e.AggregateType)})
	}
	if e.traceparent != nil && *e.traceparent != "" {
		hs = append(hs, outbox.Header{Key: contracts.KafkaHeaderTraceparent, Value: []byte(*e.traceparent)})
	}
	if e.tracestate != nil && *e.tracestate != "" {
		hs = append(hs, outbox.Header{Key: contracts.KafkaHeaderTracestate, Value: []byte(*e.tracestate)})
	}
	hs = append(hs, outbox.Header{Key: contracts.KafkaHeaderReplayID, Value: []byte(replayID.String())})
	return outbox.Record{Topic: topic, Key: []byte(e.AggregateID), Value: e.Payload, Headers: hs}
}

// POST /api/v1/replay: re-sends the range to OUTBOX_TOPIC, oldest first,
// in pages of at most replayPage records and replayPageBytes bytes, read
// as they are published.
func (h *Handler) replayOutbox(w http.ResponseWriter, r *http.Request) {
	a := actionOf(r)
	a.target = r.URL.Query()
	q, err := parseRange(r)
	if !answerInput(w, err) {
		return
	}
	a.target = q
	if h.kafka == nil {
		writeError(w, http.StatusServiceUnavailable, "replay to kafka is not configured on this server")
		return
	}
	if err := h.checkDestination("topic", h.topic); err != nil {
		writeError(w, http.StatusForbidden, err.Error()+"; nothing was replayed")
		return
	}
	release, ok := h.acquireBulk(w)
	if !ok {
		return
	}
	defer release()
	replayID := uuid.New()
	a.replayID = replayID
	out := outboxReplayResult{ReplayID: replayID.String()}
	var page []*outboxEvent
	size := 0
	flush := func() {
		if len(page) == 0 {
			return
		}
		records := make([]outbox.Record, len(page))
		for i, e := range page {
			records[i] = e.record(h.topic, replayID)
		}
		errs := h.kafka.Publish(r.Context(), records)
		for i, e := range page {
			if errs != nil && i < len(errs) && errs[i] != nil {
				out.FailedCount++
				if out.FirstError == nil {
					out.FirstError = nullString(fmt.Sprintf("event %s: %v", e.EventID, errs[i]))
				}
				continue
			}
			out.ReplayedCount++
		}
		page, size = page[:0], 0
	}
	err = h.eachInRange(r.Context(), q, func(e *outboxEvent) error {
		page = append(page, e)
		a.matched++
		if size += outboxEventSize(e); len(page) >= replayPage || size >= replayPageBytes {
			flush()
		}
		return nil
	})
	flush()
	a.done, a.failed = out.ReplayedCount, out.FailedCount
	a.replayed[sourceOutbox] = out.ReplayedCount
	if out.FirstError != nil {
		a.fail(*out.FirstError)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
