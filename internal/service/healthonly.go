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

// Connect opens a lazily connecting PostgreSQL pool for deps.DatabaseURL,
// closed at shutdown, and registers the readiness checks "postgres",
// "rabbitmq" and "kafka". It returns an error only when the database URL
// is invalid.
func Connect(ctx context.Context, rt *Runtime, deps Dependencies) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, deps.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	rt.OnShutdown("postgres pool", func(context.Context) error { pool.Close(); return nil })
	rt.AddCheck("postgres", health.Postgres(pool))
	rt.AddCheck("rabbitmq", health.RabbitMQ(deps.AMQPURL))
	rt.AddCheck("kafka", health.Kafka(deps.KafkaBrokers))
	return pool, nil
}

// HealthOnly is the work loop of a binary whose real loop has not landed yet:
// it Connects, reports ready, and waits for ctx.
func HealthOnly(ctx context.Context, rt *Runtime, deps Dependencies) error {
	if _, err := Connect(ctx, rt, deps); err != nil {
		return err
	}
	rt.SetReady()
	<-ctx.Done()
	return nil
}
