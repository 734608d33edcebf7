package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
)

// Defaults of [Config].
const (
	// DefaultFetchMinBytes is the default [Config.FetchMinBytes].
	DefaultFetchMinBytes = 16 << 10
	// DefaultFetchMaxWait is the default [Config.FetchMaxWait].
	DefaultFetchMaxWait = 20 * time.Millisecond
	// DefaultBatchSize is the default [Config.BatchSize].
	DefaultBatchSize = 500
	// DefaultMaxRecordBytes is the default [Config.MaxRecordBytes]: 16 MiB,
	// RabbitMQ 4's default message size limit.
	DefaultMaxRecordBytes = 16 << 20
	// DefaultRoutingKey is the default [Config.RoutingKey].
	DefaultRoutingKey = "{eventType}"
	// DefaultExchange is the default [Config.Exchange].
	DefaultExchange = "events"
	// DefaultNackAttempts is the default [Config.NackAttempts].
	DefaultNackAttempts = 5
	// DefaultBackoff is the first wait before a retry (a nacked publish, a
	// dead-letter write, a dedup round trip, reaching a broker); waits
	// double up to DefaultMaxBackoff.
	DefaultBackoff = 200 * time.Millisecond
	// DefaultMaxBackoff caps the doubling waits.
	DefaultMaxBackoff = 30 * time.Second
	// DefaultOperationTimeout is the default [Config.OperationTimeout].
	DefaultOperationTimeout = 30 * time.Second
	// DefaultConnectionName is the default [Config.ConnectionName].
	DefaultConnectionName = "messagekit-bridge"
	// DefaultBreakerFailures is the default [Config.BreakerFailures].
	DefaultBreakerFailures = 5
	// DefaultBreakerTimeout is the default [Config.BreakerTimeout].
	DefaultBreakerTimeout = 30 * time.Second
)

// UnroutablePolicy says what the bridge does with a message RabbitMQ
// returns as unroutable (DESIGN.md §3, BRIDGE_UNROUTABLE).
type UnroutablePolicy string

// Unroutable policies.
const (
	// UnroutableDrop counts the message in
	// messagekit_bridge_unroutable_total{routing_key}, logs it at most once a
	// minute per routing key and moves on. The default.
	UnroutableDrop UnroutablePolicy = "drop"
	// UnroutableDLQ dead-letters the record with stage AMQP_UNROUTABLE.
	UnroutableDLQ UnroutablePolicy = "dlq"
)

// Config configures a [Bridge]. Brokers, Topics, Group, AMQPURL and Store
// are required; every other zero value means the documented default.
type Config struct {
	// Brokers are the Kafka bootstrap addresses (KAFKA_BROKERS).
	Brokers []string
	// Topics are consumed (KAFKA_TOPICS).
	Topics []string
	// Group is the consumer group id (KAFKA_GROUP_ID) and the dedup
	// consumer name in processed_messages.
	Group string
	// DLQTopic receives every poison record; empty means
	// "<source topic>.dlq" (KAFKA_DLQ_TOPIC).
	DLQTopic string

	// AMQPURL is the RabbitMQ URL (AMQP_URL).
	AMQPURL string
	// AMQPTLS is the TLS configuration of an amqps:// AMQPURL (CA, client
	// certificate, server name); nil means the system roots.
	AMQPTLS *tls.Config
	// Exchange is the exchange events are published to (AMQP_EXCHANGE);
	// empty means [DefaultExchange].
	Exchange string
	// DLX, when not empty, is declared with Exchange (AMQP_DLX), so that
	// consumer queues can name it as their dead-letter exchange.
	DLX string
	// ConnectionName is the client-provided name of the bridge's AMQP
	// connection, shown by the management UI and rabbitmqctl; empty means
	// [DefaultConnectionName].
	ConnectionName string
	// SkipDeclare leaves the exchanges undeclared, for brokers where the
	// bridge may not declare (AMQP_DECLARE=false). By default both are
	// declared durable topic exchanges, not auto-delete, without arguments.
	SkipDeclare bool

	// Store keeps the dedup keys of bridged events, usually
	// NewPostgresStore(pool).
	Store Store

	// BatchSize is the most records of one partition published before
	// waiting for confirms, and so the most published and not recorded (a
	// crash may publish them twice); zero means [DefaultBatchSize].
	BatchSize int
	// BatchWait is the longest wait to fill a batch after its first record
	// when the partition was idle; zero means no wait: a batch takes what
	// has been fetched. A busy partition never waits: what arrived while
	// it worked on a batch is the next one.
	BatchWait time.Duration
	// FetchMinBytes is the least data a Kafka fetch waits for, up to
	// FetchMaxWait (Kafka's fetch.min.bytes and fetch.max.wait.ms): a
	// partition fetched a few records at a time costs a fetch, a batch and
	// a publish round per few records. Zero means [DefaultFetchMinBytes],
	// or Sarama's own setting when Sarama is given; 1 answers every fetch
	// as soon as there is a record.
	FetchMinBytes int
	// FetchMaxWait is the longest a fetch waits for FetchMinBytes, and so
	// what an idle bridge's fetches cost: one per FetchMaxWait and broker.
	// Zero means [DefaultFetchMaxWait], or Sarama's own setting when Sarama
	// is given.
	FetchMaxWait time.Duration
	// MaxInflightBytes bounds the record bytes (keys, values, headers)
	// taken from Kafka and not yet confirmed and recorded, across all
	// partitions (BRIDGE_MAX_INFLIGHT_BYTES): at it, fetching pauses until
	// batches complete; nothing is dropped or reordered. Records fetched
	// before the pause still arrive, so it is exceeded by at most about one
	// fetch response (a record batch per partition). Zero means
	// [DefaultMaxInflightBytes].
	MaxInflightBytes int64
	// MaxRecordBytes: a larger record (key plus value) is dead-lettered with
	// stage RECORD_TOO_LARGE; zero means [DefaultMaxRecordBytes].
	MaxRecordBytes int
	// Unroutable is the policy for returned messages; empty means
	// [UnroutableDrop].
	Unroutable UnroutablePolicy
	// RoutingKey is the routing key template; empty means
	// [DefaultRoutingKey]. See [ParseRoutingKey] for its placeholders.
	RoutingKey string
	// NackAttempts is how many times a record is published before a nack
	// dead-letters it with stage AMQP_NACK; zero means
	// [DefaultNackAttempts].
	NackAttempts int
	// Backoff is the first wait of every retry; zero means [DefaultBackoff].
	Backoff time.Duration
	// OperationTimeout bounds one broker or database operation of an
	// in-flight batch (a confirm wait, a dedup round trip), so that a
	// graceful stop cannot hang; zero means [DefaultOperationTimeout].
	OperationTimeout time.Duration

	// MaxRate is the most records per second all partitions together
	// publish (first attempts; a rate-limited record waits before it is
	// published); zero means unlimited.
	MaxRate float64
	// BreakerFailures is how many consecutive failures of the dedup store
	// open the circuit breaker; zero means [DefaultBreakerFailures].
	BreakerFailures int
	// BreakerTimeout is how long the breaker stays open before one probe
	// (half-open); zero means [DefaultBreakerTimeout].
	BreakerTimeout time.Duration

	// Sarama is the Kafka client configuration, copied, not modified; nil
	// means sarama.NewConfig(). Whatever it says, the bridge sets what its
	// guarantees rest on: Version at least 2.8.0, the cooperative-sticky
	// balance strategy, the oldest offset for a new group, auto-commit of
	// marked offsets, and an idempotent dead-letter producer waiting for all
	// in-sync replicas.
	Sarama *sarama.Config
	// KafkaSecurity is how Kafka is reached (TLS, SASL), applied over
	// Sarama; its description goes into the errors of failed connections.
	KafkaSecurity kafkasecurity.Config
	// Catalog, when set, checks every decoded event against an event
	// catalog (DESIGN.md §13, EVENT_CATALOG_*). A violation is counted in
	// messagekit_bridge_catalog_violations_total{kind}; in strict mode the
	// record is dead-lettered with stage VALIDATE and the violation as its
	// exception message, otherwise it is bridged. Nil means no catalog.
	Catalog Catalog
	// Logger receives session events, dead letters and retries; nil
	// discards them.
	Logger *slog.Logger
	// Metrics registers the messagekit_bridge_* metrics; nil means none.
	Metrics prometheus.Registerer
	// TracerProvider creates the span of every published record; nil means
	// a no-op provider (the trace context of a record is then passed on
	// unchanged).
	TracerProvider trace.TracerProvider
	// Propagator extracts a record's trace context from its Kafka headers
	// and injects the span's into the AMQP headers; nil means W3C
	// TraceContext (traceparent, tracestate).
	Propagator propagation.TextMapPropagator
}

// Catalog is the event catalog the bridge checks events against;
// *catalog.Watcher and *catalog.Catalog satisfy it. Both methods may be
// called from several goroutines at once.
type Catalog interface {
	// Inspect returns the first catalog rule e breaks, or nil.
	Inspect(e contracts.Envelope) *catalog.Violation
	// Strict reports whether a violation is dead-lettered.
	Strict() bool
}

// withDefaults validates c and fills its defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case len(c.Brokers) == 0:
		return c, errors.New("bridge: Config.Brokers is required")
	case len(c.Topics) == 0:
		return c, errors.New("bridge: Config.Topics is required")
	case c.Group == "":
		return c, errors.New("bridge: Config.Group is required")
	case c.AMQPURL == "":
		return c, errors.New("bridge: Config.AMQPURL is required")
	case c.Store == nil:
		return c, errors.New("bridge: Config.Store is required")
	case c.MaxInflightBytes < 0:
		return c, fmt.Errorf("bridge: Config.MaxInflightBytes %d is negative", c.MaxInflightBytes)
	case c.BatchSize < 0, c.BatchWait < 0, c.FetchMinBytes < 0, c.FetchMaxWait < 0, c.MaxRecordBytes < 0, c.NackAttempts < 0,
		c.Backoff < 0, c.OperationTimeout < 0, c.BreakerFailures < 0, c.BreakerTimeout < 0:
		return c, errors.New("bridge: Config.BatchSize, BatchWait, FetchMinBytes, FetchMaxWait, MaxRecordBytes, NackAttempts, Backoff, OperationTimeout, BreakerFailures and BreakerTimeout must not be negative")
	case c.MaxRate < 0 || math.IsNaN(c.MaxRate) || math.IsInf(c.MaxRate, 0):
		return c, fmt.Errorf("bridge: Config.MaxRate %v: want a finite number of records per second, 0 for unlimited", c.MaxRate)
	}
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FetchMinBytes == 0 && c.Sarama == nil {
		c.FetchMinBytes = DefaultFetchMinBytes
	}
	if c.FetchMaxWait == 0 && c.Sarama == nil {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	switch c.Unroutable {
	case "":
		c.Unroutable = UnroutableDrop
	case UnroutableDrop, UnroutableDLQ:
	default:
		return c, fmt.Errorf("bridge: Config.Unroutable %q: want %q or %q", c.Unroutable, UnroutableDrop, UnroutableDLQ)
	}
	if c.RoutingKey == "" {
		c.RoutingKey = DefaultRoutingKey
	}
	if c.NackAttempts == 0 {
		c.NackAttempts = DefaultNackAttempts
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = DefaultOperationTimeout
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerTimeout == 0 {
		c.BreakerTimeout = DefaultBreakerTimeout
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	return c, nil
}

// saramaConfig copies user (or a new config) and sets what the bridge's
// guarantees rest on, and how it fetches: c's fetch sizes and a claim
// buffer of at least a batch.
func saramaConfig(user *sarama.Config, c *Config) *sarama.Config {
	var sc *sarama.Config
	if user != nil {
		c := *user
		sc = &c
	} else {
		sc = sarama.NewConfig()
		sc.ClientID = "messagekit-bridge"
	}
	if !sc.Version.IsAtLeast(sarama.V2_8_0_0) {
		sc.Version = sarama.V2_8_0_0
	}
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	// Each partition's intake empties the claim's channel as records
	// arrive and counts them against MaxInflightBytes; records in sarama's
	// channel are not counted yet, so it holds few.
	sc.ChannelBufferSize = fetchBuffer
	// A fetch response holds up to Fetch.MaxBytes (and at least one record
	// batch), a partition's share up to Fetch.Default: kept to a sixteenth
	// of the budget, what arrives after fetching paused stays a fraction
	// of it.
	share := max(1, c.MaxInflightBytes/16)
	sc.Consumer.Fetch.Default = int32(min(int64(sc.Consumer.Fetch.Default), share))
	sc.Consumer.Fetch.MaxBytes = int32(min(int64(sc.Consumer.Fetch.MaxBytes), share))
	if c.FetchMinBytes > 0 {
		sc.Consumer.Fetch.Min = int32(min(c.FetchMinBytes, math.MaxInt32))
	}
	if c.FetchMaxWait > 0 {
		sc.Consumer.MaxWaitTime = c.FetchMaxWait
	}
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Return.Errors = false
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1 // idempotence needs it
	if sc.Producer.Retry.Max < 1 {
		sc.Producer.Retry.Max = 3
	}
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	// Dead letters of RECORD_TOO_LARGE can be as large as the broker let the
	// original be; the broker, not the client, is the judge of that.
	sc.Producer.MaxMessageBytes = int(sarama.MaxRequestSize) - 1024
	return sc
}

// RoutingKey renders the routing key of a message from a template.
// Create one with [ParseRoutingKey]; the zero value renders "". A
// RoutingKey is a plain value, safe for concurrent use.
type RoutingKey struct {
	parts []keyPart
}

type keyPart struct {
	literal string
	field   string // one of the placeholder names, or "" for a literal
}

// Placeholders a routing key template may use.
const (
	// PlaceholderEventType is the envelope's eventType.
	PlaceholderEventType = "{eventType}"
	// PlaceholderAggregateType is the Kafka header aggregateType (the
	// outbox row's aggregate type), empty when the record has none.
	PlaceholderAggregateType = "{aggregateType}"
	// PlaceholderSource is the envelope's source service.
	PlaceholderSource = "{source}"
)

// ParseRoutingKey parses a template of literal text and the placeholders
// [PlaceholderEventType], [PlaceholderAggregateType] and
// [PlaceholderSource], e.g. "{source}.{eventType}". It fails on an unknown
// or unclosed placeholder and on a template longer than 255 bytes (AMQP's
// routing key limit).
func ParseRoutingKey(tmpl string) (RoutingKey, error) {
	if len(tmpl) > 255 {
		return RoutingKey{}, fmt.Errorf("bridge: routing key template longer than 255 bytes")
	}
	var rk RoutingKey
	for s := tmpl; s != ""; {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			rk.parts = append(rk.parts, keyPart{literal: s})
			break
		}
		if i > 0 {
			rk.parts = append(rk.parts, keyPart{literal: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return RoutingKey{}, fmt.Errorf("bridge: routing key template %q: unclosed placeholder", tmpl)
		}
		name := s[i : i+j+1]
		switch name {
		case PlaceholderEventType, PlaceholderAggregateType, PlaceholderSource:
		default:
			return RoutingKey{}, fmt.Errorf("bridge: routing key template %q: unknown placeholder %s (want %s, %s or %s)",
				tmpl, name, PlaceholderEventType, PlaceholderAggregateType, PlaceholderSource)
		}
		rk.parts = append(rk.parts, keyPart{field: name})
		s = s[i+j+1:]
	}
	return rk, nil
}

// Render returns the routing key for an event of eventType from source,
// with aggregateType from its Kafka header ("" when absent).
func (rk RoutingKey) Render(eventType, aggregateType, source string) string {
	if len(rk.parts) == 1 && rk.parts[0].field == PlaceholderEventType {
		return eventType
	}
	var b strings.Builder
	for _, p := range rk.parts {
		switch p.field {
		case "":
			b.WriteString(p.literal)
		case PlaceholderEventType:
			b.WriteString(eventType)
		case PlaceholderAggregateType:
			b.WriteString(aggregateType)
		case PlaceholderSource:
			b.WriteString(source)
		}
	}
	return b.String()
}
