package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/logging"
)

// Common holds the settings every binary has (DESIGN.md §5), to embed in a
// binary's config struct. HTTP_ADDR is not here because its default differs
// between binaries.
type Common struct {
	// DatabaseURL is DATABASE_URL, a PostgreSQL URL or keyword/value string.
	DatabaseURL string `envconfig:"DATABASE_URL" default:"postgres://localhost:5432/messagekit" desc:"PostgreSQL connection string (URL or keyword=value)"`
	// MigrateOnStart is MIGRATE_ON_START: apply migrations before serving.
	MigrateOnStart bool `envconfig:"MIGRATE_ON_START" default:"false" desc:"apply database migrations before serving"`
	// ShutdownTimeout is SHUTDOWN_TIMEOUT, the bound on a graceful shutdown.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s" desc:"time allowed for a graceful shutdown after SIGTERM or SIGINT"`
	// LogLevel is LOG_LEVEL.
	LogLevel logging.Level `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
}

func (c *Common) check() error {
	if c.ShutdownTimeout <= 0 {
		return Invalid("SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String(), "must be positive")
	}
	if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
		// pgconn's message quotes the string with its password masked.
		return &Error{Var: "DATABASE_URL", Redacted: true, Err: err}
	}
	return nil
}

// Kafka holds the Kafka connection settings shared by the binaries that use
// Kafka, to embed in a binary's config struct.
type Kafka struct {
	// KafkaBrokers is KAFKA_BROKERS.
	KafkaBrokers Brokers `envconfig:"KAFKA_BROKERS" default:"localhost:9092" desc:"Kafka bootstrap brokers, comma-separated host:port"`
}

// AMQP holds the RabbitMQ settings shared by the binaries that use RabbitMQ,
// to embed in a binary's config struct.
type AMQP struct {
	// AMQPURL is AMQP_URL.
	AMQPURL string `envconfig:"AMQP_URL" default:"amqp://guest:guest@localhost:5672/" desc:"RabbitMQ URL (amqp:// or amqps://)"`
	// AMQPDLX is AMQP_DLX, the dead-letter exchange consumer queues use.
	AMQPDLX string `envconfig:"AMQP_DLX" default:"events.dlx" desc:"dead-letter exchange (durable topic) of consumer queues"`
}

func (a *AMQP) check() error {
	if _, err := amqp.ParseURI(a.AMQPURL); err != nil {
		// url.Error quotes the whole URL, password included: keep only
		// the reason, and never print the value.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = fmt.Errorf("not a URL (%v); percent-encode reserved characters in the user name and password", ue.Err)
		}
		return &Error{Var: "AMQP_URL", Redacted: true, Err: err}
	}
	return nil
}
