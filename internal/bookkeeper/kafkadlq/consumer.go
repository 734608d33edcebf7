package kafkadlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
)

// Recorder stores batches of dead letters, blocking until they are
// committed or ctx ends; *bookkeeper.Recorder implements it.
type Recorder interface {
	Record(ctx context.Context, source deadletter.Source, letters []bookkeeper.Letter) ([]deadletter.Recorded, error)
}

// Defaults of Config (DESIGN.md §5 for the names).
const (
	DefaultGroupID      = "messagekit-bookkeeper"
	DefaultTopic        = "events.dlq"
	DefaultBatchSize    = 100
	DefaultBatchWait    = 5 * time.Millisecond
	DefaultClientID     = "messagekit-dlq-bookkeeper"
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 10 * time.Second
)

// Config configures a Consumer. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the bootstrap brokers (KAFKA_BROKERS). Required.
	Brokers []string
	// GroupID is the consumer group (KAFKA_GROUP_ID); default
	// DefaultGroupID. A new group starts at the earliest offset.
	GroupID string
	// Topics are the DLQ topics (DLQ_KAFKA_TOPICS); default [DefaultTopic].
	Topics []string
	// EventTypes are the patterns (DLQ_KAFKA_EVENT_TYPES, RabbitMQ topic
	// binding syntax, see [MatchEventType]) of the event types this
	// bookkeeper stores; empty or "#" stores every dead letter. Records of
	// other types are acknowledged without being stored: on a DLQ topic
	// shared by several producers' databases, each bookkeeper has a
	// consumer group of its own and keeps its producers' dead letters.
	// Records whose event type is unknown are stored by every bookkeeper.
	EventTypes []string
	// BatchSize is the most records of one partition stored in one
	// transaction; default DefaultBatchSize.
	BatchSize int
	// BatchWait is how long a batch waits for more records once one has
	// arrived; default DefaultBatchWait; negative means not at all.
	BatchWait time.Duration
	// ClientID is the Kafka client id; default DefaultClientID.
	ClientID string
	// Version is the Kafka protocol version to speak; zero means sarama's
	// default (2.8).
	Version sarama.KafkaVersion
	// Security is how Kafka is reached (TLS, SASL); the zero value is
	// plaintext. Its description goes into the errors of failed
	// connections.
	Security kafkasecurity.Config
	// ReconnectMin and ReconnectMax bound the doubling wait after the
	// group fails; default DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// Recorder stores the dead letters. Required.
	Recorder Recorder
	// Logger gets group events; nil discards.
	Logger *slog.Logger
	// Metrics counts consumer and commit errors; nil counts nothing.
	Metrics *bookkeeper.Metrics
}

// Consumer consumes Kafka DLQ topics in a consumer group and hands each
// partition's records, batch by batch, to its Recorder. It marks a batch's
// offsets only after the Recorder committed it (sarama commits marked
// offsets every second and when the group closes). While the Recorder
// blocks (PostgreSQL down), the partition's goroutine blocks with it and
// sarama stops fetching for that partition once its buffer is full.
type Consumer struct {
	cfg Config
	log *slog.Logger
	bookkeeper.Supervisor
}

// New returns a Consumer for cfg, or an error when Brokers or Recorder is
// missing or a topic name is empty.
func New(cfg Config) (*Consumer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkadlq: Config.Brokers is required")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("kafkadlq: Config.Recorder is required")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = DefaultGroupID
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = []string{DefaultTopic}
	}
	if len(cfg.EventTypes) == 1 && cfg.EventTypes[0] == "#" {
		cfg.EventTypes = nil // every type: skip the matching
	}
	for _, t := range cfg.Topics {
		if t == "" {
			return nil, errors.New("kafkadlq: empty topic name")
		}
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = DefaultBatchWait
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = DefaultReconnectMax
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	if _, err := cfg.Security.NewSarama(""); err != nil {
		return nil, fmt.Errorf("kafkadlq: %w", err)
	}
	c := &Consumer{cfg: cfg, log: cfg.Logger, Supervisor: bookkeeper.Supervisor{
		Name: "kafka dead-letter consumer", Source: deadletter.SourceKafka,
		Min: cfg.ReconnectMin, Max: cfg.ReconnectMax,
		Logger: cfg.Logger, LogAttrs: []slog.Attr{slog.Any("topics", cfg.Topics)}, Metrics: cfg.Metrics,
	}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c *Consumer) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	if c.cfg.Version != (sarama.KafkaVersion{}) {
		sc.Version = c.cfg.Version
	}
	sc.ClientID = c.cfg.ClientID
	sc.Net.DialTimeout = 10 * time.Second // sarama's dials do not watch the context
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Return.Errors = true
	// Dead letters may be as large as the largest record a broker accepts.
	sc.Consumer.Fetch.Max = 0
	_ = c.cfg.Security.Apply(sc) // New checked it
	return sc
}

// Run consumes until ctx ends and returns nil then, recreating the group
// with backoff when it fails. On the way out the group commits the offsets
// marked so far and leaves.
func (c *Consumer) Run(ctx context.Context) error { return c.Supervisor.Run(ctx, c.session) }

// session runs one consumer group until it fails or ctx ends. consumed
// reports whether a group session started.
func (c *Consumer) session(ctx context.Context) (bool, error) {
	group, err := sarama.NewConsumerGroup(c.cfg.Brokers, c.cfg.GroupID, c.saramaConfig())
	err = c.cfg.Security.Explain(err)
	if err != nil {
		return false, fmt.Errorf("create consumer group %s: %w", c.cfg.GroupID, err)
	}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range group.Errors() {
			c.cfg.Metrics.Error(deadletter.SourceKafka, bookkeeper.ErrorConsume)
			c.log.Warn("kafka dead-letter consumer error", slog.Any("error", err))
		}
	}()
	h := &handler{c: c}
	for ctx.Err() == nil {
		if err = group.Consume(ctx, c.cfg.Topics, h); err != nil {
			break
		}
	}
	closeErr := group.Close()
	<-errsDone
	if ctx.Err() != nil {
		return h.started.Load(), nil
	}
	return h.started.Load(), errors.Join(err, closeErr)
}

// handler is the sarama.ConsumerGroupHandler of one group.
type handler struct {
	c       *Consumer
	started atomic.Bool
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.started.Store(true)
	h.c.SetConsuming()
	h.c.log.Info("consuming kafka dead-letter topics", slog.Any("topics", h.c.cfg.Topics),
		slog.String("group", h.c.cfg.GroupID), slog.Any("claims", s.Claims()))
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim stores one partition's records batch by batch, marking a
// batch's offsets once it is committed. It returns when the claim ends
// (rebalance, shutdown); a batch not committed by then is not marked and
// is read again by the partition's next owner.
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := s.Context()
	c := h.c
	msgs := claim.Messages()
	batch := make([]*sarama.ConsumerMessage, 0, c.cfg.BatchSize)
	letters := make([]bookkeeper.Letter, 0, c.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			batch = append(batch, m)
		}
		batch = c.fill(ctx, msgs, batch)
		letters = letters[:0]
		for _, m := range batch {
			if l := Parse(m); c.owns(l.EventType) {
				letters = append(letters, l)
			}
		}
		if len(letters) == 0 { // all another bookkeeper's
			s.MarkMessage(batch[len(batch)-1], "")
			continue
		}
		if _, err := c.cfg.Recorder.Record(ctx, deadletter.SourceKafka, letters); err != nil {
			if ctx.Err() != nil {
				return nil // not committed: not marked
			}
			return fmt.Errorf("record %d dead letters of %s/%d: %w", len(batch), claim.Topic(), claim.Partition(), err)
		}
		s.MarkMessage(batch[len(batch)-1], "")
	}
}

// fill adds the records that are ready, and those arriving within
// BatchWait, to batch, up to BatchSize.
func (c *Consumer) fill(ctx context.Context, msgs <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage) []*sarama.ConsumerMessage {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for len(batch) < c.cfg.BatchSize {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
			continue
		default:
		}
		if c.cfg.BatchWait < 0 {
			return batch
		}
		if timer == nil {
			timer = time.NewTimer(c.cfg.BatchWait)
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}
