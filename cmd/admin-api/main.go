package main

import (
	"context"
	"fmt"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/service"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

func main() {
	var cfg Config
	service.Main(spec(&cfg))
}

// spec describes the binary; cfg receives its configuration.
func spec(cfg *Config) service.Spec {
	return service.Spec{
		Name:    "messagekit-admin-api",
		Summary: "inspect, replay and discard dead letters; replay outbox ranges",
		Description: `Serves the admin API under /api/v1 (bearer ADMIN_TOKEN or ADMIN_TOKENS): dead-letter listing,
inspection, replay (one, or in bulk by filter) and discard, failed outbox
events (/dlq) and their retry, outbox replay by time range to OUTBOX_TOPIC
(/replay), outbox statistics and /api/v1/openapi.json; and /health,
/health/outbox without a token. RabbitMQ dead letters go back to their own
queue, Kafka ones to their original topic. It checks PostgreSQL, RabbitMQ and
Kafka on /readyz and applies migrations. With EVENT_CATALOG_PATH or
EVENT_CATALOG_REPO_URL, GET /api/v1/catalog serves the event catalog.`,
		Config:   cfg,
		Common:   &cfg.Common,
		HTTPAddr: &cfg.HTTPAddr,
		Run: func(ctx context.Context, rt *service.Runtime) error {
			return run(ctx, rt, cfg)
		},
	}
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
		return fmt.Errorf("dead-letter store: %w", err)
	}
	metrics, err := adminapi.NewMetrics(rt.Registry())
	if err != nil {
		return err
	}
	// Both connect on first use, so the API starts while a broker is down
	// (readiness reports it).
	queues := adminapi.NewAMQPPublisher(cfg.AMQPURL, cfg.AMQPConnName).WithTLS(cfg.AMQPTLS())
	rt.OnShutdown("rabbitmq publisher", func(context.Context) error { return queues.Close() })
	kafka := adminapi.NewLazyPublisher(func() (adminapi.PublisherCloser, error) {
		sec := cfg.KafkaSecurity()
		sc, err := sec.NewSarama("messagekit-admin-api")
		if err != nil {
			return nil, err
		}
		p, err := outboxsarama.New(cfg.KafkaBrokers, outboxsarama.Config{Sarama: sc})
		if err != nil {
			return nil, sec.Explain(err)
		}
		return p, nil
	})
	rt.OnShutdown("kafka producer", func(context.Context) error { return kafka.Close() })
	cat, err := service.Catalog(ctx, rt, cfg.Catalog)
	if err != nil {
		return err
	}
	tokens, err := cfg.tokens()
	if err != nil {
		return err
	}
	acfg := adminapi.Config{
		DeadLetters: store, DB: pool,
		Token: cfg.AdminToken.Reveal(), Tokens: tokens, ReadOpen: cfg.AdminReadOpen, SlotName: cfg.OutboxSlotName,
		ReplayDestinations: cfg.destinations(), ClaimTimeout: cfg.ReplayClaimTimeout,
		OutboxHealth: adminapi.HealthThresholds{Pending: cfg.OutboxHealthPending,
			StaleAfter: cfg.OutboxHealthStaleAfter, SlotLagBytes: cfg.OutboxHealthSlotLagBytes},
		Service: "messagekit-admin-api", Logger: rt.Logger(), Metrics: metrics,
		Queues: queues, Kafka: kafka, OutboxTopic: cfg.OutboxTopic,
	}
	if cat != nil {
		acfg.Catalog = cat
	}
	api, err := adminapi.New(acfg)
	if err != nil {
		return err
	}
	sweeper := make(chan error, 1)
	go func() { sweeper <- api.Run(ctx) }()
	for _, pattern := range []string{"/api/v1/", "/health", "/health/outbox"} {
		rt.Handle(pattern, api)
	}
	rt.SetReady()
	<-ctx.Done()
	return <-sweeper
}
