package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/service"
)

func main() {
	var cfg Config
	service.Main(service.Spec{
		Name:    "messagekit-bridge",
		Summary: "republish Kafka events to RabbitMQ, at least once and in partition order",
		Description: `Consumes KAFKA_TOPICS in the consumer group KAFKA_GROUP_ID and publishes every
new event to AMQP_EXCHANGE with publisher confirms, deduplicating on the event id
in PostgreSQL (processed_messages) and marking offsets only after confirms.
Poison records go to KAFKA_DLQ_TOPIC (default <topic>.dlq). A lost RabbitMQ
connection is reopened with backoff and the unconfirmed records published again.
A circuit breaker around PostgreSQL pauses consumption while it is open.
BRIDGE_MAX_RATE caps the publish rate. /readyz checks PostgreSQL, RabbitMQ,
Kafka, the circuit breaker and kafka_consumer (down while Kafka refuses the
group its topics for want of an ACL).

Every publish is traced (OTEL_* variables): its span is the child of the
record's traceparent and its context goes into the AMQP headers. /metrics
includes messagekit_bridge_consumer_lag_records{topic,partition}.

With EVENT_CATALOG_PATH or EVENT_CATALOG_REPO_URL, every event is checked
against the event catalog: type and source listed, data valid against the
JSON Schema of its dataVersion. In EVENT_CATALOG_STRICT_MODE a violation is
dead-lettered with stage VALIDATE; otherwise it is bridged and counted in
messagekit_bridge_catalog_violations_total{kind}.`,
		Config:   &cfg,
		Common:   &cfg.Common,
		HTTPAddr: &cfg.HTTPAddr,
		Run: func(ctx context.Context, rt *service.Runtime) error {
			return run(ctx, rt, &cfg)
		},
	})
}

// bridgeMemoryHeadroom is the soft memory limit's allowance above
// BRIDGE_MAX_INFLIGHT_BYTES: the runtime, the clients' buffers and the
// records fetched after fetching paused.
const bridgeMemoryHeadroom = 32 << 20

func run(ctx context.Context, rt *service.Runtime, cfg *Config) error {
	// The budget bounds the records alive; between collections the heap
	// may grow to twice what is alive. Unless GOMEMLIMIT says otherwise, a
	// soft limit keeps peak RSS under the budget plus 64 MiB (ADR 0025).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MaxInflightBytes + bridgeMemoryHeadroom)
	}
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return err
		}
		rt.OnShutdown("cpu profile", stop)
	}
	pool, err := service.Connect(ctx, rt, service.Dependencies{
		DatabaseURL: cfg.DatabaseURL, AMQPURL: cfg.AMQPURL, AMQPTLS: cfg.AMQPTLS(),
		KafkaBrokers: cfg.KafkaBrokers, Kafka: cfg.KafkaSecurity(),
	})
	if err != nil {
		return err
	}
	cat, err := service.Catalog(ctx, rt, cfg.Catalog)
	if err != nil {
		return err
	}
	bcfg := bridge.Config{
		Brokers:          cfg.KafkaBrokers,
		Topics:           cfg.KafkaTopics,
		Group:            cfg.KafkaGroupID,
		DLQTopic:         cfg.KafkaDLQTopic,
		AMQPURL:          cfg.AMQPURL,
		AMQPTLS:          cfg.AMQPTLS(),
		KafkaSecurity:    cfg.KafkaSecurity(),
		ConnectionName:   cfg.AMQPConnName,
		Exchange:         cfg.AMQPExchange,
		DLX:              cfg.AMQPDLX,
		SkipDeclare:      !cfg.AMQPDeclare,
		Store:            bridge.NewPostgresStore(pool),
		BatchSize:        cfg.BatchSize,
		BatchWait:        cfg.BatchWait,
		FetchMinBytes:    cfg.FetchMinBytes,
		FetchMaxWait:     cfg.FetchMaxWait,
		MaxRecordBytes:   cfg.MaxRecordBytes,
		MaxInflightBytes: cfg.MaxInflightBytes,
		Unroutable:       bridge.UnroutablePolicy(cfg.Unroutable),
		RoutingKey:       cfg.RoutingKey,
		MaxRate:          cfg.MaxRate,
		BreakerTimeout:   cfg.BreakerTimeout,
		Logger:           rt.Logger(),
		Metrics:          rt.Registry(),
		TracerProvider:   rt.TracerProvider(),
		Propagator:       rt.Propagator(),
	}
	if cat != nil {
		bcfg.Catalog = cat
	}
	b, err := bridge.New(bcfg)
	if err != nil {
		return err
	}
	rt.AddCheck("breaker", health.CheckFunc(b.Check))
	rt.AddCheck("kafka_consumer", health.CheckFunc(b.ConsumerCheck))
	rt.SetReady()
	return b.Run(ctx)
}
