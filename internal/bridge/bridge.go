package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/time/rate"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// className names the bridge in [contracts.DLQHeaderClassName].
var className = func() string {
	t := reflect.TypeFor[Bridge]()
	return t.PkgPath() + "." + t.Name()
}()

// unroutableLogEvery is how often a dropped routing key is logged at most.
const unroutableLogEvery = time.Minute

// Bridge republishes Kafka records to RabbitMQ; see the package doc. Create
// it with [New] and run it with [Bridge.Run].
type Bridge struct {
	cfg     Config
	sarama  *sarama.Config
	key     RoutingKey
	decoder contracts.Decoder
	metrics *metrics
	tracer  trace.Tracer
	// recordSpans is false under the no-op TracerProvider (tracing off).
	recordSpans bool
	spanName    string
	log         *slog.Logger
	running     atomic.Bool
	// consumeErr is the authorization error that keeps the consumer group
	// from its topics, nil while it can consume (see ConsumerCheck).
	consumeErr atomic.Pointer[error]
	// breaker guards the dedup store calls of all partitions.
	breaker *gobreaker.CircuitBreaker[struct{}]
	// limiter, when MaxRate is set, is shared by all partitions.
	limiter *rate.Limiter
	// budget bounds the record bytes in flight across partitions.
	budget *budget

	mu         sync.Mutex
	unroutable map[string]time.Time // routing key → last logged
	// unroutableKeys caps the routing_key label of unroutable_total.
	unroutableKeys *labelCap
}

// New validates cfg, applies its defaults and returns a Bridge; it does
// not connect. It fails when a required field is missing, a value is out of
// range, the routing key template does not parse, the sarama configuration
// does not validate, or the metrics cannot be registered.
func New(cfg Config) (*Bridge, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	key, err := ParseRoutingKey(cfg.RoutingKey)
	if err != nil {
		return nil, err
	}
	sc := saramaConfig(cfg.Sarama, &cfg)
	if err := cfg.KafkaSecurity.Apply(sc); err != nil {
		return nil, fmt.Errorf("bridge: kafka security: %w", err)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("bridge: sarama configuration: %w", err)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	bud, err := newBudget(cfg.MaxInflightBytes, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("group", cfg.Group, "exchange", cfg.Exchange)
	b := &Bridge{
		cfg: cfg, sarama: sc, key: key, metrics: m, budget: bud,
		// The size check runs first; the decoder's own limit only backs it.
		// The value is republished as it is and data never read, so the
		// envelope may alias it instead of copying data out.
		decoder:    contracts.Decoder{MaxBytes: cfg.MaxRecordBytes, Alias: true},
		log:        log,
		tracer:     cfg.TracerProvider.Tracer(tracerName),
		spanName:   cfg.Exchange + " publish",
		unroutable: make(map[string]time.Time),
		// One label set per metric series: the keys Prometheus can keep.
		unroutableKeys: newLabelCap(MaxRoutingKeyLabels),
		breaker:        newBreaker(&cfg, m, log),
	}
	_, off := cfg.TracerProvider.(noop.TracerProvider)
	b.recordSpans = !off
	if cfg.MaxRate > 0 {
		// A tenth of a second's worth of burst: WaitN takes at most that
		// many records at once, so a batch is spread over time.
		b.limiter = rate.NewLimiter(rate.Limit(cfg.MaxRate), max(1, int(cfg.MaxRate/10)))
	}
	return b, nil
}

// amqpDialTimeout bounds the TCP connect and the AMQP (and TLS) handshake,
// as amqp091's default dialer does.
const amqpDialTimeout = 30 * time.Second

// dial opens a connection to RabbitMQ named cfg.ConnectionName, its writes
// coalesced (see coalescingConn), and logs a warning when RabbitMQ or the
// network closes it.
func (b *Bridge) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(b.cfg.ConnectionName)
	tcp := amqp.DefaultDial(amqpDialTimeout)
	conn, err := amqp.DialConfig(b.cfg.AMQPURL, amqp.Config{Properties: props, TLSClientConfig: b.cfg.AMQPTLS, Dial: func(network, addr string) (net.Conn, error) {
		c, err := tcp(network, addr)
		if err != nil {
			return nil, err
		}
		return newCoalescingConn(c), nil
	}})
	if err != nil {
		return nil, err
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		// An idle bridge would notice only at its next publish.
		if err, ok := <-closed; ok && err != nil {
			b.log.Warn("RabbitMQ connection lost; reconnecting when a partition next publishes", "err", err)
		}
	}()
	return conn, nil
}

// Run bridges until ctx ends, then stops fetching, finishes the batches in
// flight (confirms, dedup records, offset marks), commits and leaves the
// group, and returns nil.
//
// It retries reaching RabbitMQ and Kafka at start and consumer group
// sessions that fail. When the RabbitMQ connection or a channel is lost,
// the partitions reconnect with backoff, declare the exchanges again and
// publish the unconfirmed records of their batches again; no offset of an
// unconfirmed record is marked meanwhile. While the dedup store's circuit
// breaker is open, partitions pause fetching and mark nothing. It returns
// an error when declaring the exchanges at start fails and when the
// dead-letter producer or the consumer group cannot be created. Run must
// not be called twice at once.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	defer b.running.Store(false)

	conn, ok := dialRetry(ctx, b.log, "RabbitMQ", b.dial)
	if !ok {
		return nil
	}
	conns := &amqpConn{dial: b.dial, declare: b.declare, conn: conn}
	defer conns.close()
	if err := b.declare(conn); err != nil {
		return err
	}
	client, ok := dialRetry(ctx, b.log, "Kafka", func() (sarama.Client, error) {
		c, err := sarama.NewClient(b.cfg.Brokers, b.sarama)
		return c, b.cfg.KafkaSecurity.Explain(err)
	})
	if !ok {
		return nil
	}
	defer func() { _ = client.Close() }()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("bridge: dead-letter producer: %w", err)
	}
	defer func() { _ = producer.Close() }()
	group, err := sarama.NewConsumerGroupFromClient(b.cfg.Group, client)
	if err != nil {
		return fmt.Errorf("bridge: consumer group %s: %w", b.cfg.Group, err)
	}

	// The breaker and the byte budget both pause partitions.
	gate := newGate(group)
	b.budget.mu.Lock()
	b.budget.gate = gate
	b.budget.mu.Unlock()
	h := &groupHandler{b: b, conns: conns, producer: producer, group: gate}
	wait := b.cfg.Backoff
	for ctx.Err() == nil {
		err := group.Consume(ctx, b.cfg.Topics, h)
		switch {
		case ctx.Err() != nil:
		case err == nil: // the session ended (a rebalance): join again
			wait = b.cfg.Backoff
		case isAuthorization(err):
			// Retrying cannot help until an operator grants the ACL:
			// readiness says so and the log says it once.
			if b.consumeErr.Swap(&err) == nil {
				b.log.Error("kafka down: the consumer group is not authorized for its topics or group; grant the ACLs (retrying)",
					"dependency", "kafka", "topics", b.cfg.Topics, "group", b.cfg.Group, "err", err)
			}
			if !sleep(ctx, wait) {
				break
			}
			wait = min(2*wait, DefaultMaxBackoff)
		default:
			b.log.Warn("consumer group session failed; retrying", "topics", b.cfg.Topics, "wait", wait, "err", err)
			if !sleep(ctx, wait) {
				break
			}
			wait = min(2*wait, DefaultMaxBackoff)
		}
	}
	// Closing the group commits the marked offsets and leaves the group.
	if err := group.Close(); err != nil {
		b.log.Warn("leaving the consumer group failed", "err", err)
	}
	b.log.Info("stopped")
	return nil
}

// declare declares the exchange and the DLX unless told not to.
func (b *Bridge) declare(conn *amqp.Connection) error {
	if b.cfg.SkipDeclare {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("bridge: open channel to declare exchanges: %w", err)
	}
	defer func() { _ = ch.Close() }()
	for _, name := range []string{b.cfg.Exchange, b.cfg.DLX} {
		if name == "" {
			continue
		}
		if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("bridge: declare exchange %s: %w", name, err)
		}
	}
	return nil
}

// dialRetry calls dial with backoff until it succeeds or ctx ends; it
// reports whether it succeeded.
func dialRetry[T any](ctx context.Context, log *slog.Logger, what string, dial func() (T, error)) (T, bool) {
	for attempt := 1; ; attempt++ {
		c, err := dial()
		if err == nil {
			return c, true
		}
		wait := backoff(DefaultBackoff, attempt)
		log.Warn("cannot reach "+what+"; retrying", "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			var zero T
			return zero, false
		}
	}
}

// classify checks msg's size, decodes and validates its envelope and
// derives its dedup key and routing key. A poison record comes back with
// outcome deadLetter, its stage and error.
func (b *Bridge) classify(msg *sarama.ConsumerMessage) record {
	r := record{msg: msg}
	if size := len(msg.Key) + len(msg.Value); size > b.cfg.MaxRecordBytes {
		r.outcome, r.stage = deadLetter, contracts.StageRecordTooLarge
		r.err = &RecordTooLargeError{Size: size, Max: b.cfg.MaxRecordBytes}
		return r
	}
	var headerID []byte
	var hasID bool
	for _, h := range msg.Headers {
		if h == nil {
			continue
		}
		switch string(h.Key) {
		case contracts.KafkaHeaderID:
			headerID, hasID = h.Value, true
		case contracts.KafkaHeaderReplayID:
			r.replayID = string(h.Value)
		case contracts.KafkaHeaderAggregateType:
			r.aggregateType = string(h.Value)
		}
	}
	env, err := b.decoder.Decode(msg.Value)
	if err == nil && hasID {
		// As in pkg/dedup (ADR 0006): deduplicating on either of two
		// disagreeing ids could drop a distinct event.
		if id, perr := uuid.ParseBytes(headerID); perr != nil {
			err = &contracts.ValidationError{Field: "id", Reason: fmt.Sprintf("header is not a UUID: %q", headerID), Err: perr}
		} else if id != env.EventID {
			err = &contracts.ValidationError{Field: "id", Reason: fmt.Sprintf("header %s differs from eventId %s", id, env.EventID)}
		}
	}
	if err != nil {
		stage, ok := contracts.StageOf(err)
		if !ok {
			stage = contracts.StageDecode
		}
		r.outcome, r.stage, r.err = deadLetter, stage, err
		return r
	}
	r.env = env
	if b.cfg.Catalog != nil {
		if v := b.cfg.Catalog.Inspect(env); v != nil {
			b.metrics.violations.WithLabelValues(string(v.Kind)).Inc()
			if b.cfg.Catalog.Strict() {
				r.outcome, r.stage, r.err = deadLetter, contracts.StageValidate, v
				return r
			}
			b.log.Debug("bridging an event the catalog does not accept", "topic", msg.Topic, "partition", msg.Partition,
				"offset", msg.Offset, "event_id", env.EventID, "kind", string(v.Kind), "reason", v.Error())
		}
	}
	r.key = ReplayKey(env.EventID, r.replayID)
	r.routingKey = b.key.Render(env.EventType, r.aggregateType, env.Source)
	return r
}

// publishing renders r as the AMQP message of DESIGN.md §3, with the trace
// context of ctx (the span of this publish) injected into its headers.
// The headers go into table, cleared first: amqp091 encodes a message
// before Publish returns, so one table serves a partition's publishes.
func (b *Bridge) publishing(ctx context.Context, r *record, table amqp.Table) amqp.Publishing {
	msg, env := r.msg, &r.env
	clear(table)
	table[contracts.AMQPHeaderAggregateID] = env.AggregateID
	table[contracts.AMQPHeaderKafkaTopic] = msg.Topic
	table[contracts.AMQPHeaderKafkaPartition] = msg.Partition
	table[contracts.AMQPHeaderKafkaOffset] = msg.Offset
	b.cfg.Propagator.Inject(ctx, amqpCarrier(table))
	if r.replayID != "" {
		table[contracts.AMQPHeaderReplayID] = r.replayID
	}
	return amqp.Publishing{
		Headers:       table,
		ContentType:   contracts.ContentTypeJSON,
		DeliveryMode:  amqp.Persistent,
		CorrelationId: env.CorrelationID,
		MessageId:     env.EventID.String(),
		Timestamp:     env.OccurredAt,
		Type:          env.EventType,
		AppId:         env.Source,
		Body:          msg.Value,
	}
}

// shouldLogUnroutable reports whether a drop of key is to be logged now: at
// most once per unroutableLogEvery per routing key, across partitions. It
// keeps at most maxUnroutableLogKeys keys: when full, it forgets the keys
// logged longer ago than that, and while still full, keys it does not know
// share one entry (at most one of their lines a minute).
func (b *Bridge) shouldLogUnroutable(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.unroutable[key]; !ok && len(b.unroutable) >= maxUnroutableLogKeys {
		for k, last := range b.unroutable {
			if now.Sub(last) >= unroutableLogEvery {
				delete(b.unroutable, k)
			}
		}
		if len(b.unroutable) >= maxUnroutableLogKeys {
			key = "\x00" + OtherLabel
		}
	}
	if last, ok := b.unroutable[key]; ok && now.Sub(last) < unroutableLogEvery {
		return false
	}
	b.unroutable[key] = now
	return true
}

// groupHandler runs one consumer group session's claims.
type groupHandler struct {
	b        *Bridge
	conns    *amqpConn
	producer sarama.SyncProducer
	group    pauser
}

func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	if h.b.consumeErr.Swap(nil) != nil {
		h.b.log.Info("kafka up: the consumer group consumes its topics again", "dependency", "kafka")
	}
	h.b.log.Info("session started", "claims", sess.Claims(), "generation", sess.GenerationID())
	return nil
}

func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim bridges one partition, a batch at a time, on an AMQP channel
// of its own: confirms and returns of one channel then concern this
// partition only, in order.
//
// A delivered batch's dedup keys are recorded in the round trip that looks
// up the next batch's, when records are waiting: the next batch is then
// looked up, published and confirmed one round trip sooner, and the store
// sees one round trip per batch instead of two. The delivered batch is
// marked only after that round trip, and nothing of the next one is
// published before it, so no more than one batch is ever published and not
// recorded.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	cfg := &h.b.cfg
	log := h.b.log.With("topic", claim.Topic(), "partition", claim.Partition())
	p := &partition{
		b: h.b, dlq: h.producer, log: log, pause: h.group, topic: claim.Topic(), part: claim.Partition(),
		open: func() (publisher, error) { return h.conns.channel(cfg.BatchSize) },
	}
	// Records wait in the intake's channel, counted against the budget;
	// held is the bytes of the batch being worked on.
	bud := h.b.budget
	bud.claim(claim.Topic(), claim.Partition())
	msgs, stopIntake := intake(bud, claim.Messages(), cfg.BatchSize)
	var held int64
	defer func() {
		bud.give(held)
		stopIntake()
		bud.release(claim.Topic(), claim.Partition())
	}()
	stop := sess.Context()
	if !p.reopen(stop) {
		return nil
	}
	defer func() {
		if c, ok := p.pub.(interface{ close() }); ok {
			c.close()
		}
	}()
	// The lag of a revoked partition is its new owner's to report.
	part := strconv.Itoa(int(claim.Partition()))
	lag := h.b.metrics.consumerLag.WithLabelValues(claim.Topic(), part)
	defer h.b.metrics.consumerLag.DeleteLabelValues(claim.Topic(), part)
	mark := func(msg *sarama.ConsumerMessage) {
		sess.MarkMessage(msg, "")
		lag.Set(float64(max(0, claim.HighWaterMarkOffset()-(msg.Offset+1))))
	}

	batch := make([]*sarama.ConsumerMessage, 0, cfg.BatchSize)
	// last is the last record of the delivered batch whose keys, done, are
	// still to be recorded; nil when there is none.
	var last *sarama.ConsumerMessage
	var done []uuid.UUID
	// settle records done and marks last; it reports false when stop
	// ended the record's retries first.
	settle := func() bool {
		ok := p.record(stop, done)
		if ok {
			mark(last)
		}
		last, done = nil, nil
		return ok
	}
	for {
		var open bool
		// The last batch is done but for last, still to be marked: its
		// bytes stay counted until then. The batch buffer forgets the
		// records, so they can be collected.
		var keep int64
		if last != nil {
			keep = recordBytes(last)
		}
		bud.give(held - keep)
		held = keep
		clear(batch)
		if last != nil {
			batch, open = drain(msgs, batch[:0], cfg.BatchSize)
		} else {
			batch, open = collect(stop, msgs, batch[:0], cfg.BatchSize, cfg.BatchWait)
		}
		for _, m := range batch {
			held += recordBytes(m)
		}
		if len(batch) == 0 {
			if last != nil && !settle() {
				break
			}
			if !open || stop.Err() != nil {
				break
			}
			continue
		}
		recs := p.classify(batch)
		if !p.lookUp(stop, recs, done) {
			// Neither done recorded nor the batch looked up, and the stop
			// already ended the retries: done's batch stays unmarked.
			last, done = nil, nil
			break
		}
		if last != nil {
			mark(last)
		}
		last, done = nil, nil
		delivered := p.deliver(stop, recs)
		n, keys := resolvedPrefix(recs)
		clear(recs) // the records buffer keeps no record alive

		if !delivered || n < len(batch) {
			last, done = nil, keys
			if n > 0 {
				last = batch[n-1]
			}
			if last != nil {
				settle()
			}
			break
		}
		last, done = batch[n-1], keys
		if !open || stop.Err() != nil {
			break
		}
	}
	if last != nil {
		settle()
	}
	sess.Commit()
	return nil
}
