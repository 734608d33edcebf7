package dedup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Defaults of [Retry].
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
)

// Retry bounds the in-process retries of a transient failure. The zero
// value means the defaults: 5 attempts, waiting 100 ms, 200 ms, 400 ms and
// 800 ms between them. A [Processor] waiting for a store that cannot begin
// transactions uses the same doubling waits, without a bound on attempts.
type Retry struct {
	// MaxAttempts is the number of attempts, the first included, before a
	// message whose handler keeps failing is dead-lettered. Zero or less
	// means [DefaultMaxAttempts]; 1 means no retry.
	MaxAttempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// further one. Zero or less means [DefaultBackoff].
	Backoff time.Duration
	// MaxBackoff caps the wait. Zero or less means [DefaultMaxBackoff].
	MaxBackoff time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.Backoff <= 0 {
		r.Backoff = DefaultBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	r.Backoff = min(r.Backoff, r.MaxBackoff)
	return r
}

// ProcessorConfig configures a [Processor]. Store, Consumer and Handler are
// required; every other zero value means the documented default.
type ProcessorConfig struct {
	// Store keeps the claims, usually [NewPostgres] on a pool.
	Store Store
	// Consumer is the consumer name claims are made under
	// (processed_messages.consumer_name): one per logical consumer, shared
	// by its replicas.
	Consumer string
	// Handler handles each new event inside the dedup transaction, usually
	// a [*Router].
	Handler Handler
	// RequireID dead-letters a message without a transport id (an empty
	// [Message.ID]), as AMQP consumers do: there the message_id is the
	// dedup key. When false, the envelope's eventId is used.
	RequireID bool
	// Decoder decodes bodies; the zero value has the contract's limits.
	Decoder contracts.Decoder
	// Retry bounds retries of transient handler failures.
	Retry Retry
	// Logger receives retries and store outages; nil discards them.
	Logger *slog.Logger
	// Metrics registers the messagekit_consumer_* metrics, labelled with
	// the consumer name; nil means no metrics.
	Metrics prometheus.Registerer
}

// Message is one message as a broker consumer received it.
type Message struct {
	// ID is the event id carried by the transport (AMQP message_id, Kafka
	// header id), or "" when the message has none. When set it must be a
	// UUID equal to the envelope's eventId: a message whose two ids
	// disagree is dead-lettered rather than deduplicated on either.
	ID string
	// Body is the envelope JSON.
	Body []byte
	// Transport is the broker's own message (amqpconsumer passes the
	// *amqp091.Delivery, kafkaconsumer the *sarama.ConsumerMessage), or
	// nil. A [Handler] reads it with [TransportFrom], e.g. for a header;
	// a [BatchHandler]'s HandleEvents, which handles several at once, does
	// not get it.
	Transport any
}

type transportKey struct{}

// TransportFrom returns the broker's message of the event a [Handler] is
// handling, as the consumer put it in [Message.Transport]; false when
// there is none.
func TransportFrom(ctx context.Context) (any, bool) {
	t := ctx.Value(transportKey{})
	return t, t != nil
}

// withTransport is ctx carrying m's transport message for the handler.
func withTransport(ctx context.Context, m Message) context.Context {
	if m.Transport == nil {
		return ctx
	}
	return context.WithValue(ctx, transportKey{}, m.Transport)
}

// Outcome is what a [Processor] did with one [Message].
type Outcome struct {
	// Result is [Handled], [Duplicate] or [DeadLetter].
	Result Result
	// EventID and EventType come from the envelope; zero when the body did
	// not decode.
	EventID   uuid.UUID
	EventType string
	// Attempts counts the transactions tried for this message: 1 when the
	// first one (alone or in a batch) committed or found a duplicate.
	Attempts int
	// Err says why the message is to be dead-lettered; nil otherwise.
	Err error
	// Stage is the dead-letter stage of Err: [contracts.StageDecode],
	// [contracts.StageValidate], [contracts.StageRecordTooLarge] for
	// messages that are not valid envelopes (or whose transport id is
	// missing or disagrees), [contracts.StageTaskPut] for handler failures.
	Stage contracts.Stage
}

// Processor is the broker-independent core of an idempotent consumer: it
// decodes messages, deduplicates them by event id and runs the handler in
// the dedup transaction, retrying transient failures, and tells its caller
// which messages to acknowledge and which to dead-letter. The packages
// amqpconsumer and kafkaconsumer drive it; a consumer for another broker
// can too.
//
// A Processor is safe for concurrent use, but a caller that needs ordering
// (per queue or per partition) processes one batch at a time.
type Processor struct {
	store    Store
	consumer string
	handler  Handler
	reqID    bool
	decoder  contracts.Decoder
	retry    Retry
	log      *slog.Logger
	m        *metrics
}

// NewProcessor validates cfg and returns a Processor. It fails when a
// required field is missing or the metrics cannot be registered.
func NewProcessor(cfg ProcessorConfig) (*Processor, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("dedup: ProcessorConfig.Store is required")
	case cfg.Consumer == "":
		return nil, errors.New("dedup: ProcessorConfig.Consumer is required")
	case cfg.Handler == nil:
		return nil, errors.New("dedup: ProcessorConfig.Handler is required")
	}
	m, err := newMetrics(cfg.Metrics, cfg.Consumer)
	if err != nil {
		return nil, fmt.Errorf("dedup: register metrics of %s: %w", cfg.Consumer, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Processor{
		store: cfg.Store, consumer: cfg.Consumer, handler: cfg.Handler, reqID: cfg.RequireID,
		decoder: cfg.Decoder, retry: cfg.Retry.withDefaults(), log: log.With("consumer", cfg.Consumer), m: m,
	}, nil
}

// Process handles msgs in order and returns one [Outcome] per message.
//
// Messages that do not decode, fail validation or carry a bad transport id
// are dead-lettered at once. The others are handled in one transaction:
// their ids are claimed with one [Store.ClaimBatch] and the handler runs
// for each new one (in one call if it is a [BatchHandler]). If a handler
// or the commit fails, that transaction rolls back and the messages are
// handled again one by one as [Handle] does, each in its own transaction,
// retrying transient failures per Retry and dead-lettering the message
// when its error is permanent or the attempts run out. So a handler may run more than once for an event, but its
// transaction commits at most once. A failure to begin a transaction (the
// store is down) is not the message's fault: Process waits and tries
// again, without counting an attempt, until the store answers.
//
// Cancelling ctx stops Process between messages and during waits, never
// inside a transaction: a transaction that has begun is finished. Process
// then returns the outcomes of the messages done so far, a prefix of msgs,
// with ctx's error; the caller must leave the rest unacknowledged.
// Otherwise the error is nil.
func (p *Processor) Process(ctx context.Context, msgs []Message) ([]Outcome, error) {
	out := make([]Outcome, len(msgs))
	envs := make([]contracts.Envelope, len(msgs))
	valid := make([]int, 0, len(msgs))
	for i, m := range msgs {
		env, err := p.decode(m)
		out[i] = Outcome{EventID: env.EventID, EventType: env.EventType}
		if err != nil {
			out[i] = p.reject(out[i], err)
			continue
		}
		envs[i] = env
		valid = append(valid, i)
	}
	p.m.batchSize.Observe(float64(len(msgs)))
	if len(valid) > 1 && p.batch(ctx, msgs, envs, valid, out) {
		return out, nil
	}
	for _, i := range valid {
		if ctx.Err() != nil {
			return out[:i], ctx.Err()
		}
		o, ok := p.one(ctx, msgs[i], envs[i], out[i])
		if !ok {
			return out[:i], ctx.Err()
		}
		out[i] = o
	}
	return out, nil
}

// decode decodes m's body and checks its transport id against it.
func (p *Processor) decode(m Message) (contracts.Envelope, error) {
	env, err := p.decoder.Decode(m.Body)
	if err != nil {
		return env, err
	}
	if m.ID == "" {
		if p.reqID {
			return env, &contracts.ValidationError{Field: "eventId",
				Reason: "the message carries no message id, which is the dedup key"}
		}
		return env, nil
	}
	id, err := uuid.Parse(m.ID)
	if err != nil || len(m.ID) != 36 {
		return env, &contracts.ValidationError{Field: "eventId",
			Reason: fmt.Sprintf("message id %s is not a UUID", quote(m.ID)), Err: err}
	}
	if id != env.EventID {
		return env, &contracts.ValidationError{Field: "eventId",
			Reason: fmt.Sprintf("message id %s differs from the envelope's eventId %s", id, env.EventID)}
	}
	return env, nil
}

// batch handles the valid messages in one transaction and reports whether
// it committed; on false nothing is recorded and out is unchanged.
func (p *Processor) batch(ctx context.Context, msgs []Message, envs []contracts.Envelope, valid []int, out []Outcome) bool {
	tx, err := p.store.Begin(ctx)
	if err != nil {
		return false // the one-by-one path waits for the store
	}
	dctx := context.WithoutCancel(ctx) // finish what has begun
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback(dctx) // a handler panicked
		}
	}()
	ids := make([]uuid.UUID, len(valid))
	for k, i := range valid {
		ids[k] = envs[i].EventID
	}
	claimed, err := p.store.ClaimBatch(dctx, tx, p.consumer, ids)
	if err != nil {
		done = true
		_ = rollback(dctx, tx)
		p.log.Debug("batch claim failed; handling one by one", "batch", len(valid), "err", err)
		return false
	}
	if err := p.callBatch(dctx, tx, msgs, envs, valid, claimed); err != nil {
		done = true
		_ = rollback(dctx, tx)
		p.log.Debug("handler failed in batch; handling one by one", "batch", len(valid), "err", err)
		return false
	}
	done = true
	if err := tx.Commit(dctx); err != nil {
		p.log.Debug("batch commit failed; handling one by one", "batch", len(valid), "err", err)
		return false
	}
	now := time.Now()
	for k, i := range valid {
		out[i].Attempts = 1
		if claimed[k] {
			out[i].Result = Handled
			p.handled(envs[i], now)
		} else {
			out[i].Result = Duplicate
			p.m.duplicates.Inc()
		}
	}
	return true
}

// one handles one message in its own transaction, retrying; ok is false
// when ctx ended before it was done.
func (p *Processor) one(ctx context.Context, m Message, env contracts.Envelope, o Outcome) (_ Outcome, ok bool) {
	wait, storeWait := p.retry.Backoff, p.retry.Backoff
	fn := func(ctx context.Context, tx pgx.Tx) error { return p.call(withTransport(ctx, m), tx, env) }
	for {
		res, err := handle(ctx, context.WithoutCancel(ctx), p.store, p.consumer, env.EventID, fn)
		var be *beginError
		switch {
		case err == nil:
			o.Attempts++
			o.Result = res
			if res == Handled {
				p.handled(env, time.Now())
			} else {
				p.m.duplicates.Inc()
			}
			return o, true
		case errors.As(err, &be):
			if ctx.Err() != nil {
				return o, false
			}
			p.log.Warn("dedup store unavailable; waiting", "event_id", env.EventID, "wait", storeWait, "err", err)
			if !sleep(ctx, storeWait) {
				return o, false
			}
			storeWait = min(2*storeWait, p.retry.MaxBackoff)
			continue
		}
		o.Attempts++
		if IsPermanent(err) {
			return p.reject(o, err), true
		}
		if o.Attempts >= p.retry.MaxAttempts {
			return p.reject(o, fmt.Errorf("dedup: event %s failed %d times: %w", env.EventID, o.Attempts, err)), true
		}
		p.m.retries.Inc()
		p.log.Warn("handler failed; retrying", "event_id", env.EventID, "event_type", env.EventType,
			"attempt", o.Attempts, "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			return o, false
		}
		wait = min(2*wait, p.retry.MaxBackoff)
	}
}

// callBatch runs the handler for the claimed events of a batch: in one
// call when it is a BatchHandler, else one call each.
func (p *Processor) callBatch(ctx context.Context, tx pgx.Tx, msgs []Message, envs []contracts.Envelope, valid []int, claimed []bool) error {
	bh, ok := p.handler.(BatchHandler)
	if !ok {
		for k, i := range valid {
			if claimed[k] {
				if err := p.call(withTransport(ctx, msgs[i]), tx, envs[i]); err != nil {
					return fmt.Errorf("event %s: %w", envs[i].EventID, err)
				}
			}
		}
		return nil
	}
	fresh := make([]contracts.Envelope, 0, len(valid))
	for k, i := range valid {
		if claimed[k] {
			fresh = append(fresh, envs[i])
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	start := time.Now()
	err := bh.HandleEvents(ctx, tx, fresh)
	per := time.Since(start).Seconds() / float64(len(fresh))
	for range fresh {
		p.m.handlerSeconds.Observe(per)
	}
	return err
}

// call runs the handler, timing it.
func (p *Processor) call(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
	start := time.Now()
	err := p.handler.HandleEvent(ctx, tx, env)
	p.m.handlerSeconds.Observe(time.Since(start).Seconds())
	return err
}

func (p *Processor) handled(env contracts.Envelope, now time.Time) {
	p.m.handled.Inc()
	p.m.lagSeconds.Observe(max(0, now.Sub(env.OccurredAt).Seconds()))
}

func (p *Processor) reject(o Outcome, err error) Outcome {
	o.Result, o.Err = DeadLetter, err
	stage, ok := contracts.StageOf(err)
	if !ok {
		stage = contracts.StageTaskPut
	}
	o.Stage = stage
	p.m.deadLettered.WithLabelValues(string(stage)).Inc()
	return o
}

// sleep waits d or until ctx ends, reporting whether it waited the full d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// quote quotes s for an error message, cut to a readable length.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…", s[:64])
	}
	return fmt.Sprintf("%q", s)
}
