package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/deadletter/amqpheaders"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// Replay kinds: the replays.kind column and the metrics' kind label.
const (
	KindDeadLetter     = "dead_letter"
	KindDeadLetterBulk = "dead_letters"
	KindDLQRetry       = "dlq_retry"
	KindOutbox         = "outbox"
)

// MaxBulkReplay bounds the limit of POST /dead-letters/replay and of the
// outbox replay.
const MaxBulkReplay = 10000

// replayPage is how many dead letters a bulk replay reads, publishes and
// marks at a time.
const replayPage = 1000

// markTimeout bounds marking rows the broker confirmed; it runs even when
// the request ended, so a confirmed replay is not left pending.
const markTimeout = 30 * time.Second

// kafkaDLQHeaderPrefix marks the headers the DLQ writer added (DESIGN.md §3).
const kafkaDLQHeaderPrefix = "__connect.errors."

// notReplayable is a dead letter that can not be rebuilt or has no
// destination to go back to.
type notReplayable struct{ msg string }

func (e *notReplayable) Error() string { return e.msg }

// outgoing is one dead letter rebuilt for its origin: exactly one of
// queue and record is set.
type outgoing struct {
	queue  *QueueMessage
	record *outbox.Record
}

// rebuildAMQP makes the message of a RabbitMQ dead letter for its queue
// (DESIGN.md §6).
func rebuildAMQP(it deadletter.Item, replayID uuid.UUID) (QueueMessage, error) {
	if it.Origin == "" || it.Origin == "unknown" {
		return QueueMessage{}, &notReplayable{fmt.Sprintf("dead letter %d: the queue that dead-lettered it is unknown", it.ID)}
	}
	stored, err := amqpheaders.Decode(it.Headers)
	if err != nil {
		return QueueMessage{}, &notReplayable{fmt.Sprintf("dead letter %d: stored headers: %v", it.ID, err)}
	}
	// user_id (checked against the connection's user) and expiration (it
	// would expire again) are not carried over.
	msg := amqp.Publishing{
		Body: it.Body, MessageId: stored.MessageId, Type: stored.Type, ContentType: stored.ContentType,
		ContentEncoding: stored.ContentEncoding, Timestamp: stored.Timestamp,
		CorrelationId: stored.CorrelationId, AppId: stored.AppId, Priority: stored.Priority,
		DeliveryMode: stored.DeliveryMode, Headers: amqp.Table{},
	}
	if msg.DeliveryMode == 0 {
		msg.DeliveryMode = amqp.Persistent
	}
	for k, v := range stored.Headers {
		if k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") ||
			k == contracts.AMQPHeaderReplayID || k == contracts.AMQPHeaderReplayCount {
			continue
		}
		msg.Headers[k] = v
	}
	msg.Headers[contracts.AMQPHeaderReplayID] = replayID.String()
	msg.Headers[contracts.AMQPHeaderReplayCount] = int32(it.ReplayCount + 1)
	return QueueMessage{Queue: it.Origin, Msg: msg}, nil
}

// rebuildKafka makes the record of a Kafka dead letter for its original
// topic (DESIGN.md §6).
func rebuildKafka(it deadletter.Item, replayID uuid.UUID) (outbox.Record, error) {
	var detail struct {
		DLQTopic string `json:"dlq_topic"`
	}
	_ = json.Unmarshal(it.OriginDetail, &detail)
	if it.Origin == "" || it.Origin == "unknown" || it.Origin == detail.DLQTopic {
		return outbox.Record{}, &notReplayable{fmt.Sprintf("dead letter %d: its original topic is unknown (origin %q is the DLQ topic)", it.ID, it.Origin)}
	}
	stored, err := deadletter.DecodeKafkaHeaders(it.Headers)
	if err != nil {
		return outbox.Record{}, &notReplayable{fmt.Sprintf("dead letter %d: stored headers: %v", it.ID, err)}
	}
	rec := outbox.Record{Topic: it.Origin, Key: it.Key, Value: it.Body, Headers: make([]outbox.Header, 0, len(stored)+1)}
	for _, h := range stored {
		k := string(h.Key)
		if strings.HasPrefix(k, kafkaDLQHeaderPrefix) || k == contracts.KafkaHeaderReplayID {
			continue
		}
		rec.Headers = append(rec.Headers, outbox.Header{Key: k, Value: h.Value})
	}
	rec.Headers = append(rec.Headers, outbox.Header{Key: contracts.KafkaHeaderReplayID, Value: []byte(replayID.String())})
	return rec, nil
}

func rebuild(it deadletter.Item, replayID uuid.UUID) (outgoing, error) {
	switch it.Source {
	case deadletter.SourceRabbitMQ:
		m, err := rebuildAMQP(it, replayID)
		return outgoing{queue: &m}, err
	case deadletter.SourceKafka:
		r, err := rebuildKafka(it, replayID)
		return outgoing{record: &r}, err
	}
	return outgoing{}, &notReplayable{fmt.Sprintf("dead letter %d: unknown source %q", it.ID, it.Source)}
}

// errNoPublisher is a replay whose broker the API was built without.
type errNoPublisher struct{ source deadletter.Source }

func (e *errNoPublisher) Error() string {
	return fmt.Sprintf("replay to %s is not configured on this server", e.source)
}

// sendResult is what became of each item of a send: nil when the broker
// confirmed it.
type sendResult []error

// send rebuilds items and publishes them to their origins, RabbitMQ and
// Kafka messages in parallel, and waits for every confirm.
func (h *Handler) send(ctx context.Context, items []deadletter.Item, replayID uuid.UUID) sendResult {
	res := make(sendResult, len(items))
	var queueIdx, kafkaIdx []int
	var queueMsgs []QueueMessage
	var records []outbox.Record
	for i, it := range items {
		out, err := rebuild(it, replayID)
		switch {
		case err != nil:
			res[i] = err
		case out.queue != nil && h.queues == nil:
			res[i] = &errNoPublisher{deadletter.SourceRabbitMQ}
		case out.record != nil && h.kafka == nil:
			res[i] = &errNoPublisher{deadletter.SourceKafka}
		case out.queue != nil:
			queueIdx, queueMsgs = append(queueIdx, i), append(queueMsgs, *out.queue)
		default:
			kafkaIdx, records = append(kafkaIdx, i), append(records, *out.record)
		}
	}
	done := make(chan []error, 1)
	if len(records) > 0 {
		go func() { done <- h.kafka.Publish(ctx, records) }()
	}
	if len(queueMsgs) > 0 {
		if errs := h.queues.PublishToQueues(ctx, queueMsgs); errs != nil {
			for j, i := range queueIdx {
				res[i] = errs[j]
			}
		}
	}
	if len(records) > 0 {
		if errs := <-done; errs != nil {
			for j, i := range kafkaIdx {
				if j < len(errs) {
					res[i] = errs[j]
				}
			}
		}
	}
	return res
}

// POST /api/v1/dead-letters/{id}/replay
func (h *Handler) replayDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r)
	if !answerInput(w, err) {
		return
	}
	it, err := h.dl.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if it.Status != deadletter.StatusPending {
		writeError(w, http.StatusConflict, fmt.Sprintf("dead letter %d is %s: %v", id, it.Status, deadletter.ErrNotPending))
		return
	}
	replayID := uuid.New()
	if err := h.send(r.Context(), []deadletter.Item{it}, replayID)[0]; err != nil {
		h.failPublish(w, r, err)
		return
	}
	markCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), markTimeout)
	defer cancel()
	updated, err := h.dl.MarkReplayed(markCtx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.recordReplay(r, replayRecord{replayID: replayID, kind: KindDeadLetter,
		filter: map[string]any{"id": id}, replayed: map[deadletter.Source]int{it.Source: 1}})
	writeJSON(w, http.StatusOK, toDetail(updated))
}

// failPublish answers a replay the broker did not take: 409 when the
// dead letter can not go back (no destination, its queue is gone), 503
// when the broker is not configured, else 502 with the broker's reason.
func (h *Handler) failPublish(w http.ResponseWriter, r *http.Request, err error) {
	var nr *notReplayable
	var np *errNoPublisher
	switch {
	case errors.As(err, &nr), errors.Is(err, ErrUnroutable):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &np):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		h.logger.WarnContext(r.Context(), "admin api replay: publish failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusBadGateway, "publish failed: "+err.Error())
	}
}

// bulkRequest is POST /dead-letters/replay's body.
type bulkRequest struct {
	Status    string `json:"status"`
	Source    string `json:"source"`
	EventType string `json:"event_type"`
	Queue     string `json:"queue"`
	Since     string `json:"since"`
	Until     string `json:"until"`
	Limit     *int   `json:"limit"`
}

type bulkResult struct {
	ReplayedCount int     `json:"replayed_count"`
	ReplayID      string  `json:"replay_id"`
	FailedCount   int     `json:"failed_count"`
	FirstError    *string `json:"first_error"`
}

func (req bulkRequest) filter() (deadletter.Filter, int, error) {
	f := deadletter.Filter{Status: deadletter.StatusPending, Source: deadletter.Source(req.Source),
		EventType: req.EventType, Origin: req.Queue}
	if req.Status != "" && req.Status != string(deadletter.StatusPending) {
		return f, 0, invalid("status: only pending dead letters can be replayed, got %q", req.Status)
	}
	if f.Source != "" && !f.Source.Valid() {
		return f, 0, invalid("source: want kafka or rabbitmq, got %q", req.Source)
	}
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"since", req.Since, &f.Since}, {"until", req.Until, &f.Until}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			return f, 0, invalid("%s: want an RFC 3339 timestamp such as 2026-01-02T15:04:05Z, got %q", t.name, t.v)
		}
		*t.dst = v
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, 0, invalid("until: before since")
	}
	if req.Limit == nil {
		return f, 0, invalid("limit: required, an integer from 1 to %d", MaxBulkReplay)
	}
	if *req.Limit < 1 || *req.Limit > MaxBulkReplay {
		return f, 0, invalid("limit: want an integer from 1 to %d, got %d", MaxBulkReplay, *req.Limit)
	}
	return f, *req.Limit, nil
}

// bulkOutcome is what a bulk replay did.
type bulkOutcome struct {
	replayed   map[deadletter.Source]int
	failed     int
	firstError error
}

func (o *bulkOutcome) fail(err error) {
	o.failed++
	if o.firstError == nil {
		o.firstError = err
	}
}

// replayItems publishes items, then marks the confirmed ones replayed;
// rows that failed (or were no longer pending when marked) stay as they
// are and count as failed.
func (h *Handler) replayItems(ctx context.Context, items []deadletter.Item, replayID uuid.UUID, o *bulkOutcome) error {
	res := h.send(ctx, items, replayID)
	ok := make([]int64, 0, len(items))
	source := make(map[int64]deadletter.Source, len(items))
	for i, err := range res {
		if err != nil {
			o.fail(fmt.Errorf("dead letter %d: %w", items[i].ID, err))
			continue
		}
		ok = append(ok, items[i].ID)
		source[items[i].ID] = items[i].Source
	}
	markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	marked, err := h.dl.MarkManyReplayed(markCtx, ok)
	if err != nil {
		return err
	}
	for _, id := range marked {
		o.replayed[source[id]]++
	}
	if n := len(ok) - len(marked); n > 0 {
		for range n {
			o.fail(errors.New("published, but no longer pending when marked (replayed or discarded meanwhile)"))
		}
	}
	return nil
}

// POST /api/v1/dead-letters/replay
func (h *Handler) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	var req bulkRequest
	if !answerInput(w, decodeJSON(r, &req)) {
		return
	}
	f, limit, err := req.filter()
	if !answerInput(w, err) {
		return
	}
	replayID := uuid.New()
	o := bulkOutcome{replayed: map[deadletter.Source]int{}}
	seen := 0
	// Marking page n overlaps reading and publishing page n+1.
	var pending chan error
	wait := func() error {
		if pending == nil {
			return nil
		}
		err := <-pending
		pending = nil
		return err
	}
	for seen < limit {
		f.Limit = min(replayPage, limit-seen)
		page, err := h.dl.List(r.Context(), f)
		if err != nil {
			err = errors.Join(err, wait())
			h.fail(w, r, err)
			return
		}
		if len(page.Items) == 0 {
			break
		}
		seen += len(page.Items)
		ids := make([]int64, len(page.Items))
		for i, it := range page.Items {
			ids[i] = it.ID
		}
		items, err := h.dl.GetMany(r.Context(), ids)
		if err != nil {
			h.fail(w, r, errors.Join(err, wait()))
			return
		}
		if err := wait(); err != nil {
			h.fail(w, r, err)
			return
		}
		pending = make(chan error, 1)
		go func(items []deadletter.Item, done chan<- error) {
			done <- h.replayItems(r.Context(), items, replayID, &o)
		}(items, pending)
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	if err := wait(); err != nil {
		h.fail(w, r, err)
		return
	}
	out := bulkResult{ReplayID: replayID.String(), FailedCount: o.failed}
	for _, n := range o.replayed {
		out.ReplayedCount += n
	}
	if o.firstError != nil {
		out.FirstError = nullString(o.firstError.Error())
	}
	h.recordReplay(r, replayRecord{replayID: replayID, kind: KindDeadLetterBulk, filter: req,
		replayed: o.replayed, failed: o.failed})
	writeJSON(w, http.StatusOK, out)
}
