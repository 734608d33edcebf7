package service

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/health"
)

// Dependencies are the services a binary's readiness depends on.
type Dependencies struct {
	DatabaseURL  string
	AMQPURL      string
	KafkaBrokers []string
}

// HealthOnly is the work loop of a binary whose real loop has not landed yet:
// it registers readiness checks for deps (PostgreSQL through a lazily
// connecting pool, RabbitMQ, Kafka), reports ready, and waits for ctx. It
// returns an error only when the pool's configuration is invalid.
func HealthOnly(ctx context.Context, rt *Runtime, deps Dependencies) error {
	pool, err := pgxpool.New(ctx, deps.DatabaseURL)
	if err != nil {
		return fmt.Errorf("postgres pool: %w", err)
	}
	rt.OnShutdown("postgres pool", func(context.Context) error { pool.Close(); return nil })
	rt.AddCheck("postgres", health.Postgres(pool))
	rt.AddCheck("rabbitmq", health.RabbitMQ(deps.AMQPURL))
	rt.AddCheck("kafka", health.Kafka(deps.KafkaBrokers))
	rt.SetReady()
	<-ctx.Done()
	return nil
}
