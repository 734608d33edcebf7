package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// publisher publishes on one AMQP channel in confirm mode.
type publisher interface {
	// Publish sends msg, mandatory, and returns the wait for its confirm.
	// An error means the channel is unusable.
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirmation, error)
	// Returned drains the messages returned since the last call. Every
	// return of a message precedes its confirm.
	Returned() []amqp.Return
}

// confirmation waits for one publisher confirm: true for an ack, false for
// a nack, an error when the channel closed or ctx ended first.
type confirmation func(ctx context.Context) (bool, error)

// deadLetterSender writes dead letters; sarama.SyncProducer satisfies it.
type deadLetterSender interface {
	SendMessage(msg *sarama.ProducerMessage) (partition int32, offset int64, err error)
}

// outcome is what became of a record in a batch.
type outcome uint8

const (
	pending    outcome = iota
	duplicate          // skipped: its key was bridged before
	published          // confirmed by RabbitMQ
	nacked             // nacked; retried or dead-lettered
	dropped            // returned and dropped (UnroutableDrop)
	deadLetter         // to be dead-lettered
	done               // dead-lettered
)

// record is one Kafka record of a batch.
type record struct {
	msg           *sarama.ConsumerMessage
	env           contracts.Envelope
	key           uuid.UUID
	replayID      string
	aggregateType string
	routingKey    string
	outcome       outcome
	stage         contracts.Stage
	err           error
	attempts      int
}

// pauser stops and restarts fetching partitions; sarama.ConsumerGroup
// satisfies it.
type pauser interface {
	Pause(partitions map[string][]int32)
	Resume(partitions map[string][]int32)
}

// partition processes the batches of one claimed partition, in order.
type partition struct {
	b   *Bridge
	pub publisher
	dlq deadLetterSender
	log *slog.Logger
	// open opens a new publisher after the channel failed (nil: the
	// partition cannot reconnect and stops the batch, as in unit tests).
	open func() (publisher, error)
	// pause, when set, stops fetching topic/part while the breaker is open.
	pause pauser
	topic string
	part  int32
	// recs is the records buffer of process, kept between batches.
	recs []record
	// headers is the header table of every publish, filled anew each time.
	headers amqp.Table
}

// process handles one batch and returns how many of its leading records are
// resolved: confirmed and recorded, skipped as duplicates, or acknowledged
// by the DLQ topic. Only their offsets may be marked. Fewer than len(batch)
// come back when stop ends a retry or a reconnection.
func (p *partition) process(stop context.Context, batch []*sarama.ConsumerMessage) int {
	recs := p.classify(batch)
	if !p.lookUp(stop, recs, nil) {
		return 0
	}
	p.deliver(stop, recs)
	n, keys := resolvedPrefix(recs)
	if !p.record(stop, keys) {
		return 0
	}
	return n
}

// classify classifies every record of batch into the partition's record
// buffer, which it returns.
func (p *partition) classify(batch []*sarama.ConsumerMessage) []record {
	m := p.b.metrics
	m.batchSize.Observe(float64(len(batch)))
	// A batch is one claim's: one topic.
	m.consumed.WithLabelValues(batch[0].Topic).Add(float64(len(batch)))
	if cap(p.recs) < len(batch) {
		p.recs = make([]record, len(batch))
	}
	recs := p.recs[:len(batch)]
	for i, msg := range batch {
		recs[i] = p.b.classify(msg) // every field, nothing of the last batch stays
	}
	return recs
}

// lookUp first records done, the keys of the previous batch's confirmed
// records, then looks recs' keys up and marks the duplicates: one round
// trip when the store can do both at once. A key repeated within recs is a
// duplicate after its first occurrence. It reports false when stop ended a
// retry first; then neither done nor recs may be taken as handled.
func (p *partition) lookUp(stop context.Context, recs []record, done []uuid.UUID) bool {
	cfg, m := &p.b.cfg, p.b.metrics
	var keys []uuid.UUID
	var idx []int
	for i := range recs {
		if recs[i].outcome == pending {
			keys, idx = append(keys, recs[i].key), append(idx, i)
		}
	}
	what := "look up dedup keys"
	if len(done) > 0 {
		what = "record and look up dedup keys"
	}
	var seen []bool
	if err := p.retry(stop, what, p.b.breaker, func(ctx context.Context) (err error) {
		seen, err = recordAndLookUp(ctx, cfg.Store, cfg.Group, done, keys)
		return err
	}); err != nil {
		return false
	}
	first := make(map[uuid.UUID]struct{}, len(keys))
	for j, i := range idx {
		if _, again := first[keys[j]]; seen[j] || again {
			recs[i].outcome = duplicate
			m.duplicates.Inc()
			msg := recs[i].msg
			p.log.Debug("skipped duplicate", "topic", msg.Topic, "partition", msg.Partition,
				"offset", msg.Offset, "event_id", recs[i].env.EventID, "replay_id", recs[i].replayID)
			continue
		}
		first[keys[j]] = struct{}{}
	}
	return true
}

// deliver publishes recs' new records, pipelined, retries the nacked ones
// and dead-letters the poison, nacked-out and (per policy) returned ones,
// in Kafka order. It reports false when stop ended a wait, a retry or a
// reconnection first: then only a prefix of recs may be resolved.
func (p *partition) deliver(stop context.Context, recs []record) bool {
	cfg := &p.b.cfg
	if !p.waitRate(stop, recs) {
		return false
	}

	// Publish every new record, pipelined; retry the nacked ones, in order.
	// A failed channel is reopened and the round's unconfirmed records are
	// published again, in Kafka order.
	for attempt := 1; ; attempt++ {
		for reconnect := 1; ; reconnect++ {
			err := p.publishRound(recs, attempt)
			if err == nil {
				break
			}
			p.log.Warn("RabbitMQ channel failed; reconnecting", "attempt", reconnect, "err", err)
			if !p.reopen(stop) {
				return false
			}
		}
		var retry []int64
		for i := range recs {
			if recs[i].outcome != nacked {
				continue
			}
			if attempt >= cfg.NackAttempts {
				recs[i].outcome, recs[i].stage = deadLetter, contracts.StageAMQPNack
				recs[i].err = &NackError{Exchange: cfg.Exchange, RoutingKey: recs[i].routingKey, Attempts: attempt}
				continue
			}
			retry = append(retry, recs[i].msg.Offset)
		}
		if len(retry) == 0 {
			break
		}
		p.log.Warn("RabbitMQ nacked publishes; retrying", "topic", recs[0].msg.Topic, "partition", recs[0].msg.Partition,
			"offsets", retry, "attempt", attempt)
		if !sleep(stop, backoff(cfg.Backoff, attempt)) {
			return false
		}
	}

	// Dead letters, in Kafka order; each blocks the partition until Kafka
	// acknowledged it.
	for i := range recs {
		if recs[i].outcome != deadLetter {
			continue
		}
		if err := p.deadLetter(stop, &recs[i]); err != nil {
			return false
		}
	}
	return true
}

// resolvedPrefix returns how many leading records of recs are resolved and
// the keys of the confirmed ones among them, which must be recorded before
// their offsets are marked.
func resolvedPrefix(recs []record) (int, []uuid.UUID) {
	n := 0
	var keys []uuid.UUID
	for ; n < len(recs); n++ {
		switch recs[n].outcome {
		case duplicate, dropped, done:
			continue
		case published:
			keys = append(keys, recs[n].key)
			continue
		}
		break
	}
	return n, keys
}

// record records keys in the dedup store; it reports false when stop ended
// a retry first.
func (p *partition) record(stop context.Context, keys []uuid.UUID) bool {
	return p.retry(stop, "record dedup keys", p.b.breaker, func(ctx context.Context) error {
		return p.b.cfg.Store.Record(ctx, p.b.cfg.Group, keys)
	}) == nil
}

// publishRound publishes the pending (first attempt) or nacked records, waits
// for all their confirms and sorts out the returns.
func (p *partition) publishRound(recs []record, attempt int) error {
	cfg, m := &p.b.cfg, p.b.metrics
	want := pending
	if attempt > 1 {
		want = nacked
	}
	ctx := context.Background()
	start := time.Now()
	waits := make([]confirmation, 0, len(recs))
	idx := make([]int, 0, len(recs))
	// spans[j] is the span of recs[started[j]]'s publish in this round,
	// ended with its outcome when the round is over; the first settled of
	// them were acked or nacked (confirms are taken in publish order).
	started := make([]int, 0, len(recs))
	spans := make([]trace.Span, 0, len(recs))
	settled := 0
	var failed error // the channel failed: the unconfirmed records keep want
	defer func() {
		for j, span := range spans {
			r := &recs[started[j]]
			var err error
			switch {
			case j >= settled:
				err = failed
			case r.outcome == nacked:
				err = &NackError{Exchange: cfg.Exchange, RoutingKey: r.routingKey, Attempts: r.attempts}
			case r.outcome == deadLetter:
				err = r.err
			}
			endSpan(span, err)
		}
	}()
	for i := range recs {
		r := &recs[i]
		if r.outcome != want {
			continue
		}
		sctx, span := p.b.startSpan(r)
		started, spans = append(started, i), append(spans, span)
		if p.headers == nil {
			p.headers = make(amqp.Table, 8)
		}
		c, err := p.pub.Publish(ctx, cfg.Exchange, r.routingKey, p.b.publishing(sctx, r, p.headers))
		if err != nil {
			failed = fmt.Errorf("bridge: publish %s (%s/%d@%d): %w", r.env.EventID, r.msg.Topic, r.msg.Partition, r.msg.Offset, err)
			break
		}
		r.attempts++
		waits, idx = append(waits, c), append(idx, i)
	}
	if len(waits) == 0 {
		return failed
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.OperationTimeout)
	defer cancel()
	for j, wait := range waits {
		ack, err := wait(wctx)
		if err != nil {
			r := &recs[idx[j]]
			failed = fmt.Errorf("bridge: confirm of %s (%s/%d@%d): %w", r.env.EventID, r.msg.Topic, r.msg.Partition, r.msg.Offset, err)
			// Later confirms are lost with the channel; those records are
			// published again (they may arrive twice).
			for _, i := range idx[j:] {
				recs[i].attempts--
			}
			idx = idx[:j]
			break
		}
		settled++
		if ack {
			recs[idx[j]].outcome = published
		} else {
			recs[idx[j]].outcome = nacked
		}
	}
	now := time.Now()
	m.latency.Observe(now.Sub(start).Seconds())
	// A basic.return precedes its ack, so every return is in by now.
	if returned := p.pub.Returned(); len(returned) > 0 {
		byOffset := make(map[int64]int, len(idx))
		for _, i := range idx {
			byOffset[recs[i].msg.Offset] = i
		}
		for _, ret := range returned {
			off, ok := ret.Headers[contracts.AMQPHeaderKafkaOffset].(int64)
			i, found := byOffset[off]
			if !ok || !found {
				continue // not this round's
			}
			r := &recs[i]
			if cfg.Unroutable == UnroutableDLQ {
				r.outcome, r.stage = deadLetter, contracts.StageAMQPUnroutable
				r.err = &UnroutableError{Exchange: ret.Exchange, RoutingKey: ret.RoutingKey, ReplyCode: ret.ReplyCode, ReplyText: ret.ReplyText}
				continue
			}
			r.outcome = dropped
			m.unroutable.WithLabelValues(p.b.unroutableKeys.value(ret.RoutingKey)).Inc()
			if p.b.shouldLogUnroutable(ret.RoutingKey, now) {
				p.log.Warn("dropped unroutable message (logged once a minute per routing key)", "routing_key", ret.RoutingKey,
					"topic", r.msg.Topic, "partition", r.msg.Partition, "offset", r.msg.Offset, "event_id", r.env.EventID)
			}
		}
	}
	confirmed := 0
	for _, i := range idx {
		if r := &recs[i]; r.outcome == published {
			confirmed++
			m.lag.Observe(now.Sub(r.env.OccurredAt).Seconds())
		}
	}
	m.published.Add(float64(confirmed))
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.traceRound(recs, started, idx, attempt, failed)
	}
	return failed
}

// traceRound logs, at debug level, one line per publish round: the Kafka
// offsets published in it, in publish order, with what became of each.
func (p *partition) traceRound(recs []record, started, settled []int, attempt int, failed error) {
	offsets := make([]int64, len(started))
	outcomes := make([]byte, len(started))
	for j, i := range started {
		offsets[j] = recs[i].msg.Offset
		outcomes[j] = "?sPnxdD"[recs[i].outcome] // pending, skipped, Published, nacked, x: dropped, to dead-letter, Dead-lettered
		if j >= len(settled) {
			outcomes[j] = '-' // its confirm was lost: published again
		}
	}
	p.log.Debug("publish round", "attempt", attempt, "offsets", offsets, "outcomes", string(outcomes), "err", failed)
}

// deadLetter writes r to its DLQ topic, retrying with backoff until Kafka
// acknowledges it; it fails only when stop ends first.
func (p *partition) deadLetter(stop context.Context, r *record) error {
	cfg, msg := &p.b.cfg, r.msg
	dl := contracts.DeadLetter{
		Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
		Stage: r.stage, ClassName: className, Err: r.err,
	}
	// A replayed dead letter carries its previous death's headers: drop them.
	headers := make([]sarama.RecordHeader, 0, len(msg.Headers)+9)
	for _, h := range msg.Headers {
		if h != nil && !strings.HasPrefix(string(h.Key), contracts.DLQHeaderPrefix) {
			headers = append(headers, *h)
		}
	}
	for _, kv := range dl.Headers() {
		headers = append(headers, sarama.RecordHeader{Key: []byte(kv[0]), Value: []byte(kv[1])})
	}
	pm := &sarama.ProducerMessage{
		Topic:     contracts.DeadLetterTopic(cfg.DLQTopic, msg.Topic),
		Headers:   headers,
		Timestamp: msg.Timestamp,
	}
	if msg.Key != nil {
		pm.Key = sarama.ByteEncoder(msg.Key)
	}
	if msg.Value != nil {
		pm.Value = sarama.ByteEncoder(msg.Value)
	}
	log := p.log.With("topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "stage", r.stage, "dlq", pm.Topic)
	if r.env.EventID != uuid.Nil {
		log = log.With("event_id", r.env.EventID)
	}
	err := p.retry(stop, "write dead letter", nil, func(context.Context) error {
		_, _, err := p.dlq.SendMessage(pm)
		return err
	})
	if err != nil {
		return err
	}
	r.outcome = done
	p.b.metrics.deadLettered.WithLabelValues(string(r.stage)).Inc()
	log.Warn("dead-lettered record", "err", r.err)
	return nil
}

// errStopped reports that a retry loop gave up because its stop context ended.
var errStopped = errors.New("bridge: stopped while retrying")

// retry runs op until it succeeds, waiting with backoff between attempts;
// it returns errStopped when stop ends first. Each attempt gets
// OperationTimeout, and is not cut short by stop: an in-flight batch
// finishes its round trip on a graceful stop.
//
// With a breaker, op runs through it; while the breaker rejects calls the
// partition's fetching is paused and the next attempt waits for the
// breaker's timeout. Fetching resumes when op succeeds (the breaker closed)
// or retry returns.
func (p *partition) retry(stop context.Context, what string, cb *gobreaker.CircuitBreaker[struct{}], op func(ctx context.Context) error) error {
	paused := false
	defer func() {
		if paused {
			p.pause.Resume(map[string][]int32{p.topic: {p.part}})
			p.log.Info("resumed fetching")
		}
	}()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), p.b.cfg.OperationTimeout)
		var err error
		if cb != nil {
			_, err = cb.Execute(func() (struct{}, error) { return struct{}{}, op(ctx) })
		} else {
			err = op(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		wait := backoff(p.b.cfg.Backoff, attempt)
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			wait = p.b.cfg.BreakerTimeout
			if !paused && p.pause != nil {
				p.pause.Pause(map[string][]int32{p.topic: {p.part}})
				paused = true
				p.log.Warn("circuit breaker open: paused fetching", "what", what, "wait", wait)
			}
		} else {
			p.log.Warn("retrying: "+what, "attempt", attempt, "wait", wait, "err", err)
		}
		if !sleep(stop, wait) {
			return errStopped
		}
	}
}

// reopen replaces the failed publisher, retrying with backoff (doubling,
// capped at DefaultMaxBackoff); it reports false when stop ended first or
// the partition cannot reconnect.
func (p *partition) reopen(stop context.Context) bool {
	if c, ok := p.pub.(interface{ close() }); ok {
		c.close()
	}
	if p.open == nil {
		return false
	}
	for attempt := 1; ; attempt++ {
		pub, err := p.open()
		if err == nil {
			p.pub = pub
			return true
		}
		wait := backoff(p.b.cfg.Backoff, attempt)
		p.log.Warn("cannot open an AMQP channel; retrying", "attempt", attempt, "wait", wait, "err", err)
		if !sleep(stop, wait) {
			return false
		}
	}
}

// waitRate waits until the rate limiter lets recs' new records be
// published; it reports false when stop ended first.
func (p *partition) waitRate(stop context.Context, recs []record) bool {
	lim := p.b.limiter
	if lim == nil {
		return true
	}
	n := 0
	for i := range recs {
		if recs[i].outcome == pending {
			n++
		}
	}
	for n > 0 {
		k := min(n, lim.Burst())
		if err := lim.WaitN(stop, k); err != nil {
			return false
		}
		n -= k
	}
	return true
}

// backoff returns the wait before retry number attempt (1-based): first,
// doubled each time, capped at DefaultMaxBackoff.
func backoff(first time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < DefaultMaxBackoff; i++ {
		d *= 2
	}
	return min(d, DefaultMaxBackoff)
}

// sleep waits d or until ctx ends; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drain takes from msgs what has already arrived, up to max records in
// batch. It reports false when msgs is closed (the claim was revoked).
func drain(msgs <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage, max int) ([]*sarama.ConsumerMessage, bool) {
	for len(batch) < max {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, false
			}
			batch = append(batch, m)
		default:
			return batch, true
		}
	}
	return batch, true
}

// collect fills batch from msgs: it waits for a first record (or stop),
// then takes more until max records, the wait is over or nothing is
// fetched (wait zero). It reports false when msgs is closed (the claim was
// revoked).
func collect(stop context.Context, msgs <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage, max int, wait time.Duration) ([]*sarama.ConsumerMessage, bool) {
	select {
	case <-stop.Done():
		return batch, true
	case m, ok := <-msgs:
		if !ok {
			return batch, false
		}
		batch = append(batch, m)
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < max {
		if timeout == nil {
			select {
			case m, ok := <-msgs:
				if !ok {
					return batch, false
				}
				batch = append(batch, m)
				continue
			default:
				return batch, true
			}
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, false
			}
			batch = append(batch, m)
		case <-timeout:
			return batch, true
		case <-stop.Done():
			return batch, true
		}
	}
	return batch, true
}
