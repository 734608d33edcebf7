package main

import (
	"github.com/firstunicorn/messagekit-go/internal/config"
)

// Config is messagekit-admin-api's configuration (DESIGN.md §5). Field
// order is the order --help lists the variables in. Each field is documented
// by its desc tag, which --help prints.
type Config struct {
	config.Common
	HTTPAddr config.ListenAddr `envconfig:"HTTP_ADDR" default:":8080" desc:"listen address (host:port) of the API, /healthz, /readyz and /metrics"`

	config.Kafka
	OutboxTopic string `envconfig:"OUTBOX_TOPIC" default:"events" desc:"Kafka topic outbox replays are written to"`

	config.AMQP
	config.Catalog
	AMQPConnName string `envconfig:"AMQP_CONNECTION_NAME" default:"messagekit-admin-api" desc:"client-provided name of the RabbitMQ connection replays are published on"`
	AMQPExchange string `envconfig:"AMQP_EXCHANGE" default:"events" desc:"RabbitMQ exchange the bridge publishes to"`

	AdminToken     config.Secret `envconfig:"ADMIN_TOKEN" desc:"bearer token for /api/v1 (secret, never printed); unset: /api/v1 answers 503"`
	AdminReadOpen  bool          `envconfig:"ADMIN_READ_OPEN" default:"false" desc:"let GET requests under /api/v1 through without the token"`
	OutboxSlotName string        `envconfig:"OUTBOX_SLOT_NAME" default:"" desc:"Debezium replication slot of the outbox, read for /outbox/stats and /health/outbox lag; empty: the Relay publishes the outbox"`
}

// Validate checks the admin API's own names.
func (c *Config) Validate() error {
	if err := config.CheckTopic("OUTBOX_TOPIC", c.OutboxTopic); err != nil {
		return err
	}
	if err := config.CheckAMQPName("AMQP_EXCHANGE", c.AMQPExchange); err != nil {
		return err
	}
	return config.CheckAMQPName("AMQP_CONNECTION_NAME", c.AMQPConnName)
}
