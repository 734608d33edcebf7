package amqpconsumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// Defaults of [Config].
const (
	DefaultURL = "amqp://guest:guest@localhost:5672/"
	// DefaultPrefetch is the default [Config.Prefetch]: enough messages in
	// flight to fill DefaultMaxBatch-sized batches back to back. In the
	// package benchmark (2 shared cores, one INSERT per message) prefetch
	// alone, without batching, gained little over prefetch 1; batches of 64
	// were 6-12 times faster, and a four times larger prefetch and batch
	// added 10-30% more at the cost of longer transactions, more
	// redeliveries after a crash and a longer one-by-one replay when a
	// handler fails.
	DefaultPrefetch = 256
	// DefaultMaxBatch is the default [Config.MaxBatch]: at 64 a batch costs
	// about 1.05 PostgreSQL round trips per message (begin, one claim
	// statement and commit shared by 64 handler statements).
	DefaultMaxBatch = 64
	// DefaultDLX is the dead-letter exchange of DESIGN.md §3 (AMQP_DLX).
	DefaultDLX = "events.dlx"
	// DefaultExchange is the bridge's exchange (AMQP_EXCHANGE), which
	// [Config.Bindings] bind to.
	DefaultExchange = "events"
	// DefaultReconnectBackoff is the default first wait before reconnecting.
	DefaultReconnectBackoff = 500 * time.Millisecond
	// DefaultMaxReconnectBackoff caps the doubling reconnect wait.
	DefaultMaxReconnectBackoff = 30 * time.Second
)

// Queue types of [Config.QueueType].
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// QueueArgs returns the queue arguments of a queue type: none for a
// classic queue; for a quorum queue, x-queue-type quorum with
// at-least-once dead-lettering (x-dead-letter-strategy at-least-once and
// x-overflow reject-publish, which that strategy requires). It fails for
// any other type.
func QueueArgs(queueType string) (amqp.Table, error) {
	switch queueType {
	case "", QueueClassic:
		return amqp.Table{}, nil
	case QueueQuorum:
		return amqp.Table{
			"x-queue-type":           QueueQuorum,
			"x-dead-letter-strategy": "at-least-once",
			"x-overflow":             "reject-publish",
		}, nil
	}
	return nil, fmt.Errorf("queue type %q: want %q or %q", queueType, QueueClassic, QueueQuorum)
}

const (
	// heartbeat detects a dead TCP connection that no read or write notices.
	heartbeat = 10 * time.Second
	// dialTimeout bounds connecting and the AMQP handshake, and so how long
	// a shutdown can wait for a dial in progress.
	dialTimeout = 10 * time.Second
)

// Config configures a [Consumer]. Queue, Consumer, Store and Handler are
// required; every other zero value means the documented default.
type Config struct {
	// URL of the broker; empty means [DefaultURL].
	URL string
	// TLS is the client TLS configuration of an amqps:// URL (CA, client
	// certificate for mutual TLS, server name; tlsfiles.Config.Load builds
	// one from PEM files); nil means the system roots and the URL's host.
	// It is cloned per connection, not modified.
	TLS *tls.Config
	// Queue to consume.
	Queue string
	// Consumer is the dedup consumer name (processed_messages.consumer_name):
	// one per logical consumer, shared by its replicas.
	Consumer string
	// Store keeps the claims, usually dedup.NewPostgres(pool).
	Store dedup.Store
	// Handler handles each new event inside the dedup transaction, usually
	// a *dedup.Router.
	Handler dedup.Handler

	// Prefetch is the channel's QoS prefetch count: how many messages the
	// broker sends ahead of acknowledgements. Zero means [DefaultPrefetch].
	Prefetch int
	// MaxBatch is the most messages handled together and acknowledged
	// with one multiple ack; it must not exceed Prefetch. Zero means
	// [DefaultMaxBatch], or Prefetch if smaller. A batch takes what has
	// already arrived and never waits to fill up, so at low rates every
	// message is its own batch.
	MaxBatch int

	// Declare makes the consumer declare, on every (re)connection, the
	// dead-letter exchange DLX (durable topic), the Queue (durable, with
	// x-dead-letter-exchange = DLX and QueueArgs) and, when Bindings is not
	// empty, the Exchange (durable topic) and the Queue's bindings to it.
	// Without Declare the queue must exist, with its dead-letter exchange
	// set by whoever declared it, or rejected messages are dropped.
	Declare bool
	// DLX is the dead-letter exchange; empty means [DefaultDLX].
	DLX string
	// Exchange the Bindings bind to; empty means [DefaultExchange].
	Exchange string
	// Bindings are routing keys (event type patterns such as "billing.#")
	// to bind Queue with when Declare is set.
	Bindings []string
	// QueueType is the type of the queue Declare declares: "" or
	// [QueueClassic] for a classic queue, [QueueQuorum] for a quorum queue
	// with at-least-once dead-lettering (x-dead-letter-strategy
	// at-least-once, and so x-overflow reject-publish, which RabbitMQ
	// requires for it): a rejected message stays in the queue until the DLX's
	// queues have confirmed it, and a publish to a full queue is nacked, not
	// dropped. See the package doc for what each type promises. A queue
	// that exists with another type makes Run fail (PRECONDITION_FAILED).
	QueueType string
	// QueueArgs are further queue arguments when Declare is set, e.g.
	// {"x-max-length": 100000}. Its x-dead-letter-exchange, if any, is
	// replaced by DLX, and QueueType's arguments replace its own.
	QueueArgs amqp.Table

	// ConnectionName is the client-provided connection name shown by the
	// broker's management tools; empty means "messagekit-consumer-" +
	// Consumer.
	ConnectionName string
	// Retry bounds the in-process retries of transient handler failures.
	Retry dedup.Retry
	// ReconnectBackoff is the first wait before reconnecting after the
	// connection is lost; it doubles up to MaxReconnectBackoff and starts
	// again after a connection that got as far as consuming. Zero means
	// [DefaultReconnectBackoff].
	ReconnectBackoff time.Duration
	// MaxReconnectBackoff caps the reconnect wait. Zero means
	// [DefaultMaxReconnectBackoff].
	MaxReconnectBackoff time.Duration

	// Logger receives connection events, dead letters and retries; nil
	// discards them.
	Logger *slog.Logger
	// Metrics registers the messagekit_consumer_* metrics of the
	// dedup.Processor plus messagekit_consumer_reconnects_total; nil means
	// no metrics.
	Metrics prometheus.Registerer
}

// Consumer consumes one queue with manual acknowledgements and runs each
// new event's handler in its dedup transaction; see the package doc. Create
// it with [New] and run it with [Consumer.Run].
type Consumer struct {
	cfg        Config
	proc       *dedup.Processor
	log        *slog.Logger
	reconnects prometheus.Counter
	running    atomic.Bool
	sessions   atomic.Int64
}

// New validates cfg, applies the defaults and returns a Consumer; it does
// not connect. It fails when a required field is missing, a number is
// negative, MaxBatch exceeds Prefetch, or the metrics cannot be registered.
func New(cfg Config) (*Consumer, error) {
	switch {
	case cfg.Queue == "":
		return nil, errors.New("amqpconsumer: Config.Queue is required")
	case cfg.Consumer == "":
		return nil, errors.New("amqpconsumer: Config.Consumer is required")
	case cfg.Store == nil:
		return nil, errors.New("amqpconsumer: Config.Store is required")
	case cfg.Handler == nil:
		return nil, errors.New("amqpconsumer: Config.Handler is required")
	case cfg.Prefetch < 0 || cfg.MaxBatch < 0 || cfg.ReconnectBackoff < 0 || cfg.MaxReconnectBackoff < 0:
		return nil, errors.New("amqpconsumer: Prefetch, MaxBatch and the reconnect backoffs must not be negative")
	}
	if _, err := QueueArgs(cfg.QueueType); err != nil {
		return nil, fmt.Errorf("amqpconsumer: Config.QueueType: %w", err)
	}
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = min(DefaultMaxBatch, cfg.Prefetch)
	}
	if cfg.MaxBatch > cfg.Prefetch {
		return nil, fmt.Errorf("amqpconsumer: MaxBatch %d exceeds Prefetch %d: batches could never fill", cfg.MaxBatch, cfg.Prefetch)
	}
	if cfg.DLX == "" {
		cfg.DLX = DefaultDLX
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if cfg.ConnectionName == "" {
		cfg.ConnectionName = "messagekit-consumer-" + cfg.Consumer
	}
	if cfg.ReconnectBackoff == 0 {
		cfg.ReconnectBackoff = DefaultReconnectBackoff
	}
	if cfg.MaxReconnectBackoff == 0 {
		cfg.MaxReconnectBackoff = DefaultMaxReconnectBackoff
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("queue", cfg.Queue)
	proc, err := dedup.NewProcessor(dedup.ProcessorConfig{
		Store: cfg.Store, Consumer: cfg.Consumer, Handler: cfg.Handler,
		RequireID: true, Retry: cfg.Retry, Logger: log, Metrics: cfg.Metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("amqpconsumer: %w", err)
	}
	c := &Consumer{cfg: cfg, proc: proc, log: log.With("consumer", cfg.Consumer)}
	c.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "messagekit_consumer_reconnects_total",
		Help:        "Connections to the broker made after the first.",
		ConstLabels: prometheus.Labels{"consumer": cfg.Consumer},
	})
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(c.reconnects); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("amqpconsumer: register metrics: %w", err)
			}
			c.reconnects = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return c, nil
}

// Run consumes until ctx ends, reconnecting with backoff whenever the
// connection or channel is lost, and returns nil after a graceful stop:
// consuming is cancelled, the batch in flight is finished and acknowledged,
// and the connection is closed, which returns the messages prefetched but
// not started to the queue.
//
// It returns an error, without retrying, when setting up fails because the
// broker refuses access or a declaration conflicts with an existing queue
// or exchange (AMQP 403 or 406): retrying cannot fix configuration. Any
// other failure (broker down, queue missing while Declare is off,
// connection closed by an operator, a channel closed once consuming, for
// instance by the broker's consumer_timeout) is logged and retried. Run
// must not be called twice at once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("amqpconsumer: Run called twice")
	}
	defer c.running.Store(false)
	wait := c.cfg.ReconnectBackoff
	for n := 0; ; n++ {
		if n > 0 {
			c.reconnects.Inc()
		}
		consumed, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !consumed && isFatal(err) {
			return fmt.Errorf("amqpconsumer: queue %s: %w", c.cfg.Queue, err)
		}
		if consumed {
			wait = c.cfg.ReconnectBackoff
		}
		c.log.Warn("connection lost; reconnecting", "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.MaxReconnectBackoff)
	}
}

// isFatal reports errors that a reconnect would only repeat.
func isFatal(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.PreconditionFailed)
}

// session connects, sets up and consumes until the connection or channel
// is lost (returning why) or ctx ends (returning nil). consumed reports
// whether it got as far as consuming.
func (c *Consumer) session(ctx context.Context) (consumed bool, err error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(c.cfg.ConnectionName)
	conn, err := amqp.DialConfig(c.cfg.URL, amqp.Config{
		Properties: props, Heartbeat: heartbeat, Dial: amqp.DefaultDial(dialTimeout),
		TLSClientConfig: cloneTLS(c.cfg.TLS),
	})
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer func() { _ = conn.Close() }()
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch: %w", err)
	}
	if c.cfg.Declare {
		if err := c.declare(ch); err != nil {
			return false, err
		}
	}
	tag := fmt.Sprintf("%s-%d", c.cfg.ConnectionName, c.sessions.Add(1))
	unbuffered, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume: %w", err)
	}
	// amqp091 hands deliveries over an unbuffered channel, so a
	// non-blocking receive often misses one that has arrived. Forwarding
	// into a buffer of the prefetch size lets a batch take everything that
	// is there; the forwarder never blocks, since at most Prefetch
	// deliveries are unacknowledged, and it ends when the channel closes.
	deliveries := make(chan amqp.Delivery, c.cfg.Prefetch)
	go func() {
		defer close(deliveries)
		for d := range unbuffered {
			deliveries <- d
		}
	}()
	c.log.Info("consuming", "prefetch", c.cfg.Prefetch, "max_batch", c.cfg.MaxBatch, "connection", c.cfg.ConnectionName)

	batch := make([]amqp.Delivery, 0, c.cfg.MaxBatch)
	batches := 0
	for {
		if ctx.Err() != nil {
			return true, c.stop(ch, tag)
		}
		select {
		case <-ctx.Done():
			return true, c.stop(ch, tag)
		case d, ok := <-deliveries:
			if !ok {
				return true, closeReason(connClosed, chClosed)
			}
			batch = append(batch[:0], d)
		}
	fill: // take what has arrived, without waiting for more
		for len(batch) < c.cfg.MaxBatch {
			select {
			case d, ok := <-deliveries:
				if !ok {
					break fill
				}
				batch = append(batch, d)
			default:
				break fill
			}
		}
		batches++
		out := c.process(ctx, batch)
		c.trace(ctx, tag, batches, batch, out)
		if err := c.settle(ch, batch, out); err != nil {
			return true, err
		}
	}
}

// trace logs, at debug level, one line per delivery of a batch: enough to
// follow an event from its Kafka offset to the consumer's decision.
func (c *Consumer) trace(ctx context.Context, tag string, batch int, ds []amqp.Delivery, out []dedup.Outcome) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for i, d := range ds {
		result := "unsettled" // a prefix only was handled: returned to the queue
		if i < len(out) {
			result = out[i].Result.String()
		}
		c.log.Debug("delivery", "session", tag, "batch", batch, "delivery_tag", d.DeliveryTag,
			"redelivered", d.Redelivered, "message_id", d.MessageId,
			"kafka_partition", d.Headers[contracts.AMQPHeaderKafkaPartition],
			"kafka_offset", d.Headers[contracts.AMQPHeaderKafkaOffset], "result", result)
	}
}

// process handles a batch. When ctx ends it returns the outcomes of a
// prefix of the batch only; the rest stay unacknowledged and return to the
// queue when the channel closes.
func (c *Consumer) process(ctx context.Context, batch []amqp.Delivery) []dedup.Outcome {
	msgs := make([]dedup.Message, len(batch))
	for i := range batch {
		d := &batch[i]
		msgs[i] = dedup.Message{ID: d.MessageId, Body: d.Body, Transport: d}
	}
	out, _ := c.proc.Process(ctx, msgs)
	return out
}

// settle rejects the dead letters of out without requeueing, so that the
// broker dead-letters them to the queue's DLX (x-death reason "rejected"),
// then acknowledges the handled and duplicate deliveries with one multiple
// ack. The rejections go first, so the multiple ack cannot cover them; out
// is a prefix of the batch, and every earlier delivery is settled already.
func (c *Consumer) settle(ch *amqp.Channel, batch []amqp.Delivery, out []dedup.Outcome) error {
	var upTo uint64
	for i, o := range out {
		d := batch[i]
		if o.Result != dedup.DeadLetter {
			upTo = d.DeliveryTag
			continue
		}
		// The broker records only "rejected" in x-death: the reason is here.
		c.log.Warn("dead-lettering message", "message_id", d.MessageId, "event_id", o.EventID,
			"event_type", o.EventType, "stage", o.Stage, "attempts", o.Attempts,
			"redelivered", d.Redelivered, "dlx", c.cfg.DLX, "err", o.Err)
		if err := ch.Nack(d.DeliveryTag, false, false); err != nil {
			return fmt.Errorf("reject message %s: %w", d.MessageId, err)
		}
	}
	if upTo != 0 {
		if err := ch.Ack(upTo, true); err != nil {
			return fmt.Errorf("acknowledge up to delivery %d: %w", upTo, err)
		}
	}
	return nil
}

// stop cancels the consumer; the deferred close returns what was
// prefetched but not handled to the queue.
func (c *Consumer) stop(ch *amqp.Channel, tag string) error {
	if err := ch.Cancel(tag, false); err != nil {
		c.log.Debug("cancel consumer", "err", err)
	}
	c.log.Info("stopped")
	return nil
}

func (c *Consumer) declare(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(c.cfg.DLX, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter exchange %s: %w", c.cfg.DLX, err)
	}
	args := amqp.Table{}
	maps.Copy(args, c.cfg.QueueArgs)
	typed, _ := QueueArgs(c.cfg.QueueType) // checked by New
	maps.Copy(args, typed)
	args["x-dead-letter-exchange"] = c.cfg.DLX
	if _, err := ch.QueueDeclare(c.cfg.Queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", c.cfg.Queue, err)
	}
	if len(c.cfg.Bindings) == 0 {
		return nil
	}
	if err := ch.ExchangeDeclare(c.cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", c.cfg.Exchange, err)
	}
	for _, key := range c.cfg.Bindings {
		if err := ch.QueueBind(c.cfg.Queue, key, c.cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s to %s with %q: %w", c.cfg.Queue, c.cfg.Exchange, key, err)
		}
	}
	return nil
}

// closeReason says why the delivery channel closed.
func closeReason(connClosed, chClosed <-chan *amqp.Error) error {
	for _, c := range []<-chan *amqp.Error{connClosed, chClosed} {
		select {
		case err, ok := <-c:
			if ok && err != nil {
				return err
			}
		default:
		}
	}
	return errors.New("delivery channel closed (consumer cancelled by the broker?)")
}

// DeliveryFrom returns the RabbitMQ delivery of the event a handler is
// handling, e.g. to read a header such as x-replay-count. It is there in a
// [dedup.Handler]'s HandleEvent (and so in a [dedup.Router]'s typed
// handlers), not in a [dedup.BatchHandler]'s HandleEvents.
func DeliveryFrom(ctx context.Context) (*amqp.Delivery, bool) {
	t, _ := dedup.TransportFrom(ctx)
	d, ok := t.(*amqp.Delivery)
	return d, ok
}

// cloneTLS copies tc, which amqp091 would otherwise modify (it fills in the
// server name), so one configuration may serve many consumers.
func cloneTLS(tc *tls.Config) *tls.Config {
	if tc == nil {
		return nil
	}
	return tc.Clone()
}
