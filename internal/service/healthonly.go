package service

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
)

// Dependencies are the services a binary's readiness depends on, reached
// with the same settings as the binary's work.
type Dependencies struct {
	DatabaseURL string
	AMQPURL     string
	// AMQPTLS is the TLS configuration of an amqps:// AMQPURL.
	AMQPTLS      *tls.Config
	KafkaBrokers []string
	// Kafka is how Kafka is reached (TLS, SASL).
	Kafka kafkasecurity.Config
}

// Connect opens a lazily connecting PostgreSQL pool for deps.DatabaseURL,
// closed at shutdown, and registers the readiness checks "postgres",
// "rabbitmq" and "kafka". It returns an error only when the database URL
// is invalid. The pool is sized as NewPool says.
func Connect(ctx context.Context, rt *Runtime, deps Dependencies) (*pgxpool.Pool, error) {
	pool, err := NewPool(ctx, deps.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	rt.OnShutdown("postgres pool", func(context.Context) error { pool.Close(); return nil })
	rt.AddCheck("postgres", health.Postgres(pool))
	rt.AddCheck("rabbitmq", health.RabbitMQTLS(deps.AMQPURL, deps.AMQPTLS))
	kafka, err := health.SecureKafka(deps.KafkaBrokers, deps.Kafka)
	if err != nil {
		return nil, err
	}
	rt.AddCheck("kafka", kafka)
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
