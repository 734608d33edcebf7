package amqpdlq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Recorder stores batches of dead letters, blocking until they are
// committed or ctx ends; *bookkeeper.Recorder implements it.
type Recorder interface {
	Record(ctx context.Context, source deadletter.Source, letters []bookkeeper.Letter) ([]deadletter.Recorded, error)
}

// Defaults of Config (DESIGN.md §5 for the names).
const (
	DefaultDLX            = "events.dlx"
	DefaultQueue          = "events.dlq"
	DefaultBinding        = "#"
	DefaultBatchSize      = 100
	DefaultBatchWait      = 5 * time.Millisecond
	DefaultConsumers      = 2
	DefaultConnectionName = "messagekit-dlq-bookkeeper"
	DefaultReconnectMin   = 100 * time.Millisecond
	DefaultReconnectMax   = 10 * time.Second
)

// The values of Config.QueueType.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// Config configures a Consumer. Zero values mean the documented defaults.
type Config struct {
	// URL is the broker (amqp:// or amqps://). Required.
	URL string
	// TLS is the TLS configuration of an amqps:// URL; nil means the
	// system roots. It is cloned per connection.
	TLS *tls.Config
	// DLX is the dead-letter exchange consumer queues use (AMQP_DLX);
	// default DefaultDLX.
	DLX string
	// SkipDeclare leaves the topology alone (AMQP_DECLARE=false). Otherwise
	// the consumer declares DLX (durable topic) and each queue (durable),
	// bound to DLX with each binding key, on every (re)connection.
	SkipDeclare bool
	// Queues are the dead-letter queues to consume (DLQ_QUEUES); default
	// [DefaultQueue].
	Queues []string
	// Bindings are the binding keys of the queues on DLX (DLQ_BINDINGS);
	// default [DefaultBinding].
	Bindings []string
	// QueueType is the type of the queues declared (DLQ_QUEUE_TYPE): "" or
	// "classic", or "quorum" (replicated, and the dead letters a quorum
	// consumer queue dead-letters at least once are confirmed into it).
	QueueType string
	// BatchSize is the most deliveries stored in one transaction and
	// acknowledged at once; default DefaultBatchSize.
	BatchSize int
	// BatchWait is how long a batch waits for more deliveries once one has
	// arrived; default DefaultBatchWait; negative means not at all.
	BatchWait time.Duration
	// Prefetch is each channel's prefetch count; default twice BatchSize,
	// so that the next batch arrives while one is being stored.
	Prefetch int
	// Consumers is how many channels consume each queue, each storing and
	// acknowledging its own batches, so that one batch is parsed while
	// another commits; default DefaultConsumers.
	Consumers int
	// ConnectionName is the client-provided connection name; default
	// DefaultConnectionName.
	ConnectionName string
	// ReconnectMin and ReconnectMax bound the doubling wait before a
	// reconnection; default DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// Recorder stores the dead letters. Required.
	Recorder Recorder
	// Logger gets connection events; nil discards.
	Logger *slog.Logger
	// Metrics counts connection and ack errors; nil counts nothing.
	Metrics *bookkeeper.Metrics
}

// Consumer consumes RabbitMQ dead-letter queues with manual
// acknowledgement and hands each batch to its Recorder: a batch is
// acknowledged (ack multiple, up to its last delivery tag) only after the
// Recorder committed it. Each queue is consumed on Config.Consumers
// channels, each with its own goroutine that handles its batches in order.
// It reconnects with backoff after a connection or channel failure; the
// broker then redelivers what was not acknowledged.
type Consumer struct {
	cfg Config
	log *slog.Logger
	bookkeeper.Supervisor
}

// dialTimeout bounds the TCP connection and the AMQP handshake.
const dialTimeout = 10 * time.Second

// New returns a Consumer for cfg, or an error when URL or Recorder is
// missing, a list contains an empty name or QueueType is unknown.
func New(cfg Config) (*Consumer, error) {
	if cfg.URL == "" {
		return nil, errors.New("amqpdlq: Config.URL is required")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("amqpdlq: Config.Recorder is required")
	}
	if t := cfg.QueueType; t != "" && t != QueueClassic && t != QueueQuorum {
		return nil, fmt.Errorf("amqpdlq: Config.QueueType %q: want %q or %q", t, QueueClassic, QueueQuorum)
	}
	if cfg.DLX == "" {
		cfg.DLX = DefaultDLX
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = []string{DefaultQueue}
	}
	if len(cfg.Bindings) == 0 {
		cfg.Bindings = []string{DefaultBinding}
	}
	for _, l := range [][]string{cfg.Queues, cfg.Bindings} {
		for _, n := range l {
			if n == "" {
				return nil, errors.New("amqpdlq: empty queue or binding name")
			}
		}
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = DefaultBatchWait
	}
	if cfg.Consumers <= 0 {
		cfg.Consumers = DefaultConsumers
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2 * cfg.BatchSize
	}
	if cfg.ConnectionName == "" {
		cfg.ConnectionName = DefaultConnectionName
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = DefaultReconnectMax
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	c := &Consumer{cfg: cfg, log: cfg.Logger, Supervisor: bookkeeper.Supervisor{
		Name: "rabbitmq dead-letter consumer", Source: deadletter.SourceRabbitMQ,
		Min: cfg.ReconnectMin, Max: cfg.ReconnectMax,
		Logger: cfg.Logger, LogAttrs: []slog.Attr{slog.Any("queues", cfg.Queues)}, Metrics: cfg.Metrics,
	}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Run consumes until ctx ends, reconnecting after failures, and returns
// nil then. An in-flight batch is finished first: stored and acknowledged,
// or left unacknowledged for the broker to redeliver.
func (c *Consumer) Run(ctx context.Context) error { return c.Supervisor.Run(ctx, c.session) }

// session connects, declares, and consumes until the connection fails or
// ctx ends. consumed reports whether it got as far as consuming.
func (c *Consumer) session(ctx context.Context) (consumed bool, err error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(c.cfg.ConnectionName)
	var tc *tls.Config
	if c.cfg.TLS != nil {
		tc = c.cfg.TLS.Clone()
	}
	conn, err := amqp.DialConfig(c.cfg.URL, amqp.Config{
		Properties:      props,
		Heartbeat:       10 * time.Second,
		TLSClientConfig: tc,
		// Like amqp.DefaultDial, but a shutdown does not wait for a dial to
		// an unreachable broker.
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bounds the AMQP handshake; amqp091 clears it afterwards.
			if err := conn.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return conn, nil
		},
	})
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer func() { _ = conn.Close() }()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if !c.cfg.SkipDeclare {
		if err := c.declare(conn); err != nil {
			return false, err
		}
	}

	type worker struct {
		ch         *amqp.Channel
		queue      string
		deliveries <-chan amqp.Delivery
	}
	workers := make([]worker, 0, len(c.cfg.Queues)*c.cfg.Consumers)
	for i := range len(c.cfg.Queues) * c.cfg.Consumers {
		q := c.cfg.Queues[i%len(c.cfg.Queues)]
		ch, err := conn.Channel()
		if err != nil {
			return false, fmt.Errorf("open channel for %s: %w", q, err)
		}
		if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
			return false, fmt.Errorf("qos on %s: %w", q, err)
		}
		deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			return false, fmt.Errorf("consume %s: %w", q, err)
		}
		workers = append(workers, worker{ch, q, deliveries})
	}
	c.SetConsuming()
	c.log.Info("consuming rabbitmq dead-letter queues", slog.Any("queues", c.cfg.Queues),
		slog.String("dlx", c.cfg.DLX), slog.Bool("declared", !c.cfg.SkipDeclare))

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.consume(wctx, w.ch, w.queue, w.deliveries); err != nil {
				errc <- err
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	case e := <-closed:
		err = fmt.Errorf("connection closed: %v", e)
	}
	stop()
	wg.Wait() // finish in-flight batches before the connection closes
	return true, err
}

func (c *Consumer) declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel to declare: %w", err)
	}
	defer func() { _ = ch.Close() }()
	if err := ch.ExchangeDeclare(c.cfg.DLX, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", c.cfg.DLX, err)
	}
	for _, q := range c.cfg.Queues {
		var args amqp.Table
		if c.cfg.QueueType == QueueQuorum {
			args = amqp.Table{"x-queue-type": QueueQuorum}
		}
		if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare queue %s: %w", q, err)
		}
		for _, b := range c.cfg.Bindings {
			if err := ch.QueueBind(q, b, c.cfg.DLX, false, nil); err != nil {
				return fmt.Errorf("bind queue %s to %s with %q: %w", q, c.cfg.DLX, b, err)
			}
		}
	}
	return nil
}

// consume handles the deliveries of one queue, batch by batch, until ctx
// ends (nil) or the channel fails.
func (c *Consumer) consume(ctx context.Context, ch *amqp.Channel, queue string, deliveries <-chan amqp.Delivery) error {
	batch := make([]amqp.Delivery, 0, c.cfg.BatchSize)
	letters := make([]bookkeeper.Letter, 0, c.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("deliveries of %s stopped", queue)
			}
			batch = append(batch, d)
		}
		var ok bool
		if batch, ok = c.fill(ctx, deliveries, batch); !ok {
			// The channel is gone: nothing can be acknowledged, the broker
			// redelivers the batch.
			return fmt.Errorf("deliveries of %s stopped", queue)
		}
		letters = letters[:0]
		for i := range batch {
			letters = append(letters, Parse(&batch[i], queue))
		}
		if _, err := c.cfg.Recorder.Record(ctx, deadletter.SourceRabbitMQ, letters); err != nil {
			// Not committed: leave the batch unacknowledged.
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("record %d dead letters of %s: %w", len(batch), queue, err)
		}
		if err := ch.Ack(batch[len(batch)-1].DeliveryTag, true); err != nil {
			c.cfg.Metrics.Error(deadletter.SourceRabbitMQ, bookkeeper.ErrorAck)
			return fmt.Errorf("ack %d deliveries of %s: %w", len(batch), queue, err)
		}
	}
}

// fill adds deliveries that are ready, and those arriving within
// BatchWait, to batch, up to BatchSize. It reports false when deliveries
// closed.
func (c *Consumer) fill(ctx context.Context, deliveries <-chan amqp.Delivery, batch []amqp.Delivery) ([]amqp.Delivery, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for len(batch) < c.cfg.BatchSize {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return batch, false
			}
			batch = append(batch, d)
			continue
		default:
		}
		if c.cfg.BatchWait < 0 {
			return batch, true
		}
		if timer == nil {
			timer = time.NewTimer(c.cfg.BatchWait)
		}
		select {
		case d, ok := <-deliveries:
			if !ok {
				return batch, false
			}
			batch = append(batch, d)
		case <-timer.C:
			return batch, true
		case <-ctx.Done():
			return batch, true
		}
	}
	return batch, true
}
