package main

import (
	"github.com/firstunicorn/messagekit-go/internal/config"
)

// Config is messagekit-dlq-bookkeeper's configuration (DESIGN.md §5). Field
// order is the order --help lists the variables in. Each field is documented
// by its desc tag, which --help prints.
type Config struct {
	config.Common
	HTTPAddr config.ListenAddr `envconfig:"HTTP_ADDR" default:":9090" desc:"listen address (host:port) of /healthz, /readyz and /metrics"`

	config.Kafka
	KafkaGroupID   string      `envconfig:"KAFKA_GROUP_ID" default:"messagekit-bookkeeper" desc:"Kafka consumer group"`
	DLQKafkaTopics config.List `envconfig:"DLQ_KAFKA_TOPICS" default:"events.dlq" desc:"Kafka DLQ topics to consume, comma-separated"`

	config.AMQP
	AMQPDeclare bool        `envconfig:"AMQP_DECLARE" default:"true" desc:"declare AMQP_DLX and the DLQ_QUEUES with their bindings at start"`
	DLQQueues   config.List `envconfig:"DLQ_QUEUES" default:"events.dlq" desc:"RabbitMQ dead-letter queues to consume, comma-separated"`
	DLQBindings config.List `envconfig:"DLQ_BINDINGS" default:"#" desc:"binding keys of the DLQ queues on AMQP_DLX, comma-separated (e.g. identity.#)"`
}
