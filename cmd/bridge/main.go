package main

import (
	"context"

	"github.com/firstunicorn/messagekit-go/internal/service"
)

func main() {
	var cfg Config
	service.Main(service.Spec{
		Name:    "messagekit-bridge",
		Summary: "republish Kafka events to RabbitMQ, at least once and in partition order",
		Description: `This build only serves health and metrics: the Kafka-to-RabbitMQ work loop
is not implemented yet and arrives in a later release. It checks PostgreSQL,
RabbitMQ and Kafka on /readyz and applies migrations.`,
		Config:   &cfg,
		Common:   &cfg.Common,
		HTTPAddr: &cfg.HTTPAddr,
		Run: func(ctx context.Context, rt *service.Runtime) error {
			return run(ctx, rt, &cfg)
		},
	})
}

func run(ctx context.Context, rt *service.Runtime, cfg *Config) error {
	return service.HealthOnly(ctx, rt, service.Dependencies{
		DatabaseURL: cfg.DatabaseURL, AMQPURL: cfg.AMQPURL, KafkaBrokers: cfg.KafkaBrokers,
	})
}
