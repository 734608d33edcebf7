package main

import (
	"fmt"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
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
	DLQKafkaTypes  config.List `envconfig:"DLQ_KAFKA_EVENT_TYPES" default:"#" desc:"event-type patterns (binding-key syntax, e.g. identity.#) of the Kafka dead letters this bookkeeper stores; others are acknowledged unstored, for the bookkeeper of their producers (its own KAFKA_GROUP_ID); records of unknown type are always stored"`

	config.AMQP
	AMQPDeclare  bool        `envconfig:"AMQP_DECLARE" default:"true" desc:"declare AMQP_DLX and the DLQ_QUEUES with their bindings at start"`
	DLQQueues    config.List `envconfig:"DLQ_QUEUES" default:"events.dlq" desc:"RabbitMQ dead-letter queues to consume, comma-separated"`
	AMQPConnName string      `envconfig:"AMQP_CONNECTION_NAME" default:"messagekit-dlq-bookkeeper" desc:"client-provided name of the RabbitMQ connection"`
	DLQBindings  config.List `envconfig:"DLQ_BINDINGS" default:"#" desc:"binding keys of the DLQ queues on AMQP_DLX, comma-separated (e.g. identity.#)"`
	DLQQueueType string      `envconfig:"DLQ_QUEUE_TYPE" default:"classic" desc:"type of the DLQ_QUEUES it declares: classic or quorum (replicated; pair with quorum consumer queues for at-least-once dead-lettering)"`

	BatchSize      int           `envconfig:"BOOKKEEPER_BATCH_SIZE" default:"100" desc:"most dead letters of one queue or partition stored in one transaction and acknowledged together (1 to 10000)"`
	BatchWait      time.Duration `envconfig:"BOOKKEEPER_BATCH_WAIT" default:"5ms" desc:"how long a batch waits for more dead letters once one has arrived (0 for none)"`
	BreakerTimeout time.Duration `envconfig:"BOOKKEEPER_BREAKER_TIMEOUT" default:"30s" desc:"how long consumption pauses after 5 consecutive PostgreSQL failures before one probe is let through"`

	PruneInterval              time.Duration `envconfig:"PRUNE_INTERVAL" default:"5m" desc:"how often the pruner deletes expired rows (one bookkeeper per database at a time); 0 turns it off"`
	RetentionProcessedMessages time.Duration `envconfig:"RETENTION_PROCESSED_MESSAGES" default:"168h" desc:"age after which processed_messages rows are pruned; must outlive Kafka's retention plus the longest replay window; 0 keeps them"`
	RetentionDeadLetters       time.Duration `envconfig:"RETENTION_DEAD_LETTERS" default:"720h" desc:"age after which replayed and discarded dead letters are pruned (pending ones never are); 0 keeps them"`
	RetentionAudit             time.Duration `envconfig:"RETENTION_AUDIT" default:"2160h" desc:"age after which admin_actions rows are pruned; 0 keeps them"`
	RetentionOutbox            time.Duration `envconfig:"RETENTION_OUTBOX" default:"720h" desc:"age after which outbox_events rows are pruned (published ones only, unless the outbox is read by CDC); 0 keeps them"`
	RetentionOutboxMode        string        `envconfig:"RETENTION_OUTBOX_MODE" default:"auto" desc:"relay (prune published outbox rows), cdc (prune every row) or auto (cdc when outbox_events is in a PostgreSQL publication)"`
	PruneBatchSize             int           `envconfig:"PRUNE_BATCH_SIZE" default:"1000" desc:"most rows one pruning DELETE removes (1 to 100000); dead letters go 200 at a time"`
}

// Validate checks the bookkeeper's own variables.
func (c *Config) Validate() error {
	if c.DLQQueueType != "classic" && c.DLQQueueType != "quorum" {
		return config.Invalid("DLQ_QUEUE_TYPE", c.DLQQueueType, "must be classic or quorum")
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		return config.Invalid("BOOKKEEPER_BATCH_SIZE", fmt.Sprint(c.BatchSize), "must be from 1 to 10000")
	}
	if c.BatchWait < 0 {
		return config.Invalid("BOOKKEEPER_BATCH_WAIT", c.BatchWait.String(), "must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PRUNE_INTERVAL", c.PruneInterval},
		{"RETENTION_PROCESSED_MESSAGES", c.RetentionProcessedMessages},
		{"RETENTION_DEAD_LETTERS", c.RetentionDeadLetters},
		{"RETENTION_AUDIT", c.RetentionAudit},
		{"RETENTION_OUTBOX", c.RetentionOutbox},
	} {
		if d.v < 0 {
			return config.Invalid(d.name, d.v.String(), "must not be negative (0 turns it off)")
		}
	}
	switch bookkeeper.OutboxMode(c.RetentionOutboxMode) {
	case bookkeeper.OutboxAuto, bookkeeper.OutboxRelay, bookkeeper.OutboxCDC:
	default:
		return config.Invalid("RETENTION_OUTBOX_MODE", c.RetentionOutboxMode, "must be auto, relay or cdc")
	}
	if c.PruneBatchSize < 1 || c.PruneBatchSize > 100000 {
		return config.Invalid("PRUNE_BATCH_SIZE", fmt.Sprint(c.PruneBatchSize), "must be from 1 to 100000")
	}
	if c.BreakerTimeout <= 0 {
		return config.Invalid("BOOKKEEPER_BREAKER_TIMEOUT", c.BreakerTimeout.String(), "must be positive")
	}
	if err := config.CheckTopics("DLQ_KAFKA_TOPICS", c.DLQKafkaTopics); err != nil {
		return err
	}
	for name, v := range map[string][]string{"DLQ_QUEUES": c.DLQQueues, "DLQ_BINDINGS": c.DLQBindings, "DLQ_KAFKA_EVENT_TYPES": c.DLQKafkaTypes, "AMQP_CONNECTION_NAME": {c.AMQPConnName}} {
		if err := config.CheckAMQPNames(name, v); err != nil {
			return err
		}
	}
	return nil
}
