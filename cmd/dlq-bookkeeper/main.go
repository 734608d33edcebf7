package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/amqpdlq"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/kafkadlq"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/service"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

func main() {
	var cfg Config
	service.Main(service.Spec{
		Name:    "messagekit-dlq-bookkeeper",
		Summary: "store dead letters from Kafka DLQ topics and RabbitMQ dead-letter queues",
		Description: `Consumes the Kafka DLQ topics (DLQ_KAFKA_TOPICS, consumer group KAFKA_GROUP_ID)
and the RabbitMQ dead-letter queues (DLQ_QUEUES, bound to AMQP_DLX with
DLQ_BINDINGS), stores every dead letter in dead_letters and marks the
event's outbox_events row failed, in one transaction; a message is
acknowledged only after that commit. Messages that can not be parsed are
stored raw. While PostgreSQL is down, consumption pauses and nothing is
acknowledged. /readyz checks PostgreSQL, RabbitMQ, Kafka, both consumers
and the PostgreSQL circuit breaker.`,
		Config:   &cfg,
		Common:   &cfg.Common,
		HTTPAddr: &cfg.HTTPAddr,
		Run: func(ctx context.Context, rt *service.Runtime) error {
			return run(ctx, rt, &cfg)
		},
	})
}

func run(ctx context.Context, rt *service.Runtime, cfg *Config) error {
	pool, err := service.Connect(ctx, rt, service.Dependencies{
		DatabaseURL: cfg.DatabaseURL, AMQPURL: cfg.AMQPURL, AMQPTLS: cfg.AMQPTLS(),
		KafkaBrokers: cfg.KafkaBrokers, Kafka: cfg.KafkaSecurity(),
	})
	if err != nil {
		return err
	}

	store, err := deadletter.New(pool)
	if err != nil {
		return err
	}
	metrics, err := bookkeeper.NewMetrics(rt.Registry())
	if err != nil {
		return err
	}
	rec, err := bookkeeper.NewRecorder(bookkeeper.Config{
		Store: store, Logger: rt.Logger(), Metrics: metrics, BreakerTimeout: cfg.BreakerTimeout,
	})
	if err != nil {
		return err
	}
	rt.AddCheck("postgres_breaker", health.CheckFunc(rec.Check))

	batchWait := cfg.BatchWait
	if batchWait == 0 {
		batchWait = -1 // the packages read zero as their default
	}
	amqpConsumer, err := amqpdlq.New(amqpdlq.Config{
		URL: cfg.AMQPURL, TLS: cfg.AMQPTLS(), ConnectionName: cfg.AMQPConnName, DLX: cfg.AMQPDLX, SkipDeclare: !cfg.AMQPDeclare,
		Queues: cfg.DLQQueues, Bindings: cfg.DLQBindings, QueueType: cfg.DLQQueueType,
		BatchSize: cfg.BatchSize, BatchWait: batchWait,
		Recorder: rec, Logger: rt.Logger(), Metrics: metrics,
	})
	if err != nil {
		return err
	}
	rt.AddCheck("rabbitmq_consumer", health.CheckFunc(amqpConsumer.Check))
	kafkaConsumer, err := kafkadlq.New(kafkadlq.Config{
		Brokers: cfg.KafkaBrokers, Security: cfg.KafkaSecurity(), GroupID: cfg.KafkaGroupID, Topics: cfg.DLQKafkaTopics, EventTypes: cfg.DLQKafkaTypes,
		BatchSize: cfg.BatchSize, BatchWait: batchWait,
		Recorder: rec, Logger: rt.Logger(), Metrics: metrics,
	})
	if err != nil {
		return err
	}
	rt.AddCheck("kafka_consumer", health.CheckFunc(kafkaConsumer.Check))

	runners := []bookkeeper.Runner{amqpConsumer, kafkaConsumer}
	if cfg.PruneInterval > 0 {
		pruner, err := newPruner(pool, rt, cfg)
		if err != nil {
			return err
		}
		if pruner != nil {
			runners = append(runners, pruner)
		}
	}

	rt.SetReady()
	return bookkeeper.RunAll(ctx, runners...)
}

// newPruner builds the pruner of DESIGN.md §12; nil when every table is
// kept forever.
func newPruner(pool *pgxpool.Pool, rt *service.Runtime, cfg *Config) (*retention.Pruner, error) {
	tables, err := bookkeeper.Retention{
		ProcessedMessages: cfg.RetentionProcessedMessages, DeadLetters: cfg.RetentionDeadLetters,
		Audit: cfg.RetentionAudit, Outbox: cfg.RetentionOutbox,
		OutboxMode: bookkeeper.OutboxMode(cfg.RetentionOutboxMode), BatchSize: cfg.PruneBatchSize,
	}.Tables(pool, rt.Logger())
	if err != nil || len(tables) == 0 {
		return nil, err
	}
	return retention.New(retention.Config{
		Tables: tables, Interval: cfg.PruneInterval, DB: pool,
		Component: "bookkeeper", Logger: rt.Logger(), Metrics: rt.Registry(),
	})
}
