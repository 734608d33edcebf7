package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/deadletter/amqpheaders"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// MaxBulkReplay bounds the limit of POST /dead-letters/replay and of the
// outbox replay.
const MaxBulkReplay = 10000

// replayPage is the most dead letters a bulk replay claims, publishes and
// marks at a time; replayPageBytes bounds the bytes of their bodies, keys
// and headers (a page holds at least one), so a bulk replay of large
// messages holds a few MiB, not MaxBulkReplay payloads.
const (
	replayPage      = 1000
	replayPageBytes = 8 << 20
)

// markTimeout bounds marking rows the broker confirmed and releasing the
// others; it runs even when the request ended, so a confirmed replay is
// not left claimed.
const markTimeout = 30 * time.Second

// bulkRetryAfter is the Retry-After of a bulk operation refused because
// MaxBulkOperations are running.
const bulkRetryAfter = "5"

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

// errForbidden is a replay destination ADMIN_REPLAY_DESTINATIONS does not
// allow.
type errForbidden struct{ kind, name string }

func (e *errForbidden) Error() string {
	return fmt.Sprintf("replay destination %s %q is not allowed by ADMIN_REPLAY_DESTINATIONS", e.kind, e.name)
}

// destination returns the kind (queue or topic) and name a dead letter is
// replayed to: its origin (DESIGN.md §6).
func destination(source deadletter.Source, origin string) (kind, name string) {
	if source == deadletter.SourceRabbitMQ {
		return "queue", origin
	}
	return "topic", origin
}

// allowed reports whether ADMIN_REPLAY_DESTINATIONS lets a replay publish
// to name.
func (h *Handler) allowed(name string) bool {
	if h.destinations == nil {
		return true
	}
	for _, p := range h.destinations {
		if p == "*" {
			return true
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// checkDestination returns an *errForbidden when it is not allowed.
func (h *Handler) checkDestination(kind, name string) error {
	if !h.allowed(name) {
		return &errForbidden{kind: kind, name: name}
	}
	return nil
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
		if err := h.checkDestination(destination(it.Source, it.Origin)); err != nil {
			res[i] = err
			continue
		}
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

// pageOutcome is what replaying one page of claimed dead letters did.
type pageOutcome struct {
	done, failed []int64
	firstError   error
	// brokerFailed: a publish failed for the broker's reason (connection
	// lost, nack, timeout), not the dead letter's own.
	brokerFailed bool
}

// ownFault reports whether a publish error is about the dead letter
// itself (no destination, refused destination, its queue gone), so
// replaying others may still work.
func ownFault(err error) bool {
	var nr *notReplayable
	var np *errNoPublisher
	var fb *errForbidden
	return errors.As(err, &nr) || errors.As(err, &np) || errors.As(err, &fb) || errors.Is(err, ErrUnroutable)
}

// replayClaimed publishes items, which the replay replayID has claimed,
// then marks the confirmed ones replayed and releases the others. The
// marking and releasing run on a context of their own, so a client that
// hangs up leaves no claim behind. It returns the database's error.
func (h *Handler) replayClaimed(ctx context.Context, items []deadletter.Item, replayID uuid.UUID, a *action) (pageOutcome, error) {
	var o pageOutcome
	if h.afterClaim != nil {
		h.afterClaim()
	}
	res := h.send(ctx, items, replayID)
	source := make(map[int64]deadletter.Source, len(items))
	var ok, bad []int64
	for i, err := range res {
		if err != nil {
			o.brokerFailed = o.brokerFailed || !ownFault(err)
			bad = append(bad, items[i].ID)
			if o.firstError == nil {
				o.firstError = fmt.Errorf("dead letter %d: %w", items[i].ID, err)
			}
			continue
		}
		ok = append(ok, items[i].ID)
		source[items[i].ID] = items[i].Source
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	marked, err := h.dl.FinishReplay(mctx, ok, replayID)
	for _, id := range marked {
		a.replayed[source[id]]++
	}
	// A published row whose claim was released meanwhile (a stale claim) is
	// counted done: the broker has it.
	a.done += len(ok)
	a.failed += len(bad)
	o.done, o.failed = ok, bad
	if o.firstError != nil {
		a.fail(o.firstError.Error())
	}
	_, rerr := h.dl.Release(mctx, bad, replayID)
	if err != nil || rerr != nil {
		// The rows stay claimed until the claim timeout releases them.
		return o, errors.Join(err, rerr)
	}
	return o, nil
}

// POST /api/v1/dead-letters/{id}/replay
func (h *Handler) replayDeadLetter(w http.ResponseWriter, r *http.Request) {
	a := actionOf(r)
	a.target = map[string]any{"id": chi.URLParam(r, "id")}
	id, err := parseID(r)
	if !answerInput(w, err) {
		return
	}
	a.target = map[string]any{"id": id}
	h.releaseStale(r)
	replayID := uuid.New()
	it, err := h.dl.Claim(r.Context(), id, replayID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	a.replayID, a.matched = replayID, 1
	o, err := h.replayClaimed(r.Context(), []deadletter.Item{it}, replayID, a)
	if o.firstError != nil {
		h.failPublish(w, r, o.firstError)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), markTimeout)
	defer cancel()
	updated, err := h.dl.Get(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDetail(updated))
}

// releaseStale releases stale claims before a replay claims, so a crash's
// leftovers are replayable without waiting for Run.
func (h *Handler) releaseStale(r *http.Request) {
	if _, err := h.ReleaseStaleClaims(r.Context()); err != nil {
		h.logger.WarnContext(r.Context(), "admin api: releasing stale claims failed", "error", err)
	}
}

// failPublish answers a replay the broker did not take: 403 for a
// destination ADMIN_REPLAY_DESTINATIONS refuses, 409 when the dead letter
// can not go back (no destination, its queue is gone), 503 when the broker
// is not configured, else 502 with the broker's reason.
func (h *Handler) failPublish(w http.ResponseWriter, r *http.Request, err error) {
	var nr *notReplayable
	var np *errNoPublisher
	var fb *errForbidden
	switch {
	case errors.As(err, &fb):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.As(err, &nr), errors.Is(err, ErrUnroutable):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &np):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		h.logger.WarnContext(r.Context(), "admin api replay: publish failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusBadGateway, "publish failed: "+err.Error())
	}
}

// bulkRequest is the body of POST /dead-letters/replay and (with reason)
// POST /dead-letters/discard.
type bulkRequest struct {
	Status    string  `json:"status"`
	Source    string  `json:"source"`
	EventType string  `json:"event_type"`
	Queue     string  `json:"queue"`
	Since     string  `json:"since"`
	Until     string  `json:"until"`
	Limit     *int    `json:"limit"`
	DryRun    bool    `json:"dry_run"`
	Reason    *string `json:"reason,omitempty"`
}

type bulkResult struct {
	ReplayedCount int     `json:"replayed_count"`
	ReplayID      string  `json:"replay_id"`
	FailedCount   int     `json:"failed_count"`
	FirstError    *string `json:"first_error"`
}

type dryRunResult struct {
	MatchedCount int  `json:"matched_count"`
	DryRun       bool `json:"dry_run"`
}

func (req bulkRequest) filter(verb string) (deadletter.Filter, int, error) {
	f := deadletter.Filter{Status: deadletter.StatusPending, Source: deadletter.Source(req.Source),
		EventType: req.EventType, Origin: req.Queue}
	if req.Status != "" && req.Status != string(deadletter.StatusPending) {
		return f, 0, invalid("status: only pending dead letters can be %s, got %q", verb, deadletter.CleanText(req.Status, 64))
	}
	if f.Source != "" && !f.Source.Valid() {
		return f, 0, invalid("source: want kafka or rabbitmq, got %q", deadletter.CleanText(req.Source, 64))
	}
	for _, t := range []struct{ name, v string }{{"event_type", req.EventType}, {"queue", req.Queue}} {
		if !deadletter.ValidText(t.v) {
			return f, 0, invalid("%s: holds a NUL byte or invalid UTF-8", t.name)
		}
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
			return f, 0, invalid("%s: want an RFC 3339 timestamp such as 2026-01-02T15:04:05Z, got %q", t.name, deadletter.CleanText(t.v, 64))
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

// acquireBulk takes one of the MaxBulkOperations slots, or answers 429
// and returns false.
func (h *Handler) acquireBulk(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case h.bulk <- struct{}{}:
		return func() { <-h.bulk }, true
	default:
		w.Header().Set("Retry-After", bulkRetryAfter)
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d bulk operations are running; retry later", cap(h.bulk)))
		return nil, false
	}
}

// checkDestinations answers 403 when a dead letter f matches would go to
// a destination ADMIN_REPLAY_DESTINATIONS does not allow; ok is false when
// it answered.
func (h *Handler) checkDestinations(w http.ResponseWriter, r *http.Request, f deadletter.Filter) (ok bool) {
	if h.destinations == nil {
		return true
	}
	dests, err := h.dl.Destinations(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return false
	}
	for _, d := range dests {
		if err := h.checkDestination(destination(deadletter.Source(d[0]), d[1])); err != nil {
			writeError(w, http.StatusForbidden, err.Error()+"; nothing was replayed")
			return false
		}
	}
	return true
}

// POST /api/v1/dead-letters/replay: claims, publishes and marks the
// matching dead letters page by page; a page in which the broker failed a
// publish (connection lost, nack) ends the replay, and the rest stays
// pending.
func (h *Handler) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	a := actionOf(r)
	var req bulkRequest
	if !answerInput(w, decodeJSON(r, &req)) {
		return
	}
	a.target, a.dryRun = req, req.DryRun
	if req.Reason != nil {
		writeError(w, http.StatusBadRequest, "reason: only for a discard")
		return
	}
	f, limit, err := req.filter("replayed")
	if !answerInput(w, err) {
		return
	}
	if req.DryRun {
		h.dryRun(w, r, f, limit)
		return
	}
	if !h.checkDestinations(w, r, f) {
		return
	}
	release, ok := h.acquireBulk(w)
	if !ok {
		return
	}
	defer release()
	h.releaseStale(r)
	replayID := uuid.New()
	a.replayID = replayID
	out := bulkResult{ReplayID: replayID.String()}
	// Claiming page n+1 overlaps publishing and marking page n; the
	// previous page's outcome decides whether the new one is published
	// or released.
	type pageDone struct {
		o   pageOutcome
		err error
	}
	var (
		firstError error
		inflight   chan pageDone
		claimed    int
		dbErr      error
	)
	wait := func() (stop bool) {
		if inflight == nil {
			return false
		}
		d := <-inflight
		inflight = nil
		if firstError == nil {
			firstError = d.o.firstError
		}
		if d.err != nil {
			dbErr = d.err
		}
		return d.err != nil || d.o.brokerFailed // the broker is failing: leave the rest pending
	}
	for claimed < limit && r.Context().Err() == nil {
		items, cursor, err := h.dl.ClaimPage(r.Context(), f, replayID, min(replayPage, limit-claimed), replayPageBytes)
		if wait() {
			h.releaseUnpublished(r, items, replayID)
			break
		}
		if err != nil {
			if r.Context().Err() == nil {
				dbErr = err
			}
			break
		}
		if len(items) == 0 {
			break
		}
		claimed += len(items)
		a.matched += len(items)
		inflight = make(chan pageDone, 1)
		go func(items []deadletter.Item, done chan<- pageDone) {
			o, err := h.replayClaimed(r.Context(), items, replayID, a)
			done <- pageDone{o, err}
		}(items, inflight)
		f.Cursor = cursor
	}
	wait()
	if dbErr != nil {
		h.fail(w, r, dbErr)
		return
	}
	out.ReplayedCount, out.FailedCount = a.done, a.failed
	if firstError != nil {
		out.FirstError = nullString(firstError.Error())
	}
	writeJSON(w, http.StatusOK, out)
}

// releaseUnpublished releases a claimed page the replay will not publish.
func (h *Handler) releaseUnpublished(r *http.Request, items []deadletter.Item, replayID uuid.UUID) {
	if len(items) == 0 {
		return
	}
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), markTimeout)
	defer cancel()
	if _, err := h.dl.Release(ctx, ids, replayID); err != nil {
		h.logger.WarnContext(ctx, "admin api: releasing an unpublished page failed; the claim timeout will",
			"count", len(ids), "error", err)
	}
}

// dryRun answers what a bulk operation would take, changing nothing.
func (h *Handler) dryRun(w http.ResponseWriter, r *http.Request, f deadletter.Filter, limit int) {
	a := actionOf(r)
	n, err := h.dl.CountPending(r.Context(), f, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	a.matched = n
	writeJSON(w, http.StatusOK, dryRunResult{MatchedCount: n, DryRun: true})
}
