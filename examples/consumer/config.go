package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

// Config is the fulfilment service's configuration, read from the
// environment.
type Config struct {
	DatabaseURL        string  `envconfig:"DATABASE_URL" default:"postgres://localhost:5432/messagekit"`
	AMQPURL            string  `envconfig:"AMQP_URL" default:"amqp://guest:guest@localhost:5672/"`
	AMQPExchange       string  `envconfig:"AMQP_EXCHANGE" default:"events"`            // where the bridge publishes
	AMQPDLX            string  `envconfig:"AMQP_DLX" default:"events.dlx"`             // where rejected messages go
	AMQPConnectionName string  `envconfig:"AMQP_CONNECTION_NAME" default:"fulfilment"` // shown by RabbitMQ's tools
	ConsumerQueue      string  `envconfig:"CONSUMER_QUEUE" default:"fulfilment.orders"`
	ConsumerName       string  `envconfig:"CONSUMER_NAME" default:"fulfilment"`    // dedup key, shared by replicas
	ConsumerQueueType  string  `envconfig:"CONSUMER_QUEUE_TYPE" default:"classic"` // classic, or quorum with at-least-once dead-lettering
	RejectFraction     float64 `envconfig:"REJECT_FRACTION" default:"0"`           // simulated failures, 0..1
	HTTPAddr           string  `envconfig:"HTTP_ADDR" default:":8082"`
	// processed_messages rows of CONSUMER_NAME older than this are pruned
	// every PRUNE_INTERVAL (0 turns pruning off); it must outlive Kafka's
	// retention plus the longest replay window (docs/operations.md).
	RetentionProcessed time.Duration `envconfig:"RETENTION_PROCESSED_MESSAGES" default:"168h"`
	PruneInterval      time.Duration `envconfig:"PRUNE_INTERVAL" default:"5m"`
	LogLevel           slog.Level    `envconfig:"LOG_LEVEL" default:"info"` // debug, info, warn or error
}

// loadConfig reads the environment. Its error names the variable at fault.
func loadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("", &cfg); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return cfg, fmt.Errorf("invalid %s %q: %v", pe.KeyName, pe.Value, pe.Err)
		}
		return cfg, err
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	for _, v := range []struct{ name, value string }{
		{"DATABASE_URL", c.DatabaseURL},
		{"AMQP_URL", c.AMQPURL},
		{"AMQP_EXCHANGE", c.AMQPExchange},
		{"AMQP_DLX", c.AMQPDLX},
		{"CONSUMER_QUEUE", c.ConsumerQueue},
		{"CONSUMER_NAME", c.ConsumerName},
	} {
		if v.value == "" {
			return fmt.Errorf("%s must not be empty", v.name)
		}
	}
	if c.RetentionProcessed < 0 {
		return fmt.Errorf("RETENTION_PROCESSED_MESSAGES must not be negative, got %v", c.RetentionProcessed)
	}
	if c.PruneInterval < 0 {
		return fmt.Errorf("PRUNE_INTERVAL must not be negative, got %v", c.PruneInterval)
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return fmt.Errorf("invalid DATABASE_URL: want a postgres:// URL (%v)", err)
	}
	if _, err := amqp.ParseURI(c.AMQPURL); err != nil { // its error may show the password
		return errors.New("invalid AMQP_URL: want amqp://user:password@host:port/vhost (or amqps://)")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("invalid HTTP_ADDR %q: want host:port or :port", c.HTTPAddr)
	}
	if _, err := amqpconsumer.QueueArgs(c.ConsumerQueueType); err != nil {
		return fmt.Errorf("invalid CONSUMER_QUEUE_TYPE: %v", err)
	}
	if math.IsNaN(c.RejectFraction) || c.RejectFraction < 0 || c.RejectFraction > 1 {
		return fmt.Errorf("invalid REJECT_FRACTION %v: want a number from 0 to 1", c.RejectFraction)
	}
	return nil
}
