package kafkaconsumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// Defaults of [Config].
const (
	// DefaultMaxBatch is the default [Config.MaxBatch].
	DefaultMaxBatch = 64
	// DefaultBackoff is the first wait before retrying the connection, a
	// consumer group session or a dead-letter write; it doubles up to
	// DefaultMaxBackoff.
	DefaultBackoff = 500 * time.Millisecond
	// DefaultMaxBackoff caps the doubling waits.
	DefaultMaxBackoff = 30 * time.Second
)

// defaultVersion is the Kafka protocol version of the sarama configuration
// built when Config.Sarama is nil.
func defaultVersion() sarama.KafkaVersion { return sarama.V2_8_0_0 }

// className names this package's consumer in [contracts.DLQHeaderClassName].
var className = func() string {
	t := reflect.TypeFor[Consumer]()
	return t.PkgPath() + "." + t.Name()
}()

// Config configures a [Consumer]. Brokers, Topics, Consumer, Store and
// Handler are required; every other zero value means the documented
// default.
type Config struct {
	// Brokers are the bootstrap addresses (host:port).
	Brokers []string
	// Topics to consume.
	Topics []string
	// Consumer is the dedup consumer name (processed_messages.consumer_name),
	// the default consumer group and the connector name written on dead
	// letters.
	Consumer string
	// Group is the consumer group id; empty means Consumer.
	Group string
	// Store keeps the claims, usually dedup.NewPostgres(pool).
	Store dedup.Store
	// Handler handles each new event inside the dedup transaction, usually
	// a *dedup.Router (with Fallback set to dedup.Ignore when the topics
	// carry event types this consumer does not care about).
	Handler dedup.Handler

	// DLQTopic receives the dead letters of every topic; empty means
	// "<topic>.dlq" for each source topic (DESIGN.md §3).
	DLQTopic string
	// MaxBatch is the most records of one partition handled in one
	// transaction. Zero means [DefaultMaxBatch]. A batch takes the records
	// already fetched and never waits to fill up.
	MaxBatch int
	// Retry bounds the in-process retries of transient handler failures.
	Retry dedup.Retry

	// Sarama is the client configuration, copied, not modified. Nil means
	// sarama.NewConfig() with Version 2.8.0 (spoken by Kafka 2.8 and
	// later brokers, and by kfake), the oldest offset
	// for a new group (DESIGN.md §2: events written before the first start
	// are not skipped), acks from all in-sync replicas for dead letters and
	// a client id derived from Consumer. The consumer always sets
	// Producer.Return.Successes and Producer.Return.Errors, which its
	// dead-letter producer needs.
	Sarama *sarama.Config

	// Logger receives session events, dead letters and retries; nil
	// discards them.
	Logger *slog.Logger
	// Metrics registers the messagekit_consumer_* metrics of the
	// dedup.Processor; nil means no metrics.
	Metrics prometheus.Registerer
}

// Consumer consumes Kafka topics in a consumer group and runs each new
// event's handler in its dedup transaction; see the package doc. Create it
// with [New] and run it with [Consumer.Run].
type Consumer struct {
	cfg     Config
	sarama  *sarama.Config
	proc    *dedup.Processor
	log     *slog.Logger
	running atomic.Bool
}

// New validates cfg, applies the defaults and returns a Consumer; it does
// not connect. It fails when a required field is missing, MaxBatch is
// negative, the sarama configuration does not validate, or the metrics
// cannot be registered.
func New(cfg Config) (*Consumer, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("kafkaconsumer: Config.Brokers is required")
	case len(cfg.Topics) == 0:
		return nil, errors.New("kafkaconsumer: Config.Topics is required")
	case cfg.Consumer == "":
		return nil, errors.New("kafkaconsumer: Config.Consumer is required")
	case cfg.Store == nil:
		return nil, errors.New("kafkaconsumer: Config.Store is required")
	case cfg.Handler == nil:
		return nil, errors.New("kafkaconsumer: Config.Handler is required")
	case cfg.MaxBatch < 0:
		return nil, errors.New("kafkaconsumer: Config.MaxBatch must not be negative")
	}
	if cfg.Group == "" {
		cfg.Group = cfg.Consumer
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	sc := saramaConfig(cfg.Sarama, cfg.Consumer)
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafkaconsumer: sarama configuration: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("group", cfg.Group)
	proc, err := dedup.NewProcessor(dedup.ProcessorConfig{
		Store: cfg.Store, Consumer: cfg.Consumer, Handler: cfg.Handler,
		Retry: cfg.Retry, Logger: log, Metrics: cfg.Metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("kafkaconsumer: %w", err)
	}
	return &Consumer{cfg: cfg, sarama: sc, proc: proc, log: log.With("consumer", cfg.Consumer)}, nil
}

var invalidClientID = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

func saramaConfig(user *sarama.Config, consumer string) *sarama.Config {
	var sc *sarama.Config
	if user != nil {
		c := *user
		sc = &c
	} else {
		sc = sarama.NewConfig()
		sc.Version = defaultVersion()
		sc.ClientID = "messagekit-" + invalidClientID.ReplaceAllString(consumer, "-")
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
		sc.Producer.RequiredAcks = sarama.WaitForAll
	}
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	return sc
}

// Run consumes until ctx ends and returns nil after a graceful stop: the
// batches in flight are finished, their offsets marked and committed, and
// the group left. Offsets are marked per partition in order, each only
// after its record's transaction committed or its dead letter was written.
//
// Run retries, with backoff, reaching the brokers and consumer group
// sessions that fail; it returns an error only when the dead-letter
// producer or the consumer group cannot be created from a working client
// (a configuration problem). Run must not be called twice at once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("kafkaconsumer: Run called twice")
	}
	defer c.running.Store(false)
	var client sarama.Client
	for wait := DefaultBackoff; ; wait = min(2*wait, DefaultMaxBackoff) {
		var err error
		if client, err = sarama.NewClient(c.cfg.Brokers, c.sarama); err == nil {
			break
		}
		c.log.Warn("cannot reach Kafka; retrying", "brokers", c.cfg.Brokers, "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			return nil
		}
	}
	defer func() { _ = client.Close() }()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("kafkaconsumer: dead-letter producer: %w", err)
	}
	defer func() { _ = producer.Close() }()
	group, err := sarama.NewConsumerGroupFromClient(c.cfg.Group, client)
	if err != nil {
		return fmt.Errorf("kafkaconsumer: consumer group %s: %w", c.cfg.Group, err)
	}
	defer func() { _ = group.Close() }() // runs first: commits and leaves

	h := &groupHandler{c: c, producer: producer}
	wait := DefaultBackoff
	for ctx.Err() == nil {
		err := group.Consume(ctx, c.cfg.Topics, h)
		switch {
		case ctx.Err() != nil:
		case err == nil: // a rebalance ended the session
			wait = DefaultBackoff
		default:
			c.log.Warn("consumer group session failed; retrying", "topics", c.cfg.Topics, "wait", wait, "err", err)
			if !sleep(ctx, wait) {
				return nil
			}
			wait = min(2*wait, DefaultMaxBackoff)
		}
	}
	c.log.Info("stopped")
	return nil
}

// groupHandler runs one consumer group session's claims.
type groupHandler struct {
	c        *Consumer
	producer sarama.SyncProducer
}

func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	h.c.log.Info("session started", "claims", sess.Claims(), "generation", sess.GenerationID())
	return nil
}

func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim handles one partition in order, a batch at a time.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := sess.Context()
	max := h.c.cfg.MaxBatch
	batch := make([]*sarama.ConsumerMessage, 0, max)
	msgs := make([]dedup.Message, 0, max)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batch = append(batch[:0], m)
		}
	fill: // take what has been fetched, without waiting for more
		for len(batch) < max {
			select {
			case m, ok := <-claim.Messages():
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		msgs = msgs[:0]
		for _, m := range batch {
			msgs = append(msgs, dedup.Message{ID: headerValue(m, contracts.KafkaHeaderID), Body: m.Value, Transport: m})
		}
		out, _ := h.c.proc.Process(ctx, msgs) // a prefix when the session ends
		for i, o := range out {
			m := batch[i]
			if o.Result == dedup.DeadLetter && !h.deadLetter(ctx, m, o) {
				return nil // not written: leave it unmarked for the next owner
			}
			sess.MarkMessage(m, "")
		}
		if !h.c.sarama.Consumer.Offsets.AutoCommit.Enable {
			sess.Commit()
		}
		if len(out) < len(batch) {
			return nil
		}
	}
}

// deadLetter writes m to its dead-letter topic, retrying with backoff
// until the write is acknowledged or ctx ends; it reports whether it was.
func (h *groupHandler) deadLetter(ctx context.Context, m *sarama.ConsumerMessage, o dedup.Outcome) bool {
	dl := contracts.DeadLetter{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Connector: h.c.cfg.Consumer, Stage: o.Stage, ClassName: className, Err: o.Err,
	}
	// A record dead-lettered before (and replayed) carries its previous
	// death's headers: drop them so each appears once.
	headers := make([]sarama.RecordHeader, 0, len(m.Headers)+9)
	for _, rh := range m.Headers {
		if rh != nil && !strings.HasPrefix(string(rh.Key), contracts.DLQHeaderPrefix) {
			headers = append(headers, *rh)
		}
	}
	for _, kv := range dl.Headers() {
		headers = append(headers, sarama.RecordHeader{Key: []byte(kv[0]), Value: []byte(kv[1])})
	}
	pm := &sarama.ProducerMessage{
		Topic:     contracts.DeadLetterTopic(h.c.cfg.DLQTopic, m.Topic),
		Headers:   headers,
		Timestamp: m.Timestamp,
	}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	if m.Value != nil {
		pm.Value = sarama.ByteEncoder(m.Value)
	}
	log := h.c.log.With("topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
		"event_id", o.EventID, "event_type", o.EventType, "stage", o.Stage, "dlq", pm.Topic)
	for wait := DefaultBackoff; ; wait = min(2*wait, DefaultMaxBackoff) {
		_, _, err := h.producer.SendMessage(pm)
		if err == nil {
			log.Warn("dead-lettered record", "attempts", o.Attempts, "err", o.Err)
			return true
		}
		log.Error("cannot write dead letter; retrying", "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// headerValue returns the value of m's first header named key, or "".
func headerValue(m *sarama.ConsumerMessage, key string) string {
	for _, rh := range m.Headers {
		if rh != nil && string(rh.Key) == key {
			return string(rh.Value)
		}
	}
	return ""
}

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

// MessageFrom returns the Kafka record of the event a handler is handling,
// e.g. to read a header or its offset. It is there in a [dedup.Handler]'s
// HandleEvent (and so in a [dedup.Router]'s typed handlers), not in a
// [dedup.BatchHandler]'s HandleEvents.
func MessageFrom(ctx context.Context) (*sarama.ConsumerMessage, bool) {
	t, _ := dedup.TransportFrom(ctx)
	m, ok := t.(*sarama.ConsumerMessage)
	return m, ok
}
