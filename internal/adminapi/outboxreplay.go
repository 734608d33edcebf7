package adminapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
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

// rangeSQL reads a created_at range oldest first through
// outbox_events_created_at_idx. On a pre-existing outbox (the Python
// messagekit's), messagekit_outbox has NULL id, aggregate_type and trace
// columns, and rows of one created_at go in event id order.
const rangeSQL = `SELECT event_id, event_type, aggregate_id, aggregate_type, created_at, occurred_at,
		published, failed, payload, traceparent, tracestate
	FROM messagekit_outbox
	WHERE created_at >= $1 AND created_at <= $2 AND ($3 = '' OR event_type = $3)
	ORDER BY created_at, id, event_id
	LIMIT $4`

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
	q.EventType = r.URL.Query().Get("event_type")
	var err error
	q.Limit, err = parseInt(r, "limit", defaultOutboxReplayLimit, 1, MaxBulkReplay)
	return q, err
}

func (h *Handler) readRange(ctx context.Context, q outboxRange) ([]outboxEvent, error) {
	rows, err := h.db.Query(ctx, rangeSQL, q.From, q.To, q.EventType, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox range: %w", err)
	}
	defer rows.Close()
	events := make([]outboxEvent, 0)
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.EventID, &e.EventType, &e.AggregateID, &e.AggregateType, &e.CreatedAt, &e.OccurredAt,
			&e.Published, &e.Failed, &e.Payload, &e.traceparent, &e.tracestate); err != nil {
			return nil, fmt.Errorf("read outbox range: %w", err)
		}
		e.CreatedAt, e.OccurredAt = e.CreatedAt.UTC(), e.OccurredAt.UTC()
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox range: %w", err)
	}
	return events, nil
}

// GET /api/v1/replay
func (h *Handler) previewReplay(w http.ResponseWriter, r *http.Request) {
	q, err := parseRange(r)
	if !answerInput(w, err) {
		return
	}
	events, err := h.readRange(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, outboxEvents{Events: events})
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
// in pages of replayPage records.
func (h *Handler) replayOutbox(w http.ResponseWriter, r *http.Request) {
	q, err := parseRange(r)
	if !answerInput(w, err) {
		return
	}
	if h.kafka == nil {
		writeError(w, http.StatusServiceUnavailable, "replay to kafka is not configured on this server")
		return
	}
	events, err := h.readRange(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	replayID := uuid.New()
	out := outboxReplayResult{ReplayID: replayID.String()}
	for start := 0; start < len(events); start += replayPage {
		page := events[start:min(start+replayPage, len(events))]
		records := make([]outbox.Record, len(page))
		for i := range page {
			records[i] = page[i].record(h.topic, replayID)
		}
		errs := h.kafka.Publish(r.Context(), records)
		for i := range page {
			if errs != nil && i < len(errs) && errs[i] != nil {
				out.FailedCount++
				if out.FirstError == nil {
					out.FirstError = nullString(fmt.Sprintf("event %s: %v", page[i].EventID, errs[i]))
				}
				continue
			}
			out.ReplayedCount++
		}
	}
	h.recordReplay(r, replayRecord{replayID: replayID, kind: KindOutbox, filter: q,
		replayed: map[deadletter.Source]int{sourceOutbox: out.ReplayedCount}, failed: out.FailedCount})
	writeJSON(w, http.StatusOK, out)
}
