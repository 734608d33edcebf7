package main

import (
	"context"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
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
Poison records go to KAFKA_DLQ_TOPIC (default <topic>.dlq). /readyz checks
PostgreSQL, RabbitMQ and Kafka.

The circuit breaker, RabbitMQ reconnection (the process exits with an error
when the connection is lost, to be restarted), the rate limit BRIDGE_MAX_RATE
and tracing spans are not implemented yet.`,
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
		DatabaseURL: cfg.DatabaseURL, AMQPURL: cfg.AMQPURL, KafkaBrokers: cfg.KafkaBrokers,
	})
	if err != nil {
		return err
	}
	b, err := bridge.New(bridge.Config{
		Brokers:        cfg.KafkaBrokers,
		Topics:         cfg.KafkaTopics,
		Group:          cfg.KafkaGroupID,
		DLQTopic:       cfg.KafkaDLQTopic,
		AMQPURL:        cfg.AMQPURL,
		Exchange:       cfg.AMQPExchange,
		DLX:            cfg.AMQPDLX,
		SkipDeclare:    !cfg.AMQPDeclare,
		Store:          bridge.NewPostgresStore(pool),
		BatchSize:      cfg.BatchSize,
		BatchWait:      cfg.BatchWait,
		MaxRecordBytes: cfg.MaxRecordBytes,
		Unroutable:     bridge.UnroutablePolicy(cfg.Unroutable),
		RoutingKey:     cfg.RoutingKey,
		Logger:         rt.Logger(),
		Metrics:        rt.Registry(),
	})
	if err != nil {
		return err
	}
	rt.SetReady()
	return b.Run(ctx)
}
